#!/usr/bin/env bash
# Builds the images from the shipped Dockerfiles with podman, as a user would, on local
# stand-ins for their official base images (tests/base-images.sh): the database at the
# Dockerfile's default PostgreSQL version, and the emulator. Where TOKEN_SYNC_PACKAGES names
# a directory of packages scripts/package.sh built from this tree (tests/run.sh sets it) and
# it holds that version's (built in its root, of the same Debian suite), the package stands
# in for the Dockerfile's build stage, which would otherwise build the same package again.
# Layers and caches stay for the next run on the same machine.
# tests/test_containers.py runs it before it starts anything.
#   bash tests/containers.sh             both images
#   bash tests/containers.sh emulator    the emulator's alone (tests/run.sh makes it early:
#                                        its build is mostly downloads)
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

package=
if [ -n "${TOKEN_SYNC_PACKAGES:-}" ] && [ "${1:-}" != emulator ]; then
  package=$TOKEN_SYNC_PACKAGES/postgresql-$major-token-sync_$version-1_$(dpkg --print-architecture).deb
  if [ ! -f "$package" ]; then
    echo "containers: no package for PostgreSQL $major in $TOKEN_SYNC_PACKAGES; the build stage makes it"
    package=
  fi
fi
if [ "${1:-}" = emulator ]; then
  bases=(bookworm)
elif [ -n "$package" ]; then
  bases=(bookworm "$suite")
else
  bases=(bookworm "$suite" rust)  # only the Dockerfile's build stage needs the toolchain
fi
bash tests/base-images.sh "${bases[@]}"
build "token-sync-emulator:$version" -f docker/emulator.Dockerfile
[ "${1:-}" = emulator ] && exit 0
if [ -n "$package" ]; then
  context=$ROOT/target/image-build
  rm -rf "$context"
  mkdir -p "$context/packages"
  cp "$package" "$context/packages/"
  echo "containers: the package for PostgreSQL $major stands in for the build stage ($package)"
  build "token-sync:$version-pg$major" --build-context "build=$context"
else
  build "token-sync:$version-pg$major"
fi
