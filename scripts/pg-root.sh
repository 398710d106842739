#!/usr/bin/env bash
# A Debian root file system with a newer PostgreSQL, for building and testing token_sync
# against it without touching this Debian 12 system (its packages need a newer libc).
#   bash scripts/pg-root.sh 17               # makes (or updates) the root of PostgreSQL 17
#   bash scripts/pg-root.sh 17 run CMD ...   # runs CMD inside it, in this project's directory
#   bash scripts/pg-root.sh 17 host CMD ...  # runs CMD here, with the root mounted and
#                                            # TOKEN_SYNC_PG_ROOT and PG_BIN pointing into it
# PostgreSQL 17 comes from Debian 13 (trixie), 18 from Debian unstable (sid), each with its
# own pg_cron and pg_partman. The root is debootstrapped once and kept in $TOKEN_SYNC_ROOTS (default
# /var/tmp/token_sync-roots) for the next run on the same machine. Inside it, the project,
# /tmp and this machine's Rust toolchain (~/.cargo, ~/.rustup) are mounted at the same
# paths, and its postgres user has this system's uid, so that a server started in the root
# (tests/support/cluster.py) can use a data directory made here.
set -euo pipefail

major=${1:?usage: pg-root.sh MAJOR [run CMD ...]}
shift
case "$major" in
  17) suite=trixie ;;
  18) suite=sid ;;
  *) echo "pg-root.sh: PostgreSQL $major has no root here (15 is this system's own)" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# ROOT is bind-mounted into the root: it must be this project, never / or a copy's parent.
if [ ! -f "$ROOT/Cargo.toml" ] || [ ! -f "$ROOT/scripts/pg-root.sh" ] || [ "$ROOT" = / ]; then
  echo "pg-root.sh: run it from the project's scripts/ directory" >&2
  exit 2
fi
ROOTS=${TOKEN_SYNC_ROOTS:-/var/tmp/token_sync-roots}
dir=$ROOTS/$suite
mirror=${TOKEN_SYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=(postgresql-"$major" postgresql-server-dev-"$major" postgresql-"$major"-cron postgresql-"$major"-partman
          clang libclang-dev gcc libc6-dev dpkg-dev pkg-config sudo python3-venv procps)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

mount_into_root() {
  local source target
  for source in /proc /sys /dev /dev/pts /dev/shm /tmp "$ROOT" "$HOME/.cargo" "$HOME/.rustup"; do
    target=$dir$source
    [ -e "$source" ] || continue
    mountpoint -q "$target" && continue
    as_root mkdir -p "$target"
    as_root mount --bind "$source" "$target"
  done
  as_root cp /etc/resolv.conf "$dir/etc/resolv.conf"
}

unmount_from_root() {
  local target
  for target in "$dir$HOME/.rustup" "$dir$HOME/.cargo" "$dir$ROOT" "$dir/tmp" "$dir/dev/shm" "$dir/dev/pts" \
                "$dir/dev" "$dir/sys" "$dir/proc"; do
    if mountpoint -q "$target"; then as_root umount -l "$target"; fi
  done
}

in_root() {
  # shellcheck disable=SC2016 # the inner shell expands $0 and $@, inside the root
  as_root chroot "$dir" /usr/bin/env -i HOME="$HOME" PATH="$HOME/.cargo/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    LANG=C.UTF-8 CI="${CI:-}" TOKEN_SYNC_IN_ROOT="$major" bash -c 'cd "$0" && exec "$@"' "$ROOT" "$@"
}

if [ ! -e "$dir/.token_sync-ready" ]; then
  command -v debootstrap >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  # The project and the toolchain are bind-mounted into a root in use: never delete through them.
  unmount_from_root
  if grep -q " $dir/" /proc/self/mounts; then
    echo "pg-root.sh: something is still mounted under $dir; not deleting it" >&2
    exit 1
  fi
  as_root rm -rf "$dir"
  as_root mkdir -p "$ROOTS"
  echo "== debootstrap $suite into $dir"
  as_root debootstrap --variant=minbase --include=ca-certificates "$suite" "$dir" "$mirror" >/dev/null
  # No service starts inside the root, and no default cluster is made: our clusters are our own.
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$dir/usr/sbin/policy-rc.d" >/dev/null
  as_root chmod +x "$dir/usr/sbin/policy-rc.d"
  # The archive reachable here may be a frozen copy whose Release files are past their
  # Valid-Until (sid's are short-lived); signatures are still checked.
  echo 'Acquire::Check-Valid-Until "false";' | as_root tee "$dir/etc/apt/apt.conf.d/99token-sync" >/dev/null
  as_root mkdir -p "$dir/etc/postgresql-common"
  echo "create_main_cluster = false" | as_root tee "$dir/etc/postgresql-common/createcluster.conf" >/dev/null
  as_root chroot "$dir" groupadd -o -g "$(id -g postgres)" postgres
  as_root chroot "$dir" useradd -o -u "$(id -u postgres)" -g postgres -d /var/lib/postgresql -s /bin/bash postgres
  as_root touch "$dir/.token_sync-ready"
fi

trap unmount_from_root EXIT
trap 'exit 130' INT TERM
mount_into_root
# The certificate authorities this machine adds to Debian's (a proxy's, for instance):
# without them cargo and apt inside the root cannot reach what the host reaches.
if [ -d /usr/local/share/ca-certificates ] &&
   ! diff -rq /usr/local/share/ca-certificates "$dir/usr/local/share/ca-certificates" >/dev/null 2>&1; then
  as_root mkdir -p "$dir/usr/local/share/ca-certificates"
  as_root cp -a /usr/local/share/ca-certificates/. "$dir/usr/local/share/ca-certificates/"
  in_root update-ca-certificates >/dev/null
fi
missing=0
for pkg in "${packages[@]}"; do
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's format, not the shell's
  in_root dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing=1
done
if [ "$missing" = 1 ]; then
  echo "== PostgreSQL $major and build tools in $suite"
  in_root apt-get update -qq
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

case "${1:-}" in
  run) shift; in_root "$@" ;;
  host) shift; TOKEN_SYNC_PG_ROOT=$dir PG_BIN=/usr/lib/postgresql/$major/bin "$@" ;;
esac
