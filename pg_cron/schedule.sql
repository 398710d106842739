-- Schedules token_sync with pg_cron in the database named by cron.database_name:
--   token-sync-d1  every night at 03:30 UTC, yesterday (D-1);
--   token-sync-d2  every night at 04:30 UTC, the day before (D-2) again, for rows that
--                  reach BigQuery late. Re-syncing a day replaces it: nothing is doubled.
-- The day is computed in UTC, whatever the server's TimeZone.
--
--   psql -d mydb -f pg_cron/schedule.sql
--   psql -d mydb -v d1_schedule='*/5 * * * *' -f pg_cron/schedule.sql   # other times
--
-- Running it again updates the jobs in place (cron.schedule upserts by job name).
\set ON_ERROR_STOP on
\if :{?d1_schedule}
\else
  \set d1_schedule '30 3 * * *'
\endif
\if :{?d2_schedule}
\else
  \set d2_schedule '30 4 * * *'
\endif

SELECT cron.schedule('token-sync-d1', :'d1_schedule',
       $$SELECT token_sync_day((now() AT TIME ZONE 'UTC')::date - 1)$$) AS d1_job_id;
SELECT cron.schedule('token-sync-d2', :'d2_schedule',
       $$SELECT token_sync_day((now() AT TIME ZONE 'UTC')::date - 2)$$) AS d2_job_id;
