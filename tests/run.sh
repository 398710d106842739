#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine with Rust:
#   1. installs what it needs (scripts/install-deps.sh);
#   2. checks formatting and clippy;
#   3. unit and in-database tests: `cargo pgrx test pg15` (a throwaway cluster run as postgres);
#   4. installs the extension into PostgreSQL 15 and runs the black-box suite (pytest):
#      a real PG15 cluster with pg_cron, the bqemulator emulator, a fake Google server.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
VENV=${TOKEN_SYNC_VENV:-$ROOT/target/venv}

bash scripts/install-deps.sh

echo "== lint"
cargo fmt --check
cargo clippy --all-targets --features pg_test -- -D warnings

echo "== unit and in-database tests"
PGRX_DATA=$(mktemp -d /tmp/token_sync_pgrx.XXXXXX)
sudo chown postgres "$PGRX_DATA"
trap 'sudo rm -rf "$PGRX_DATA"' EXIT
CARGO_PGRX_TEST_RUNAS=postgres CARGO_PGRX_TEST_PGDATA="$PGRX_DATA/pgdata" cargo pgrx test pg15

echo "== black-box tests"
install_flags=()
[ "$(id -u)" = 0 ] || install_flags+=(--sudo)
cargo pgrx install --pg-config "$PG_CONFIG" "${install_flags[@]}"
"$VENV/bin/pytest" -q "$@"
