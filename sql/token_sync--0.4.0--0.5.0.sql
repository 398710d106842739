-- token_sync 0.4.0 -> 0.5.0
-- The nightly catch-up (src/catch_up.rs): the state of its tries, the view of stale days,
-- and its two functions, as a new install makes them. A day is read and written as its
-- target's owner, who may call the fingerprint's spellings: USAGE on the schema for
-- PUBLIC (every object in it keeps its own privileges). The ledger is written by
-- token_sync only: the runner role of sql/grant_runner_role.sql loses INSERT and UPDATE.
-- The ledger's snapshot_time also holds a query job's creation time; its comment says so.
\echo Use "ALTER EXTENSION token_sync UPDATE" to load this file. \quit

GRANT USAGE ON SCHEMA token_sync TO PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'token_sync_runner') THEN
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON token_sync.runs FROM token_sync_runner;
    END IF;
END $$;

CREATE TABLE token_sync.catch_up (
    target_table  text    NOT NULL,
    day           date    NOT NULL,
    tries         integer NOT NULL,
    last_tried_on date    NOT NULL,
    next_try_on   date,
    last_error    text,
    PRIMARY KEY (target_table, day)
);
COMMENT ON TABLE token_sync.catch_up IS 'The nightly catch-up''s failed tries of stale days: next_try_on is NULL once a day is given up.';
SELECT pg_catalog.pg_extension_config_dump('token_sync.catch_up', '');

CREATE VIEW token_sync.stale_days AS
SELECT s.target_table,
       s.day,
       s.source_table,
       s.last_attempt_status,
       coalesce(c.last_error, s.last_error) AS last_error,
       coalesce(c.tries, 0)                 AS catch_up_tries,
       c.last_tried_on,
       c.next_try_on,
       CASE WHEN c.day IS NOT NULL AND c.next_try_on IS NULL THEN 'given_up'
            WHEN c.next_try_on > (pg_catalog.now() AT TIME ZONE 'UTC')::date THEN 'waiting'
            ELSE 'due' END                  AS state
FROM token_sync.day_status s
LEFT JOIN token_sync.catch_up c ON c.target_table = s.target_table AND c.day = s.day
WHERE s.missing OR s.last_attempt_status IN ('failed', 'abandoned');
COMMENT ON VIEW token_sync.stale_days IS 'Days whose last attempt failed or was abandoned, or that never loaded between days that did: due (the next catch-up tries it), waiting (until next_try_on) or given_up.';

CREATE FUNCTION "token_catch_up"(
	"night" date
) RETURNS TABLE (
	"day" date,
	"status" TEXT,
	"rows_loaded" bigint,
	"rows_reported" bigint,
	"seconds" double precision,
	"bytes_billed" bigint,
	"job_id" TEXT,
	"error" TEXT
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'token_catch_up_wrapper';

CREATE FUNCTION token_sync."catch_up"(
	"night" date
) RETURNS TABLE (
	"source_table" TEXT,
	"day" date,
	"status" TEXT,
	"rows_loaded" bigint,
	"rows_reported" bigint,
	"seconds" double precision,
	"bytes_billed" bigint,
	"job_id" TEXT,
	"error" TEXT
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'catch_up_wrapper';

REVOKE ALL ON FUNCTION token_catch_up(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION token_sync.catch_up(date) FROM PUBLIC;

COMMENT ON COLUMN token_sync.runs.snapshot_time IS 'BigQuery''s time as of which the attempt read or compared the day: a read session''s snapshot, or the query job''s creation. A re-sync whose partition BigQuery has not written to since is unchanged without a comparison.';
