CREATE SCHEMA token_sync;
-- Each object in it keeps its own privileges (none for PUBLIC but the fingerprint's two
-- spellings): a target's owner, as whom a day is read, may call those.
GRANT USAGE ON SCHEMA token_sync TO PUBLIC;

CREATE TABLE token_sync.runs (
    run_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    day               date        NOT NULL,
    target_table      text        NOT NULL,
    status            text        NOT NULL CONSTRAINT runs_status_check
                                  CHECK (status IN ('running', 'succeeded', 'unchanged', 'failed')),
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    backend_pid       integer,
    backend_start     timestamptz,
    rows_loaded       bigint,
    rows_reported     bigint,
    rows_nul_stripped bigint,
    bytes_billed      bigint,
    job_id            text,
    error             text,
    source_table      text,
    schema_changes    text,
    read_api          text,
    snapshot_time     timestamptz
);
CREATE INDEX runs_day_idx ON token_sync.runs (target_table, day, started_at DESC);
COMMENT ON TABLE token_sync.runs IS 'One row per token_sync day attempt; see token_sync.attempts for running vs abandoned.';
COMMENT ON COLUMN token_sync.runs.source_table IS 'The BigQuery table the day came from (NULL for attempts made before 0.3.0).';
COMMENT ON COLUMN token_sync.runs.schema_changes IS 'Columns the attempt added to the target because the source gained them.';
COMMENT ON COLUMN token_sync.runs.read_api IS 'How the rows were read: storage (a Storage Read API session) or query (a query job); NULL for an unchanged day.';
COMMENT ON COLUMN token_sync.runs.snapshot_time IS 'BigQuery''s time as of which the attempt read or compared the day: a read session''s snapshot, or the query job''s creation. A re-sync whose partition BigQuery has not written to since is unchanged without a comparison.';
SELECT pg_catalog.pg_extension_config_dump('token_sync.runs', '');

-- What each load wrote, hour by hour (src/day_digest.rs): a re-sync of a partition BigQuery
-- has written to since rewrites only the hours whose digest changed.
CREATE TABLE token_sync.run_digests (
    run_id       bigint   PRIMARY KEY REFERENCES token_sync.runs ON DELETE CASCADE,
    hour_digests bigint[] NOT NULL CONSTRAINT run_digests_hours_check CHECK (pg_catalog.cardinality(hour_digests) = 24)
);
COMMENT ON TABLE token_sync.run_digests IS 'Per successful attempt: for each hour of its day (UTC, 0 to 23), the sum of the 64-bit XXH3 of each row''s COPY bytes. An unchanged attempt carries its day''s on; none where the day''s column has no hours or the day was compared.';
SELECT pg_catalog.pg_extension_config_dump('token_sync.run_digests', '');

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
