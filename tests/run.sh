#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine with Rust:
#   1. installs what it needs (scripts/install-deps.sh); the newer versions' Debian roots
#      (scripts/pg-root.sh), the containers' base images and Citus and TimescaleDB
#      (scripts/build-engines.sh, from their release sources in ../shared/vendor, for 15 and
#      in the root of 17) are made in the background from the start;
#   2. checks formatting and clippy;
#   3. PostgreSQL 15, this system's own: the unit and in-database tests (tests/pgrx.sh, once
#      for all versions), its Debian package (scripts/package.sh) installed here, then the
#      black-box suite (pytest: a real cluster with pg_cron, the bqemulator emulator, a fake
#      Google server, Citus and TimescaleDB servers), in the background;
#   4. PostgreSQL 17 and 18, each in its root: its package built and installed there, then
#      the black-box suite from here against a server started in the root, less the
#      deployment, benchmark and code-shape files, which do not depend on the server, in the
#      background;
#   5. each version's package installed into a clean container of its suite
#      (tests/test_packages.py), and the images built from the Dockerfiles, with the package
#      built for the image's version, and run with podman (tests/test_containers.py);
#   6. each suite's result, PostgreSQL 15's last.
# TOKEN_SYNC_PG_VERSIONS picks the newer versions (default "17 18"; empty for 15 alone).
# Arguments are passed to PostgreSQL 15's black-box suite.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${TOKEN_SYNC_VENV:-$ROOT/target/venv}

step() { echo "== $(date -u +%H:%M:%S) $*"; }

bash scripts/install-deps.sh --system
mkdir -p target
# Work that waits on the network and the disk more than on the 2 cores runs beside the rest
# from the start, each with its log: the Debian roots of the newer versions and the base
# images of the containers (downloads), then Citus and TimescaleDB for 17's suite; and
# Citus and TimescaleDB for PostgreSQL 15's suite (each build kept once made). Citus 13
# does not build against 18.
export TOKEN_SYNC_PG_VERSIONS=${TOKEN_SYNC_PG_VERSIONS-17 18}
declare -A suite_of=([17]=trixie [18]=sid)
prepare_log=$ROOT/target/prepare.log
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/tests/containers.conf}
(
  suites=(bookworm)
  for major in $TOKEN_SYNC_PG_VERSIONS; do
    bash scripts/pg-root.sh "$major"
    suites+=("${suite_of[$major]}")
  done
  bash tests/base-images.sh "${suites[@]}"
  bash tests/containers.sh emulator
  if [[ " $TOKEN_SYNC_PG_VERSIONS " == *" 17 "* ]]; then
    bash scripts/build-engines.sh 17
  fi
) >"$prepare_log" 2>&1 &
prepare=$!
engines_log=$ROOT/target/build-engines.log
bash scripts/build-engines.sh 15 >"$engines_log" 2>&1 &
engines=$!
# A failed step ends the run: the jobs still running beside it end with it. First SIGTERM,
# on which a pytest tears its servers down as on Ctrl-C (tests/conftest.py); what still runs
# a minute later, SIGKILL.
signal_background() {
  local pid
  for pid in $(jobs -pr); do
    pkill "-$1" -P "$pid" 2>/dev/null || true
    kill "-$1" "$pid" 2>/dev/null || true
  done
}
stop_background() {
  local waited=0
  signal_background TERM
  while [ -n "$(jobs -pr)" ] && [ "$waited" -lt 60 ]; do
    sleep 1
    waited=$((waited + 1))
  done
  signal_background KILL
}
trap stop_background EXIT
finish() {  # waits for a job started above; its log when it failed
  if ! wait "$1"; then
    cat "$2" >&2
    exit 1
  fi
}

bash scripts/install-deps.sh

step "lint"
cargo fmt --check
cargo clippy --all-targets --features pg_test -- -D warnings

step "PostgreSQL 15: unit and in-database tests (once for every version)"
bash tests/pgrx.sh 15
# After the tests, whose build pgrx installs into the server: the package takes its place.
step "PostgreSQL 15: its package, built and installed here"
bash scripts/package.sh 15 --install
step "PostgreSQL 15: Citus and TimescaleDB, for the targets they make (built beside the steps above)"
finish "$engines" "$engines_log"
grep '^== built' "$engines_log" || tail -n 1 "$engines_log"

# A black-box suite waits on its servers more than it computes: each runs in the background,
# beside the next builds, its log in target/black-box-MAJOR.log.
suites=()
black_box() {  # MAJOR PYTEST-ARGUMENT...
  local major=$1
  shift
  local run=("$VENV/bin/pytest" -q -p no:cacheprovider "$@")
  [ "$major" = 15 ] || run=(bash scripts/pg-root.sh "$major" host "${run[@]}")
  "${run[@]}" >"target/black-box-$major.log" 2>&1 &
  suites=("$!:$major" "${suites[@]}")
}
step "PostgreSQL 15: black-box tests, beside the next steps"
black_box 15 --ignore=tests/test_packages.py --ignore=tests/test_containers.py "$@"

step "the newer versions' roots and the base images (made beside the steps above)"
finish "$prepare" "$prepare_log"
for major in $TOKEN_SYNC_PG_VERSIONS; do
  step "PostgreSQL $major: its package, built and installed in its root"
  bash scripts/package.sh "$major" --install
  step "PostgreSQL $major: black-box tests, beside the next steps"
  black_box "$major" --ignore=tests/test_deploy.py --ignore=tests/test_bench.py \
    --ignore=tests/test_code_shape.py --ignore=tests/test_containers.py --ignore=tests/test_packages.py
done

step "every version's package in a clean container of its suite, and the images"
# The image of the containers' tests installs the package built above for its version.
# A failure here, or in one suite, leaves the others to finish and show their results.
failed=()
TOKEN_SYNC_PACKAGES=$ROOT/target/packages "$VENV/bin/pytest" -q -p no:cacheprovider \
  tests/test_packages.py tests/test_containers.py || failed+=("packages and images")

# PostgreSQL 15's suite last, the whole black-box suite but the two files above.
for suite in "${suites[@]}"; do
  step "PostgreSQL ${suite#*:}: black-box tests"
  wait "${suite%%:*}" || failed+=("PostgreSQL ${suite#*:}")
  cat "target/black-box-${suite#*:}.log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
