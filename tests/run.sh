#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine with Rust:
#   1. installs what it needs (scripts/install-deps.sh);
#   2. checks formatting and clippy;
#   3. PostgreSQL 17 and 18, each in a Debian root of its own (scripts/pg-root.sh): build,
#      unit and in-database tests, install (tests/pgrx.sh, inside the root), then the
#      black-box suite from here against a server started in the root, less the deployment,
#      container and benchmark files, which do not depend on the host's server;
#   4. PostgreSQL 15, this system's own: the same, Citus and TimescaleDB built from their
#      release sources in ../shared/vendor (scripts/build-engines.sh), and the whole
#      black-box suite (pytest): a real cluster with pg_cron, the bqemulator emulator, a fake
#      Google server, Citus and TimescaleDB servers, and the images built from the
#      Dockerfiles and run with podman (tests/test_containers.py).
# TOKEN_SYNC_PG_VERSIONS picks the newer versions (default "17 18"; empty for 15 alone).
# Arguments are passed to the last pytest run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${TOKEN_SYNC_VENV:-$ROOT/target/venv}

step() { echo "== $(date -u +%H:%M:%S) $*"; }

bash scripts/install-deps.sh

# Citus and TimescaleDB (for PostgreSQL 15's suite) build on their own while the lint and the
# newer versions run, much of which waits on the network and the servers; kept once built.
mkdir -p target
engines_log=$ROOT/target/build-engines.log
bash scripts/build-engines.sh 15 >"$engines_log" 2>&1 &
engines=$!

step "lint"
cargo fmt --check
cargo clippy --all-targets --features pg_test -- -D warnings

for major in ${TOKEN_SYNC_PG_VERSIONS-17 18}; do
  step "PostgreSQL $major: build, unit and in-database tests, install (in its root)"
  bash scripts/pg-root.sh "$major" run bash tests/pgrx.sh "$major"
  step "PostgreSQL $major: black-box tests"
  bash scripts/pg-root.sh "$major" host "$VENV/bin/pytest" -q -p no:cacheprovider \
    --ignore=tests/test_deploy.py --ignore=tests/test_bench.py --ignore=tests/test_containers.py
done

step "PostgreSQL 15: build, unit and in-database tests, install"
bash tests/pgrx.sh 15
step "PostgreSQL 15: Citus and TimescaleDB, for the targets they make (built beside the steps above)"
if ! wait "$engines"; then
  cat "$engines_log" >&2
  exit 1
fi
tail -n 1 "$engines_log"
step "PostgreSQL 15: black-box tests"
"$VENV/bin/pytest" -q "$@"
