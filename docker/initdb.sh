#!/usr/bin/env bash
# Runs once, when the data directory is first initialised: creates both extensions and
# schedules the nightly jobs with the project's own pg_cron/schedule.sql.
#   TOKEN_SYNC_D1_SCHEDULE (default 30 3 * * *), TOKEN_SYNC_D2_SCHEDULE (default 30 4 * * *)
set -euo pipefail
share=${TOKEN_SYNC_SHARE:?TOKEN_SYNC_SHARE must name the directory holding the package scripts}
database=${POSTGRES_DB:-tokens}

psql -X -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "$database" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS token_sync;
SQL
schedule_args=()
[ -n "${TOKEN_SYNC_D1_SCHEDULE:-}" ] && schedule_args+=(-v "d1_schedule=$TOKEN_SYNC_D1_SCHEDULE")
[ -n "${TOKEN_SYNC_D2_SCHEDULE:-}" ] && schedule_args+=(-v "d2_schedule=$TOKEN_SYNC_D2_SCHEDULE")
psql -X -q --username "${POSTGRES_USER:-postgres}" --dbname "$database" "${schedule_args[@]}" \
  -f "$share/pg_cron/schedule.sql"
