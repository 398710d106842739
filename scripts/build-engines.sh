#!/usr/bin/env bash
# Builds Citus and TimescaleDB, which Debian's archive does not have, from their upstream
# release sources in ../shared/vendor/ (tarballs of the release tags) and installs them into
# a PostgreSQL server, for the tests of the targets they make. A build is kept: an engine
# already installed at this version is not built again.
#   bash scripts/build-engines.sh            # into this system's PostgreSQL 15
#   bash scripts/build-engines.sh 17         # inside the root of PostgreSQL 17 (scripts/pg-root.sh)
set -euo pipefail

major=${1:-15}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENDOR=${TOKEN_SYNC_VENDOR:-$ROOT/../shared/vendor}
CITUS_VERSION=13.2.2
TIMESCALEDB_VERSION=2.28.3

case "$major" in
  15|16|17) ;;
  *) echo "build-engines: Citus $CITUS_VERSION builds for PostgreSQL 15 to 17, not $major" >&2; exit 2 ;;
esac
if [ "$major" != 15 ] && [ -z "${TOKEN_SYNC_IN_ROOT:-}" ]; then
  # The root sees this project, not the vendor directory beside it: the two release
  # sources are copied into the project's target/ (where they are, the build needs them).
  sources=$ROOT/target/vendor
  mkdir -p "$sources"
  for tarball in "citus-$CITUS_VERSION.tar.gz" "timescaledb-$TIMESCALEDB_VERSION.tar.gz"; do
    [ ! -f "$VENDOR/$tarball" ] || cp -u "$VENDOR/$tarball" "$sources/"
  done
  exec bash "$ROOT/scripts/pg-root.sh" "$major" run env TOKEN_SYNC_VENDOR="$sources" \
    bash scripts/build-engines.sh "$major"
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config
pkglibdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)

installed() { # ENGINE VERSION [LIBRARY]: its library and this version's install script are there
  [ -f "$pkglibdir/${3:-$1}.so" ] && compgen -G "$sharedir/extension/$1--*$2*.sql" >/dev/null
}
timescaledb_installed() { # with its TSL module, which holds compression
  installed timescaledb "$TIMESCALEDB_VERSION" "timescaledb-tsl-$TIMESCALEDB_VERSION"
}

if installed citus "${CITUS_VERSION%.*}" && timescaledb_installed; then
  echo "build-engines: Citus $CITUS_VERSION and TimescaleDB $TIMESCALEDB_VERSION are installed for PostgreSQL $major"
  exit 0
fi

packages=(make gcc cmake libzstd-dev liblz4-dev libkrb5-dev libssl-dev libcurl4-openssl-dev libicu-dev
          "postgresql-server-dev-$major")
need_apt=0
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

build=$(mktemp -d /tmp/token_sync_engines.XXXXXX)
trap 'rm -rf "$build"' EXIT
jobs=$(nproc)

if ! installed citus "${CITUS_VERSION%.*}"; then
  echo "== build Citus $CITUS_VERSION for PostgreSQL $major"
  started=$SECONDS
  tar -xzf "$VENDOR/citus-$CITUS_VERSION.tar.gz" -C "$build"
  src=$build/citus-$CITUS_VERSION
  # Newer minor releases of 15 export have_createdb_privilege(), which Citus's compatibility
  # header defines again for PostgreSQL < 16: use the server's own where it has one.
  if grep -qs 'have_createdb_privilege' "$("$PG_CONFIG" --includedir-server)/commands/dbcommands.h"; then
    perl -0pi -e 's/static inline bool\nhave_createdb_privilege\(void\)\n\{.*?\n\}\n/#include "commands\/dbcommands.h"\n/s' \
      "$src/src/include/pg_version_compat.h"
  fi
  # with_llvm=no: no LLVM bitcode for JIT inlining (every file compiled again, by clang),
  # which no test uses.
  (cd "$src" && ./configure --without-libcurl PG_CONFIG="$PG_CONFIG" >/dev/null \
    && make -s -j"$jobs" with_llvm=no >/dev/null && as_root make -s install with_llvm=no >/dev/null)
  echo "== built Citus in $((SECONDS - started)) s"
fi

if ! timescaledb_installed; then
  echo "== build TimescaleDB $TIMESCALEDB_VERSION for PostgreSQL $major"
  started=$SECONDS
  tar -xzf "$VENDOR/timescaledb-$TIMESCALEDB_VERSION.tar.gz" -C "$build"
  src=$build/timescaledb-$TIMESCALEDB_VERSION
  # With the TSL module: the tests re-sync a day in a compressed chunk.
  (cd "$src" && ./bootstrap -DPG_CONFIG="$PG_CONFIG" -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
      -DWARNINGS_AS_ERRORS=OFF >/dev/null \
    && cd build && make -s -j"$jobs" >/dev/null && as_root make -s install >/dev/null)
  echo "== built TimescaleDB in $((SECONDS - started)) s"
fi
installed citus "${CITUS_VERSION%.*}" && timescaledb_installed
