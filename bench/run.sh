#!/usr/bin/env bash
# The benchmark, from a fresh Debian 12 machine with Rust: installs what it needs, installs
# the release build of token_sync, and runs bench/run.py (arguments are passed on), or with
# `backfill` first, bench/backfill.py.
#   bash bench/run.sh                       # 1,000,000 rows, 3 runs, 200 ms per page
#   bash bench/run.sh --rows 20000 --runs 1
#   bash bench/run.sh backfill              # a year of days at parallel 1, 4 and 8
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/install-deps.sh
install_flags=(--release)
[ "$(id -u)" = 0 ] || install_flags+=(--sudo)
cargo pgrx install --pg-config /usr/lib/postgresql/15/bin/pg_config "${install_flags[@]}"
bench=bench/run.py
if [ "${1:-}" = backfill ]; then
  bench=bench/backfill.py
  shift
fi
exec "${TOKEN_SYNC_VENV:-$ROOT/target/venv}/bin/python" "$bench" "$@"
