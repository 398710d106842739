-- Schedules token_sync.sync_all with pg_cron in the database named by cron.database_name,
-- for every table registered in token_sync.tables (see sql/crypto_ethereum.sql):
--   token-sync-all-d1  every night at 03:45 UTC, yesterday (D-1);
--   token-sync-all-d2  every night at 04:45 UTC, the day before (D-2) again, for rows that
--                      reach BigQuery late. Re-syncing a day replaces it: nothing is doubled.
--   token-sync-all-catch-up  every night at 05:45 UTC, every registered table's stale days
--                      (token_sync.catch_up; see pg_cron/schedule.sql).
-- Each table-day is its own subtransaction: one failing table does not stop the others,
-- and each outcome is in token_sync.runs. The day is computed in UTC.
--
--   psql -d mydb -f pg_cron/schedule_registered.sql
--   psql -d mydb -v d1_schedule='*/5 * * * *' -f pg_cron/schedule_registered.sql
--
-- Running it again updates the jobs in place (cron.schedule upserts by job name).
\set ON_ERROR_STOP on
\if :{?d1_schedule}
\else
  \set d1_schedule '45 3 * * *'
\endif
\if :{?d2_schedule}
\else
  \set d2_schedule '45 4 * * *'
\endif
\if :{?catch_up_schedule}
\else
  \set catch_up_schedule '45 5 * * *'
\endif

SELECT cron.schedule('token-sync-all-d1', :'d1_schedule',
       $$SELECT * FROM token_sync.sync_all((now() AT TIME ZONE 'UTC')::date - 1)$$) AS d1_job_id;
SELECT cron.schedule('token-sync-all-d2', :'d2_schedule',
       $$SELECT * FROM token_sync.sync_all((now() AT TIME ZONE 'UTC')::date - 2)$$) AS d2_job_id;
SELECT cron.schedule('token-sync-all-catch-up', :'catch_up_schedule',
       $$SELECT * FROM token_sync.catch_up((now() AT TIME ZONE 'UTC')::date)$$) AS catch_up_job_id;
