#!/usr/bin/env bash
# Builds the images from the shipped Dockerfiles with podman, as a user would, on local
# stand-ins for their official base images (tests/base-images.sh): the database at the
# Dockerfile's default PostgreSQL version, and the emulator. Layers and caches stay for the
# next run on the same machine. tests/test_containers.py runs it before it starts anything.
#   bash tests/containers.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/tests/containers.conf}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
major=$(sed -n 's/^ARG PG_MAJOR=//p' Dockerfile)
suite=$(sed -n 's/^ARG DEBIAN_SUITE=//p' Dockerfile)

log=$ROOT/target/containers-build.log
mkdir -p "$ROOT/target"
: >"$log"
build() {
  local image=$1
  shift
  echo "containers: $image (log: $log)"
  if ! podman build --pull=never -t "$image" "$@" . >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    exit 1
  fi
}

bash tests/base-images.sh bookworm "$suite"
build "token-sync-emulator:$version" -f docker/emulator.Dockerfile
build "token-sync:$version-pg$major"
