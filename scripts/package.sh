#!/usr/bin/env bash
# Builds token_sync's Debian package for one PostgreSQL major version, named as Debian and
# PGDG name extensions (postgresql-MAJOR-NAME):
#   target/packages/postgresql-MAJOR-token-sync_VERSION-1_ARCH.deb
# It holds the library, the control file, the versioned SQL and every upgrade script, the
# schedule and helper scripts (/usr/share/postgresql/MAJOR/contrib/token_sync/), a copyright
# file and a changelog; it depends on that suite's postgresql-MAJOR and recommends its pg_cron.
# 15 is built on this Debian 12 system; 17 and 18 inside their Debian roots
# (scripts/pg-root.sh), so that each package links against its own suite's libraries.
#   bash scripts/package.sh 17
#   bash scripts/package.sh 18 --out DIR     (default: target/packages)
#   bash scripts/package.sh 15 --install     and installs it (dpkg -i) into the server it was
#                                            built for: this system's, or the root's
# DEBFULLNAME and DEBEMAIL, as for Debian's own tools, name the package's maintainer.
set -euo pipefail

major=${1:?usage: package.sh MAJOR [--out DIR] [--install]}
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$ROOT/target/packages
install=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --install) install=(--install); shift ;;
    *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
out=$(realpath -m -- "$out")
PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config
# The package's dates (changelog, file times) are the commit's, so a rebuild is the same package.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(bash "$ROOT/scripts/commit-time.sh")}
export SOURCE_DATE_EPOCH

