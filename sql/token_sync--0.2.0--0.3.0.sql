-- token_sync 0.2.0 -> 0.3.0
-- Any day-partitioned BigQuery table, not only tokens: the registry token_sync.tables, the
-- functions of schema token_sync for registered tables, and the ledger's source_table
-- (NULL for attempts made before this version) and schema_changes. The views are made again to show it.
\echo Use "ALTER EXTENSION token_sync UPDATE" to load this file. \quit

ALTER TABLE token_sync.runs ADD COLUMN source_table text, ADD COLUMN schema_changes text;
COMMENT ON COLUMN token_sync.runs.source_table IS 'The BigQuery table the day came from (NULL for attempts made before 0.3.0).';
COMMENT ON COLUMN token_sync.runs.schema_changes IS 'Columns the attempt added to the target because the source gained them.';

DROP VIEW token_sync.day_status;
DROP VIEW token_sync.attempts;

-- An attempt still marked running is abandoned once the transaction that made it is gone
-- (its backend was killed, the server restarted, or the caller rolled back).
-- Under REPEATABLE READ or SERIALIZABLE the caller cannot see the running row its attempt
-- opened on its own, so the attempt's end is a row of its own with the same identity
-- (backend, start, day, target), committed with the day; the running row it closes is not
-- shown. If the caller rolls back, only the running row is left, and it shows as abandoned.
CREATE VIEW token_sync.attempts AS
SELECT r.*,
       CASE WHEN r.status = 'running' AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_stat_activity a
                WHERE a.pid = r.backend_pid AND a.backend_start = r.backend_start
                  AND a.xact_start <= r.started_at)
            THEN 'abandoned' ELSE r.status END AS outcome
FROM token_sync.runs r
WHERE NOT (r.status = 'running' AND EXISTS (
    SELECT 1 FROM token_sync.runs closed
    WHERE closed.status <> 'running' AND closed.run_id <> r.run_id
      AND closed.target_table = r.target_table AND closed.day = r.day
      AND closed.started_at = r.started_at AND closed.backend_pid = r.backend_pid
      AND closed.backend_start = r.backend_start));
COMMENT ON VIEW token_sync.attempts IS 'token_sync.runs with outcome: running, succeeded, failed or abandoned.';

CREATE VIEW token_sync.day_status AS
WITH synced_range AS (
    SELECT target_table, min(day) AS first_day, max(day) AS last_day
    FROM token_sync.runs GROUP BY target_table
), days AS (
    SELECT r.target_table, d::date AS day
    FROM synced_range r, generate_series(r.first_day, r.last_day, interval '1 day') AS d
), last_success AS (
    SELECT DISTINCT ON (target_table, day) target_table, day, finished_at, rows_loaded, job_id
    FROM token_sync.runs WHERE status IN ('succeeded', 'unchanged')
    ORDER BY target_table, day, finished_at DESC
), last_attempt AS (
    SELECT DISTINCT ON (target_table, day) target_table, day, outcome, error, source_table
    FROM token_sync.attempts
    ORDER BY target_table, day, started_at DESC, run_id DESC
)
SELECT days.target_table,
       days.day,
       s.finished_at         AS last_success_at,
       s.rows_loaded,
       s.job_id,
       a.outcome             AS last_attempt_status,
       a.error               AS last_error,
       (s.day IS NULL)       AS missing,
       a.source_table
FROM days
LEFT JOIN last_success s USING (target_table, day)
LEFT JOIN last_attempt a USING (target_table, day)
ORDER BY days.target_table, days.day;
COMMENT ON VIEW token_sync.day_status IS 'Per day of the synced range: last successful load, last attempt, and whether the day is missing.';
CREATE TABLE token_sync.tables (
    source_table text        PRIMARY KEY,
    target_table text        NOT NULL,
    time_column  text        NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE token_sync.tables IS 'The BigQuery tables token_sync mirrors: token_sync.add_table registers, token_sync.sync_all syncs them all.';
SELECT pg_catalog.pg_extension_config_dump('token_sync.tables', '');

CREATE FUNCTION token_sync."add_table"(
	"source_table" TEXT,
	"target_table" TEXT DEFAULT NULL,
	"time_column" TEXT DEFAULT NULL
) RETURNS TABLE (
	"source_table" TEXT,
	"target_table" TEXT,
	"time_column" TEXT,
	"added_at" timestamp with time zone,
	"updated_at" timestamp with time zone
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'add_table_wrapper';

CREATE FUNCTION token_sync."remove_table"(
	"source_table" TEXT
) RETURNS bool
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'remove_table_wrapper';

CREATE FUNCTION token_sync."sync_day"(
	"source_table" TEXT,
	"day" date
) RETURNS TABLE (
	"day" date,
	"rows_loaded" bigint,
	"rows_reported" bigint,
	"seconds" double precision,
	"bytes_billed" bigint,
	"job_id" TEXT
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_day_wrapper';

CREATE FUNCTION token_sync."backfill"(
	"source_table" TEXT,
	"from_day" date,
	"to_day" date
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
AS 'MODULE_PATHNAME', 'backfill_wrapper';

CREATE FUNCTION token_sync."verify_day"(
	"source_table" TEXT,
	"day" date
) RETURNS TABLE (
	"day" date,
	"matches" bool,
	"bigquery_rows" bigint,
	"local_rows" bigint,
	"bigquery_min_timestamp" timestamp with time zone,
	"local_min_timestamp" timestamp with time zone,
	"bigquery_max_timestamp" timestamp with time zone,
	"local_max_timestamp" timestamp with time zone,
	"bigquery_fingerprint" bigint,
	"local_fingerprint" bigint,
	"job_id" TEXT
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'verify_day_wrapper';

CREATE FUNCTION token_sync."sync_all"(
	"day" date
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
AS 'MODULE_PATHNAME', 'sync_all_wrapper';

REVOKE ALL ON FUNCTION token_sync.add_table(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION token_sync.remove_table(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION token_sync.sync_day(text, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION token_sync.backfill(text, date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION token_sync.verify_day(text, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION token_sync.sync_all(date) FROM PUBLIC;
