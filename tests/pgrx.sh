#!/usr/bin/env bash
# Builds token_sync for one PostgreSQL major version, runs its unit and in-database tests
# (`cargo pgrx test`, a throwaway cluster run as postgres) and installs it into that
# server. tests/run.sh runs it here for 15, and inside each newer version's root
# (scripts/pg-root.sh) for 17 and 18.
#   bash tests/pgrx.sh 15
set -euo pipefail

major=${1:?usage: pgrx.sh MAJOR}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# A root's build scripts link against its newer libc: each major keeps its own build.
[ "$major" = 15 ] || export CARGO_TARGET_DIR="$ROOT/target/pg$major"
if ! grep -qs "pg$major *= *\"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  cargo pgrx init "--pg$major" "$PG_CONFIG"
fi

PGRX_DATA=$(mktemp -d /tmp/token_sync_pgrx.XXXXXX)
as_root chown postgres "$PGRX_DATA"
trap 'as_root rm -rf "$PGRX_DATA"' EXIT
CARGO_PGRX_TEST_RUNAS=postgres CARGO_PGRX_TEST_PGDATA="$PGRX_DATA/pgdata" cargo pgrx test "pg$major"

install_flags=()
[ "$(id -u)" = 0 ] || install_flags+=(--sudo)
cargo pgrx install --pg-config "$PG_CONFIG" "${install_flags[@]}"
