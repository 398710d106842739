-- Schedules token_sync with pg_cron in the database named by cron.database_name:
--   token-sync-d1  every night at 03:30 UTC, yesterday (D-1);
--   token-sync-d2  every night at 04:30 UTC, the day before (D-2) again, for rows that
--                  reach BigQuery late. Re-syncing a day replaces it: nothing is doubled.
--   token-sync-catch-up  every night at 05:30 UTC, every stale day of the last
--                  token_sync.catch_up_window_days (a day whose last attempt failed or was
--                  abandoned, or that never loaded between days that did), oldest first, at
--                  most token_sync.catch_up_max_days a night; a day that keeps failing is
--                  tried 1, 2, 4, ... nights apart, then given up (token_sync.stale_days).
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
\if :{?catch_up_schedule}
\else
  \set catch_up_schedule '30 5 * * *'
\endif

SELECT cron.schedule('token-sync-d1', :'d1_schedule',
       $$SELECT token_sync_day((now() AT TIME ZONE 'UTC')::date - 1)$$) AS d1_job_id;
SELECT cron.schedule('token-sync-d2', :'d2_schedule',
       $$SELECT token_sync_day((now() AT TIME ZONE 'UTC')::date - 2)$$) AS d2_job_id;
SELECT cron.schedule('token-sync-catch-up', :'catch_up_schedule',
       $$SELECT * FROM token_catch_up((now() AT TIME ZONE 'UTC')::date)$$) AS catch_up_job_id;
