-- token_sync 0.4.0 -> 0.5.0
-- The nightly catch-up (src/catch_up.rs): the state of its tries, the view of stale days,
-- and its two functions, as a new install makes them. A day is read and written as its
-- target's owner, who may call the fingerprint's spellings: USAGE on the schema for
-- PUBLIC (every object in it keeps its own privileges). The ledger is written by
-- token_sync only: the runner role of sql/grant_runner_role.sql loses INSERT and UPDATE.
-- The ledger's snapshot_time also holds a query job's creation time; its comment says so.
-- token_sync.run_digests keeps, per hour of each day, a digest of the rows a load wrote.
-- token_backfill and token_sync.backfill gain overloads with `parallel`, recorded in
-- token_sync.backfills and shown by token_sync.backfill_progress.
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

-- A backfill's days at once in background workers (src/sql_api/parallel.rs): overloads
-- with a third argument, so that calls with two keep the functions and grants they had.
CREATE FUNCTION "token_backfill"(
	"from_day" date,
	"to_day" date,
	"parallel" INT
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
AS 'MODULE_PATHNAME', 'token_backfill_in_parallel_wrapper';

CREATE FUNCTION token_sync."backfill"(
	"source_table" TEXT,
	"from_day" date,
	"to_day" date,
	"parallel" INT
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
AS 'MODULE_PATHNAME', 'backfill_in_parallel_wrapper';

REVOKE ALL ON FUNCTION token_backfill(date, date, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION token_sync.backfill(text, date, date, integer) FROM PUBLIC;

COMMENT ON COLUMN token_sync.runs.snapshot_time IS 'BigQuery''s time as of which the attempt read or compared the day: a read session''s snapshot, or the query job''s creation. A re-sync whose partition BigQuery has not written to since is unchanged without a comparison.';

-- What each load wrote, hour by hour (src/day_digest.rs): a re-sync of a partition BigQuery
-- has written to since rewrites only the hours whose digest changed.
CREATE TABLE token_sync.run_digests (
    run_id       bigint   PRIMARY KEY REFERENCES token_sync.runs ON DELETE CASCADE,
    hour_digests bigint[] NOT NULL CONSTRAINT run_digests_hours_check CHECK (pg_catalog.cardinality(hour_digests) = 24)
);
COMMENT ON TABLE token_sync.run_digests IS 'Per successful attempt: for each hour of its day (UTC, 0 to 23), the sum of the 64-bit XXH3 of each row''s COPY bytes. An unchanged attempt carries its day''s on; none where the day''s column has no hours or the day was compared.';
SELECT pg_catalog.pg_extension_config_dump('token_sync.run_digests', '');

-- The backfills called with parallel, and their progress (src/ledger/backfills.sql).
-- One row per backfill called with `parallel` (token_backfill(from_day, to_day, parallel),
-- token_sync.backfill(source_table, from_day, to_day, parallel)): written on its own when
-- it starts and when it ends, so that other sessions see it while it runs.
CREATE TABLE token_sync.backfills (
    backfill_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_table  text        NOT NULL,
    source_table  text        NOT NULL,
    from_day      date        NOT NULL,
    to_day        date        NOT NULL,
    parallel      integer     NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    backend_pid   integer     NOT NULL,
    backend_start timestamptz NOT NULL
);
COMMENT ON TABLE token_sync.backfills IS 'One row per backfill called with parallel; token_sync.backfill_progress shows how far each is.';
SELECT pg_catalog.pg_extension_config_dump('token_sync.backfills', '');

-- Each backfill with its days' last attempts since it started: done (succeeded or
-- unchanged), failed (failed or abandoned), running; the rows they loaded; and, while it
-- runs, when it will end at the pace so far. Whether it runs is read from
-- pg_stat_activity, which shows another role's session only to members of
-- pg_read_all_stats.
CREATE VIEW token_sync.backfill_progress AS
SELECT b.backfill_id,
       b.source_table,
       b.target_table,
       b.from_day,
       b.to_day,
       b.parallel,
       b.to_day - b.from_day + 1 AS days,
       p.done                    AS days_done,
       p.failed                  AS days_failed,
       p.running                 AS days_running,
       p.rows_loaded,
       b.started_at,
       b.finished_at,
       s.state,
       CASE WHEN s.state = 'running' AND p.done + p.failed > 0
            THEN pg_catalog.now() + (pg_catalog.now() - b.started_at) / (p.done + p.failed)
                 * (b.to_day - b.from_day + 1 - p.done - p.failed) END AS eta
FROM token_sync.backfills b
CROSS JOIN LATERAL (
    SELECT CASE WHEN b.finished_at IS NOT NULL THEN 'finished'
                WHEN EXISTS (SELECT FROM pg_catalog.pg_stat_activity a
                             WHERE a.pid = b.backend_pid AND a.backend_start = b.backend_start
                               AND a.xact_start <= b.started_at) THEN 'running'
                ELSE 'stopped' END AS state
) s
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE l.outcome IN ('succeeded', 'unchanged')) AS done,
           count(*) FILTER (WHERE l.outcome IN ('failed', 'abandoned'))    AS failed,
           count(*) FILTER (WHERE l.outcome = 'running')                   AS running,
           coalesce(sum(l.rows_loaded), 0)                                 AS rows_loaded
    FROM (SELECT DISTINCT ON (a.day) a.outcome, a.rows_loaded
          FROM token_sync.attempts a
          WHERE a.target_table = b.target_table AND a.day BETWEEN b.from_day AND b.to_day
            AND a.started_at >= b.started_at
            AND (b.finished_at IS NULL OR a.started_at <= b.finished_at)
          ORDER BY a.day, a.started_at DESC, a.run_id DESC) l
) p;
COMMENT ON VIEW token_sync.backfill_progress IS 'Each backfill called with parallel: days done, failed and running, rows loaded, state (running, finished, stopped) and the expected end.';
