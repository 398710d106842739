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
