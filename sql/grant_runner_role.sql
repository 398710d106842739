-- The role that may run token_sync. The functions are not executable by PUBLIC, and the
-- token_sync.* settings are superuser-only, so a granted role can sync days but cannot
-- redirect the server's credentials. Run as a superuser after CREATE EXTENSION and after
-- the target table exists (the first sync creates it):
--   psql -d mydb -f sql/grant_runner_role.sql
--   GRANT token_sync_runner TO alice;
\set ON_ERROR_STOP on
DO $$ BEGIN
    CREATE ROLE token_sync_runner NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT EXECUTE ON FUNCTION token_sync_day(date), token_backfill(date, date), token_verify_day(date)
      TO token_sync_runner;
GRANT USAGE ON SCHEMA token_sync TO token_sync_runner;
-- The ledger: attempts are opened (INSERT) and closed (UPDATE, or under REPEATABLE READ an
-- INSERT of the attempt's end).
GRANT SELECT, INSERT, UPDATE ON token_sync.runs TO token_sync_runner;
GRANT SELECT ON token_sync.attempts, token_sync.day_status TO token_sync_runner;
-- The target table, as token_sync.target_table names it.
SELECT format('GRANT SELECT, INSERT, DELETE ON %s TO token_sync_runner',
              current_setting('token_sync.target_table')::regclass) \gexec
