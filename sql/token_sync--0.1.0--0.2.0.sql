-- token_sync 0.1.0 -> 0.2.0
-- The ledger gains the status 'unchanged' (a re-sync that found the day as BigQuery has it
-- and did not rewrite it), and token_sync.attempts hides the running row of an attempt
-- whose end was written as a row of its own (under REPEATABLE READ or SERIALIZABLE).
\echo Use "ALTER EXTENSION token_sync UPDATE" to load this file. \quit

ALTER TABLE token_sync.runs
    DROP CONSTRAINT runs_status_check,
    ADD CONSTRAINT runs_status_check CHECK (status IN ('running', 'succeeded', 'unchanged', 'failed'));

-- An attempt still marked running is abandoned once the transaction that made it is gone
-- (its backend was killed, the server restarted, or the caller rolled back).
-- Under REPEATABLE READ or SERIALIZABLE the caller cannot see the running row its attempt
-- opened on its own, so the attempt's end is a row of its own with the same identity
-- (backend, start, day, target), committed with the day; the running row it closes is not
-- shown. If the caller rolls back, only the running row is left, and it shows as abandoned.
CREATE OR REPLACE VIEW token_sync.attempts AS
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

CREATE OR REPLACE VIEW token_sync.day_status AS
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
    SELECT DISTINCT ON (target_table, day) target_table, day, outcome, error
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
       (s.day IS NULL)       AS missing
FROM days
LEFT JOIN last_success s USING (target_table, day)
LEFT JOIN last_attempt a USING (target_table, day)
ORDER BY days.target_table, days.day;
COMMENT ON VIEW token_sync.day_status IS 'Per day of the synced range: last successful load, last attempt, and whether the day is missing.';
