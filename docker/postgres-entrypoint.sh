#!/usr/bin/env bash
# The official postgres image's documented contract, for an image built on Debian's own
# PostgreSQL packages (installed as docker-entrypoint.sh, the name that contract uses):
#   PGDATA                 the data directory (default /var/lib/postgresql/data); when it
#                          holds no cluster yet, one is initialised, once:
#   POSTGRES_PASSWORD      the superuser's password (required, unless
#                          POSTGRES_HOST_AUTH_METHOD=trust); connections over TCP need it,
#                          local socket connections inside the container do not
#   POSTGRES_USER          the superuser's name (default postgres)
#   POSTGRES_DB            a database created at initialisation (default: POSTGRES_USER)
#   POSTGRES_INITDB_ARGS   more arguments for initdb
#   POSTGRES_HOST_AUTH_METHOD  pg_hba.conf's method for TCP connections (default scram-sha-256)
#   /docker-entrypoint-initdb.d/*.sh and *.sql run in name order, with the server started
#   on its socket only, and only at initialisation.
# A data directory whose initialisation did not finish is refused at the next start, not
# started without what the init scripts would have set up.
# Started as root, it makes PGDATA the postgres user's and runs again as that user.
set -euo pipefail
shopt -s nullglob

log() { echo "docker-entrypoint: $*" >&2; }

export PGDATA=${PGDATA:-/var/lib/postgresql/data}
export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

if [ "${1:-}" != postgres ]; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 2775 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

initialise() {
  local auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256} script
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    log "the database is not initialised and POSTGRES_PASSWORD is not set"
    log "set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without one)"
    exit 1
  fi
  local password=() password_file=""
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
    password=(--pwfile="$password_file")
  fi
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments, as in the official image
  initdb --username="$POSTGRES_USER" "${password[@]}" --auth-local=trust --auth-host="$auth" \
    ${POSTGRES_INITDB_ARGS:-} >/dev/null
  [ -z "$password_file" ] || rm -f "$password_file"
  touch "$unfinished"
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # The server's own arguments (the preloaded libraries among them), reachable only on
  # its socket while the init scripts run.
  shift
  pg_ctl --silent --wait --pgdata="$PGDATA" \
    --options="$(printf '%q ' "$@") -c listen_addresses=''" start
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
      --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sh)
        log "running $script"
        bash "$script"
        ;;
      *.sql)
        log "running $script"
        psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$script"
        ;;
      *) log "ignoring $script" ;;
    esac
  done
  pg_ctl --silent --wait --pgdata="$PGDATA" --mode=fast stop
  rm "$unfinished"
  log "initialisation complete; starting PostgreSQL"
}

unfinished=$PGDATA/.initialisation-unfinished
if [ -e "$unfinished" ]; then
  log "the initialisation of $PGDATA did not finish (an init script failed, or the container stopped)"
  log "empty the data directory (the volume) and start again, or remove $unfinished to start it as it is"
  exit 1
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initialise "$@"
fi
exec "$@"
