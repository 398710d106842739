#!/usr/bin/env bash
# The main job on an embedded default, from a fresh Debian 12 machine with Rust:
# installs what it needs, builds and installs token_sync, starts a local PostgreSQL 15
# (port 5433, data in target/demo) with pg_cron and token_sync preloaded, and
#   - with no Google key configured: starts the BigQuery emulator on 127.0.0.1:9050 (its
#     Storage Read API on 9051, which the days are read through),
#     seeded with sample token rows for the last 8 days;
#   - with GOOGLE_APPLICATION_CREDENTIALS (a service-account key) and
#     TOKEN_SYNC_BILLING_PROJECT set: uses real BigQuery;
# then runs token_sync_day(D-1), a 7-day token_backfill and token_verify_day, schedules
# the nightly jobs from pg_cron/, and prints what arrived. Both servers keep running so
# you can look around; `bash scripts/demo.sh stop` stops them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PG_BIN=/usr/lib/postgresql/15/bin
DEMO=$ROOT/target/demo
PORT=${TOKEN_SYNC_DEMO_PORT:-5433}
EMULATOR_PORT=${TOKEN_SYNC_EMULATOR_PORT:-9050}
VENV=${TOKEN_SYNC_VENV:-$ROOT/target/venv}

as_postgres() { if [ "$(id -u)" = 0 ]; then sudo -u postgres "$@"; else "$@"; fi; }

stop() {
  if [ -f "$DEMO/emulator.pid" ]; then kill "$(cat "$DEMO/emulator.pid")" 2>/dev/null || true; rm -f "$DEMO/emulator.pid"; fi
  if [ -f "$DEMO/data/postmaster.pid" ]; then as_postgres "$PG_BIN/pg_ctl" -D "$DEMO/data" -m fast stop >/dev/null || true; fi
}

if [ "${1:-}" = stop ]; then stop; echo "demo stopped"; exit 0; fi

bash scripts/install-deps.sh
# Built and installed as a server installs it: its Debian package.
bash scripts/package.sh 15 --install >/dev/null

stop
mkdir -p "$DEMO"
[ "$(id -u)" = 0 ] && chown postgres "$DEMO"
if [ ! -d "$DEMO/data" ]; then
  as_postgres "$PG_BIN/initdb" -D "$DEMO/data" -A trust -U postgres -E UTF8 --locale C >/dev/null
fi
as_postgres "$PG_BIN/pg_ctl" -D "$DEMO/data" -l "$DEMO/server.log" -w -o \
  "-p $PORT -k $DEMO -c listen_addresses=localhost -c shared_preload_libraries=pg_cron,token_sync -c cron.database_name=tokens -c timezone=UTC" \
  start >/dev/null
psql_demo() { psql -X -h "$DEMO" -p "$PORT" -U postgres "$@"; }
# A fresh database each run: the demo's emulator is in memory, and the extension's objects
# should be the ones just built.
psql_demo -d postgres -qc "DROP DATABASE IF EXISTS tokens WITH (FORCE)" -c "CREATE DATABASE tokens"

if [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ] && [ -n "${TOKEN_SYNC_BILLING_PROJECT:-}" ]; then
  echo "== using real BigQuery, billing project $TOKEN_SYNC_BILLING_PROJECT"
  api_url=https://bigquery.googleapis.com
  storage_api_url=
  credentials=$GOOGLE_APPLICATION_CREDENTIALS
  billing=$TOKEN_SYNC_BILLING_PROJECT
else
  echo "== no Google key configured: starting the BigQuery emulator with sample rows"
  "$VENV/bin/python" scripts/bq_emulator.py serve --port "$EMULATOR_PORT" --grpc-port "$((EMULATOR_PORT + 1))" --seed-days 8 \
    --log "$DEMO/emulator.log" > "$DEMO/emulator.out" 2>&1 &
  echo $! > "$DEMO/emulator.pid"
  for _ in $(seq 1 120); do grep -q "sample rows" "$DEMO/emulator.out" 2>/dev/null && break; sleep 1; done
  cat "$DEMO/emulator.out"
  api_url=http://127.0.0.1:$EMULATOR_PORT
  storage_api_url=http://127.0.0.1:$((EMULATOR_PORT + 1))
  credentials=none
  billing=billing
fi

psql_demo -d tokens -v ON_ERROR_STOP=1 -q <<SQL
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS token_sync;
ALTER SYSTEM SET token_sync.billing_project = '$billing';
ALTER SYSTEM SET token_sync.api_url = '$api_url';
ALTER SYSTEM SET token_sync.storage_api_url = '$storage_api_url';
ALTER SYSTEM SET token_sync.credentials = '$credentials';
SELECT pg_reload_conf();
SQL

psql_demo -d tokens -v ON_ERROR_STOP=1 -f pg_cron/schedule.sql >/dev/null
psql_demo -d tokens -v ON_ERROR_STOP=1 <<'SQL'
\echo '== token_sync_day(D-1)'
SELECT * FROM token_sync_day((now() AT TIME ZONE 'UTC')::date - 1);
\echo '== token_backfill over the 7 days before'
SELECT day, status, rows_loaded, round(seconds::numeric, 3) AS seconds, error
FROM token_backfill((now() AT TIME ZONE 'UTC')::date - 8, (now() AT TIME ZONE 'UTC')::date - 2);
\echo '== token_verify_day(D-1)'
SELECT day, matches, bigquery_rows, local_rows, bigquery_fingerprint, local_fingerprint
FROM token_verify_day((now() AT TIME ZONE 'UTC')::date - 1);
\echo '== what arrived in raw_tokens'
SELECT block_timestamp::date AS day, count(*) AS rows, min(block_timestamp), max(block_timestamp)
FROM raw_tokens GROUP BY 1 ORDER BY 1;
\echo '== the ledger: how each day was read, and the view of missing days'
SELECT day, status, read_api, rows_loaded FROM token_sync.runs ORDER BY run_id;
SELECT day, last_attempt_status, rows_loaded, missing FROM token_sync.day_status;
\echo '== scheduled by pg_cron'
SELECT jobname, schedule, command FROM cron.job ORDER BY jobname;
SQL

echo
echo "PostgreSQL keeps running: psql -h $DEMO -p $PORT -U postgres tokens"
echo "Stop everything with: bash scripts/demo.sh stop"