if [ ! -x "$PG_CONFIG" ]; then
  if [ "$major" != 15 ] && [ -z "${TOKEN_SYNC_IN_ROOT:-}" ]; then
    # Only the project and /tmp are mounted into the root.
    case "$out/" in
      "$ROOT"/*|/tmp/*) ;;
      *) echo "package.sh: --out for PostgreSQL $major must be under $ROOT or /tmp (the root sees only those)" >&2; exit 2 ;;
    esac
    # The root starts from an empty environment: what the package takes from this one goes in.
    passed=(SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH")
    [ -z "${DEBFULLNAME:-}" ] || passed+=(DEBFULLNAME="$DEBFULLNAME")
    [ -z "${DEBEMAIL:-}" ] || passed+=(DEBEMAIL="$DEBEMAIL")
    # A cold roots' build starts from this system's release build: what does not depend on
    # the PostgreSQL version is compiled once, including the C of build scripts (ring's,
    # cee-scape's), by this system's compiler, against its older libc's headers, which the
    # roots' newer libc runs; the library is still linked in the root, against its suite's
    # libraries. Safe in this direction only: nothing built in a root runs here. The copy
    # is whole or absent: made aside, then renamed.
    if [ ! -d "$ROOT/target/roots/release" ] && [ -d "$ROOT/target/release" ]; then
      mkdir -p "$ROOT/target/roots"
      seed=$(mktemp -d "$ROOT/target/roots/.seed.XXXXXX")
      if ! cp -a "$ROOT/target/release/." "$seed/" || ! mv -T "$seed" "$ROOT/target/roots/release"; then
        rm -rf "$seed"
        echo "package.sh: could not copy this system's build to seed the roots'" >&2
        exit 1
      fi
    fi
    exec bash "$ROOT/scripts/pg-root.sh" "$major" run env "${passed[@]}" \
      bash scripts/package.sh "$major" --out "$out" "${install[@]}"
  fi
  echo "package.sh: no PostgreSQL $major here ($PG_CONFIG)" >&2
  exit 1
fi

cd "$ROOT"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
name=postgresql-$major-token-sync
arch=$(dpkg --print-architecture)
deb_version=$version-1
maintainer="${DEBFULLNAME:-token_sync developers} <${DEBEMAIL:-token-sync@example.org}>"

# Build scripts compiled in a root need its newer libc, so the host cannot share the roots'
# build. The roots share one (target/roots): what differs between their versions (pgrx's
# bindings, the extension) is built per feature, and the rest is compiled once; tests/run.sh
# builds in the older suite first (trixie, then sid), whose build scripts run in the newer.
[ -z "${TOKEN_SYNC_IN_ROOT:-}" ] || export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/roots}
if ! grep -qs "pg$major *= *\"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  cargo pgrx init "--pg$major" "$PG_CONFIG" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/token_sync-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/$name
cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$tree" >&2

pkglibdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)
library=$tree$pkglibdir/token_sync.so
[ -f "$library" ] || { echo "package.sh: cargo pgrx package made no $library" >&2; exit 1; }
[ -f "$tree$sharedir/extension/token_sync--$version.sql" ] || { echo "package.sh: no token_sync--$version.sql" >&2; exit 1; }
contrib=$tree$sharedir/contrib/token_sync
install -d "$contrib/pg_cron" "$contrib/sql"
install -m 0644 pg_cron/*.sql "$contrib/pg_cron/"
for script in sql/*.sql; do
  case "$script" in sql/token_sync--*) ;; *) install -m 0644 "$script" "$contrib/sql/" ;; esac
done
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$library"
chmod 0644 "$library"

doc=$tree/usr/share/doc/$name
install -d "$doc"
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: token_sync"
  echo
  echo "Files: *"
  echo "Copyright: $(sed -n 's/^Copyright (c) //p' LICENSE)"
  echo "License: Expat"
  # The license's text, each line indented and each empty line a lone dot, as the format wants.
  sed -n '/^Permission is hereby granted/,$p' LICENSE | sed -e 's/^$/./' -e 's/^/ /'
} >"$doc/copyright"
changelog_date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
{
  echo "$name ($deb_version) unstable; urgency=medium"
  echo
  echo "  * token_sync $version for PostgreSQL $major (the README lists what changed and how"
  echo "    to upgrade: ALTER EXTENSION token_sync UPDATE)."
  echo
  echo " -- $maintainer  $changelog_date"
} | gzip -9n >"$doc/changelog.Debian.gz"
chmod 0644 "$doc"/*
# What lintian says of the package that stays, each with its reason.
install -d "$tree/usr/share/lintian/overrides"
cat >"$tree/usr/share/lintian/overrides/$name" <<EOF
# Shipped outside Debian's archive: there is no ITP bug for the first upload to close.
$name: initial-upload-closes-no-bugs [usr/share/doc/$name/changelog.Debian.gz:1]
# PostgreSQL's own layout for a major version's libraries, as every extension has it.
$name: repeated-path-segment lib [usr/lib/postgresql/$major/lib/]
# The library is Rust: no C compiled with _FORTIFY_SOURCE goes into it.
$name: hardening-no-fortify-functions [usr/lib/postgresql/$major/lib/token_sync.so]
EOF
# Only where the linker happened to place those two strings side by side.
if grep -q fullfilled "$library"; then
  printf '%s\n' '# Two strings of a dependency side by side ("...buffer full" then "filled must not..."), no word.' \
    "$name: spelling-error-in-binary fullfilled fulfilled [usr/lib/postgresql/$major/lib/token_sync.so]" \
    >>"$tree/usr/share/lintian/overrides/$name"
fi

# The libraries the library needs, at the versions it was linked against, as Debian computes them.
install -d "$work/source/debian"
printf 'Source: token-sync\n\nPackage: %s\nArchitecture: any\n' "$name" >"$work/source/debian/control"
shlibs=$(cd "$work/source" && dpkg-shlibdeps -O "$library" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package.sh: dpkg-shlibdeps found no dependencies for $library" >&2; exit 1; }

install -d "$tree/DEBIAN"
cat >"$tree/DEBIAN/control" <<EOF
Package: $name
Version: $deb_version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$tree" | cut -f1)
Depends: postgresql-$major, $shlibs
Recommends: postgresql-$major-cron
Section: database
Priority: optional
Description: mirror day-partitioned BigQuery tables into PostgreSQL $major
 token_sync is a PostgreSQL extension that copies BigQuery tables into
 PostgreSQL one UTC day at a time, exactly and idempotently: a day is
 replaced as a whole, checked against BigQuery, and recorded in a ledger.
 With pg_cron, the database pulls yesterday's data every night and heals
 the days a bad night left behind.
 .
 It starts with bigquery-public-data.crypto_ethereum and mirrors any
 day-partitioned table.
EOF
(cd "$tree" && find usr -type f -print0 | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
find "$tree" -type d -exec chmod 0755 {} +
find "$tree/usr" -type f -exec chmod 0644 {} +
chmod 0644 "$tree/DEBIAN/control" "$tree/DEBIAN/md5sums"
find "$tree" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb=$out/${name}_${deb_version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$tree" "$deb" >/dev/null
# Built as root inside a root for a user who ran it with sudo: the package is the user's.
[ -z "${TOKEN_SYNC_IN_ROOT:-}" ] || [ "$(id -u)" != 0 ] || chown --reference="$ROOT/Cargo.toml" "$out" "$deb"
if [ ${#install[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then dpkg -i "$deb" >&2; else sudo dpkg -i "$deb" >&2; fi
fi
echo "$deb"
