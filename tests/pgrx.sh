#!/usr/bin/env bash
# token_sync's unit and in-database tests (`cargo pgrx test`: a throwaway cluster of one
# PostgreSQL major version, run as postgres). tests/run.sh runs them once, against 15: they
# test the library's own code, which the packages' black-box runs then exercise on each
# version. The same in a newer version's root:
#   bash tests/pgrx.sh 15
#   bash scripts/pg-root.sh 18 run bash tests/pgrx.sh 18
set -euo pipefail

major=${1:?usage: pgrx.sh MAJOR}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Build scripts compiled in a root need its newer libc: the roots share a build of their own
# (scripts/package.sh says why).
[ -z "${TOKEN_SYNC_IN_ROOT:-}" ] || export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/roots}
if ! grep -qs "pg$major *= *\"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  cargo pgrx init "--pg$major" "$PG_CONFIG"
fi

# The package built after these tests reuses their crates (scripts/commit-time.sh says why).
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(bash "$ROOT/scripts/commit-time.sh")}
export SOURCE_DATE_EPOCH

PGRX_DATA=$(mktemp -d /tmp/token_sync_pgrx.XXXXXX)
as_root chown postgres "$PGRX_DATA"
trap 'as_root rm -rf "$PGRX_DATA"' EXIT
# In release mode, as the package is built: its dependencies are compiled once for both.
CARGO_PGRX_TEST_RUNAS=postgres CARGO_PGRX_TEST_PGDATA="$PGRX_DATA/pgdata" cargo pgrx test --release "pg$major"
