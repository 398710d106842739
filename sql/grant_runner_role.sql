-- The role that may run token_sync. The functions are not executable by PUBLIC, and the
-- token_sync.* settings are superuser-only, so a granted role can sync days but cannot
-- redirect the server's credentials. Run as a superuser after CREATE EXTENSION and after
-- the target tables exist (the first sync creates them), and again after registering more:
--   psql -d mydb -f sql/grant_runner_role.sql
--   GRANT token_sync_runner TO alice;
\set ON_ERROR_STOP on
DO $$ BEGIN
    CREATE ROLE token_sync_runner NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT EXECUTE ON FUNCTION token_sync_day(date), token_backfill(date, date),
      token_backfill(date, date, integer), token_verify_day(date), token_catch_up(date) TO token_sync_runner;
-- Registered tables: the runner syncs and verifies them; registering (add_table,
-- remove_table) stays with the superuser, since it decides what is fetched and billed.
GRANT EXECUTE ON FUNCTION token_sync.sync_day(text, date), token_sync.backfill(text, date, date),
      token_sync.backfill(text, date, date, integer), token_sync.verify_day(text, date), token_sync.sync_all(date), token_sync.catch_up(date)
      TO token_sync_runner;
GRANT USAGE ON SCHEMA token_sync TO token_sync_runner;
-- Citus and TimescaleDB targets stage each day in a temporary table (PUBLIC has TEMPORARY
-- unless it was revoked).
SELECT format('GRANT TEMPORARY ON DATABASE %I TO token_sync_runner', current_database()) \gexec
GRANT SELECT ON token_sync.tables TO token_sync_runner;
-- The ledger: read only. token_sync writes it itself, as the ledger's owner, so that a
-- runner can sync days but not write their history (0.4.0 and earlier granted INSERT and
-- UPDATE: taken back here).
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON token_sync.runs FROM token_sync_runner;
GRANT SELECT ON token_sync.runs, token_sync.run_digests TO token_sync_runner;
GRANT SELECT ON token_sync.attempts, token_sync.day_status, token_sync.catch_up, token_sync.stale_days,
      token_sync.backfills, token_sync.backfill_progress TO token_sync_runner;
-- The target tables: token_sync.target_table's, and each registered table's that exists.
SELECT format('GRANT SELECT, INSERT, DELETE ON %s TO token_sync_runner',
              current_setting('token_sync.target_table')::regclass) \gexec
SELECT format('GRANT SELECT, INSERT, DELETE ON %s TO token_sync_runner', target_table::regclass)
FROM token_sync.tables WHERE to_regclass(target_table) IS NOT NULL \gexec
