//! The run ledger: one row per day attempt in `token_sync.runs`, and the view
//! `token_sync.day_status` that shows, per day of the synced range, the last successful
//! load and whether the day is missing.

use crate::day::SyncDay;
use crate::error::SyncResult;
use crate::load::target::spi_error;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

pgrx::extension_sql!(
    r#"
CREATE SCHEMA token_sync;

CREATE TABLE token_sync.runs (
    run_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    day               date        NOT NULL,
    target_table      text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('succeeded', 'failed')),
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    rows_loaded       bigint,
    rows_reported     bigint,
    rows_nul_stripped bigint,
    bytes_billed      bigint,
    job_id            text,
    error             text
);
CREATE INDEX runs_day_idx ON token_sync.runs (target_table, day, finished_at DESC);
COMMENT ON TABLE token_sync.runs IS 'One row per token_sync day attempt.';
SELECT pg_catalog.pg_extension_config_dump('token_sync.runs', '');

CREATE VIEW token_sync.day_status AS
WITH synced_range AS (
    SELECT target_table, min(day) AS first_day, max(day) AS last_day
    FROM token_sync.runs GROUP BY target_table
), days AS (
    SELECT r.target_table, d::date AS day
    FROM synced_range r, generate_series(r.first_day, r.last_day, interval '1 day') AS d
), last_success AS (
    SELECT DISTINCT ON (target_table, day) target_table, day, finished_at, rows_loaded, job_id
    FROM token_sync.runs WHERE status = 'succeeded'
    ORDER BY target_table, day, finished_at DESC
), last_attempt AS (
    SELECT DISTINCT ON (target_table, day) target_table, day, status, error
    FROM token_sync.runs
    ORDER BY target_table, day, finished_at DESC
)
SELECT days.target_table,
       days.day,
       s.finished_at         AS last_success_at,
       s.rows_loaded,
       s.job_id,
       a.status              AS last_attempt_status,
       a.error               AS last_error,
       (s.day IS NULL)       AS missing
FROM days
LEFT JOIN last_success s USING (target_table, day)
LEFT JOIN last_attempt a USING (target_table, day)
ORDER BY days.target_table, days.day;
COMMENT ON VIEW token_sync.day_status IS 'Per day of the synced range: last successful load, last attempt, and whether the day is missing.';
"#,
    name = "ledger",
    bootstrap
);

pub struct Attempt<'a> {
    pub day: SyncDay,
    pub target_table: &'a str,
    pub started_at: TimestampWithTimeZone,
    pub outcome: Result<LoadFigures, String>,
}

#[derive(Debug, Clone, Default)]
pub struct LoadFigures {
    pub rows_loaded: i64,
    pub rows_reported: i64,
    pub rows_nul_stripped: i64,
    pub bytes_billed: Option<i64>,
    pub job_id: String,
}

pub fn record(attempt: &Attempt) -> SyncResult<()> {
    let (status, figures, error) = match &attempt.outcome {
        Ok(figures) => ("succeeded", figures.clone(), None),
        Err(error) => ("failed", LoadFigures::default(), Some(error.clone())),
    };
    let succeeded = error.is_none();
    Spi::run_with_args(
        "INSERT INTO token_sync.runs (day, target_table, status, started_at, finished_at, rows_loaded, \
         rows_reported, rows_nul_stripped, bytes_billed, job_id, error) \
         VALUES ($1, $2, $3, $4, pg_catalog.clock_timestamp(), $5, $6, $7, $8, $9, $10)",
        &[
            attempt.day.to_pg().into(),
            attempt.target_table.into(),
            status.into(),
            attempt.started_at.into(),
            succeeded.then_some(figures.rows_loaded).into(),
            succeeded.then_some(figures.rows_reported).into(),
            succeeded.then_some(figures.rows_nul_stripped).into(),
            figures.bytes_billed.into(),
            succeeded.then_some(figures.job_id).into(),
            error.into(),
        ],
    )
    .map_err(spi_error)
}
