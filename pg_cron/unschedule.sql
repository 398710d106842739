-- Removes the jobs pg_cron/schedule.sql and pg_cron/schedule_registered.sql created. The
-- data, the registry and the ledger stay.
--   psql -d mydb -f pg_cron/unschedule.sql
\set ON_ERROR_STOP on
SELECT cron.unschedule(jobid) FROM cron.job
WHERE jobname IN ('token-sync-d1', 'token-sync-d2', 'token-sync-catch-up',
                  'token-sync-all-d1', 'token-sync-all-d2', 'token-sync-all-catch-up');
