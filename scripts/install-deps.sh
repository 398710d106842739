#!/usr/bin/env bash
# Installs everything token_sync needs on a fresh Debian 12 machine with Rust:
# PostgreSQL 15 with headers, pg_cron and (for the tests) pg_partman, clang for pgrx's
# bindgen, dpkg-dev and lintian for the packages, sudo (Postgres refuses to run as root, so
# clusters run as the postgres user), shellcheck, cargo-pgrx, the BigQuery emulator and test tools in their own
# virtualenv, podman and debootstrap for the container tests. Safe to run again: each step
# skips what is already there.
#   --build-only [MAJOR]   only what building the extension needs, for PostgreSQL MAJOR
#                          (default 15) from this Debian's own packages (the Dockerfile's
#                          build stage)
#   --system               only the Debian packages (tests/run.sh starts the downloads
#                          that need debootstrap and podman while cargo-pgrx compiles)
set -euo pipefail

build_only=0
system_only=0
major=15
case "${1:-}" in
  --build-only) build_only=1; major=${2:-15} ;;
  --system) system_only=1 ;;
esac

PGRX_VERSION=0.18.0
PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${TOKEN_SYNC_VENV:-$ROOT/target/venv}

python_modules=(bqemulator numpy requests pytest psycopg cryptography helm_python kubernetes_validate yaml
                google.cloud.bigquery pandas sqlalchemy psycopg2 db_dtypes podman_compose grpc grpc_status
                pyarrow google.cloud.bigquery_storage_v1)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(postgresql-server-dev-"$major" libclang-dev clang gcc libc6-dev dpkg-dev)
[ "$build_only" = 1 ] && packages+=(ca-certificates libssl-dev pkg-config)  # cargo-pgrx links OpenSSL
[ "$build_only" = 1 ] || packages+=(postgresql-15 postgresql-15-cron postgresql-15-partman sudo python3-venv shellcheck
                                    podman runc debootstrap lintian)
need_apt=0
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  as_root apt-get update -qq
  if ! apt-cache show "postgresql-server-dev-$major" >/dev/null 2>&1; then
    echo "install-deps: Debian $(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release) has no PostgreSQL $major" \
      "(Debian's own packages: 15 in bookworm, 17 in trixie, 18 in sid)" >&2
    exit 1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${packages[@]}" >/dev/null
fi
# Debian starts a cluster on 5432 when the package is installed; our clusters are our own.
[ "$build_only" = 1 ] || as_root systemctl disable --now postgresql >/dev/null 2>&1 \
  || as_root pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
[ "$system_only" = 1 ] && exit 0

# The test tools download while cargo-pgrx compiles.
venv=
if [ "$build_only" = 0 ] && { [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "$(printf 'import %s\n' "${python_modules[@]}")" 2>/dev/null; }; then
  (python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/tests/requirements.txt") &
  venv=$!
fi

# Unoptimised (--debug): cargo-pgrx drives cargo and PostgreSQL's tools and computes
# little itself, and it compiles in a fraction of the optimised build's time.
if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION\$"; then
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --debug
fi
if ! grep -qs "pg$major *= *\"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  cargo pgrx init "--pg$major" "$PG_CONFIG"
fi

if [ -n "$venv" ] && ! wait "$venv"; then
  echo "install-deps: the test tools did not install into $VENV" >&2
  exit 1
fi
