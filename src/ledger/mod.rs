//! The run ledger: one row per day attempt in `token_sync.runs`, the view
//! `token_sync.attempts` that tells running from abandoned attempts, and the view
//! `token_sync.day_status` that shows, per day of the synced range, the last successful
//! load and whether the day is missing.

pub mod autonomous;

use crate::day::{SyncDay, PG_EPOCH_OFFSET_MICROS};
use crate::error::{SyncError, SyncResult};
use crate::restricted::Restricted;
use pgrx::prelude::*;

pgrx::extension_sql!(
    r#"
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
COMMENT ON COLUMN token_sync.runs.snapshot_time IS 'The table snapshot a Storage Read API session read, where BigQuery reported it.';
SELECT pg_catalog.pg_extension_config_dump('token_sync.runs', '');

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
"#,
    name = "ledger",
    bootstrap
);

/// One day attempt in the ledger. Opening it and recording a failure are autonomous
/// writes (they survive whatever happens to the caller's transaction); recording the
/// success happens in the caller's transaction, so it commits together with the day.
pub struct Attempt {
    run_id: Option<i64>,
    day: SyncDay,
    target_table: String,
    source_table: String,
    started_at: String,
    backend_start: String,
}

#[derive(Debug, Clone, Default)]
pub struct LoadFigures {
    /// Rows the day holds after the sync.
    pub rows_loaded: i64,
    pub rows_reported: i64,
    pub rows_nul_stripped: i64,
    pub bytes_billed: Option<i64>,
    pub job_id: String,
    /// The day already held exactly BigQuery's rows, so it was not rewritten.
    pub unchanged: bool,
    /// Columns this attempt added to the target, as the source gained them.
    pub schema_changes: Option<String>,
    /// The API the rows were read through (`query` or `storage`); none for an unchanged day.
    pub read_api: Option<&'static str>,
    /// The read session's snapshot of the table, in Unix microseconds, where it said.
    pub snapshot_micros: Option<i64>,
}

impl LoadFigures {
    pub fn status(&self) -> &'static str {
        if self.unchanged {
            "unchanged"
        } else {
            "succeeded"
        }
    }
}

/// Becomes the ledger's owner (under SECURITY_RESTRICTED_OPERATION) until dropped: the
/// ledger's tables are written by token_sync only, never with the caller's rights.
pub fn as_owner() -> SyncResult<Restricted> {
    let runs = Spi::get_one::<pgrx::pg_sys::Oid>(
        "SELECT 'token_sync.runs'::pg_catalog.regclass::pg_catalog.oid",
    )?
    .unwrap_or_default();
    Restricted::as_owner_of(runs)
}

/// The role the ledger's own writes run as: the owner of `token_sync.runs`.
fn owner() -> SyncResult<pgrx::pg_sys::Oid> {
    Spi::get_one::<pgrx::pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = 'token_sync.runs'::pg_catalog.regclass",
    )
    .map_err(SyncError::from)
    .map(Option::unwrap_or_default)
}

/// The columns that identify an attempt, in the order `Attempt::identity` gives them.
const IDENTITY_COLUMNS: &str =
    "day, target_table, started_at, backend_pid, backend_start, source_table";

/// Placeholders for `Attempt::identity`'s text parameters, numbered from `$first`, cast to
/// the types of `IDENTITY_COLUMNS`.
fn identity_params(first: usize) -> String {
    [
        "::date",
        "",
        "::timestamptz",
        "::integer",
        "::timestamptz",
        "",
    ]
    .iter()
    .enumerate()
    .map(|(offset, cast)| format!("${}{cast}", first + offset))
    .collect::<Vec<_>>()
    .join(", ")
}

impl Attempt {
    /// Records the attempt as running. If that cannot be done on its own (no worker slot),
    /// the sync goes on and only its end is recorded.
    pub fn open(day: SyncDay, target_table: &str, source_table: &str) -> Self {
        // SAFETY: reading the backend's own start time, set once at backend start.
        let backend_start = unsafe { pgrx::pg_sys::MyStartTimestamp } + PG_EPOCH_OFFSET_MICROS;
        let mut attempt = Self {
            run_id: None,
            day,
            target_table: target_table.to_string(),
            source_table: source_table.to_string(),
            started_at: rfc3339(chrono::Utc::now().timestamp_micros()),
            backend_start: rfc3339(backend_start),
        };
        let opened = autonomous::run(
            &format!(
                "INSERT INTO token_sync.runs ({IDENTITY_COLUMNS}, status) \
                 VALUES ({}, 'running') RETURNING run_id",
                identity_params(1)
            ),
            attempt.identity(),
        );
        match opened {
            Ok(run_id) => attempt.run_id = run_id,
            Err(error) => pgrx::warning!("{}", error.message),
        }
        attempt
    }

    /// The attempt's identity as text parameters $1..$6.
    fn identity(&self) -> Vec<Option<String>> {
        vec![
            Some(self.day.to_string()),
            Some(self.target_table.clone()),
            Some(self.started_at.clone()),
            Some(std::process::id().to_string()),
            Some(self.backend_start.clone()),
            Some(self.source_table.clone()),
        ]
    }

    /// Marks the attempt succeeded (or unchanged), in the caller's transaction, as the
    /// ledger's owner: the caller may not write the ledger itself.
    pub fn record_success(&self, figures: &LoadFigures) -> SyncResult<()> {
        let _owner = as_owner()?;
        let mut args: Vec<pgrx::datum::DatumWithOid<'static>> = vec![
            figures.status().into(),
            figures.rows_loaded.into(),
            figures.rows_reported.into(),
            figures.rows_nul_stripped.into(),
            figures.bytes_billed.into(),
            figures.job_id.clone().into(),
            figures.schema_changes.clone().into(),
            figures.read_api.map(str::to_string).into(),
            figures
                .snapshot_micros
                .map(crate::day::timestamptz_from_unix_micros)
                .into(),
        ];
        if let Some(run_id) = self.run_id {
            args.push(run_id.into());
            let updated = Spi::get_one_with_args::<i64>(
                "WITH updated AS (UPDATE token_sync.runs SET status = $1, \
                 finished_at = pg_catalog.clock_timestamp(), rows_loaded = $2, rows_reported = $3, \
                 rows_nul_stripped = $4, bytes_billed = $5, job_id = $6, schema_changes = $7, \
                 read_api = $8, snapshot_time = $9 \
                 WHERE run_id = $10 RETURNING 1) SELECT count(*) FROM updated",
                &args,
            )?;
            if updated == Some(1) {
                return Ok(());
            }
            // Under REPEATABLE READ the running row is younger than our snapshot: the end
            // of the attempt becomes a row of its own, with the same identity, which
            // token_sync.attempts shows in place of the running row.
            args.pop();
        }
        args.extend(
            self.identity()
                .into_iter()
                .map(pgrx::datum::DatumWithOid::from),
        );
        Spi::run_with_args(
            &format!(
                "INSERT INTO token_sync.runs (status, rows_loaded, rows_reported, rows_nul_stripped, \
                 bytes_billed, job_id, schema_changes, read_api, snapshot_time, finished_at, {IDENTITY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, pg_catalog.clock_timestamp(), {})",
                identity_params(10)
            ),
            &args,
        )
        .map_err(SyncError::from)
    }

    /// Marks the attempt failed, on its own: the caller's transaction is rolling back.
    pub fn record_failure(&self, error: &str) {
        let recorded = match self.run_id {
            Some(run_id) => autonomous::run(
                "UPDATE token_sync.runs SET status = 'failed', finished_at = pg_catalog.clock_timestamp(), \
                 error = $2 WHERE run_id = $1::bigint",
                vec![Some(run_id.to_string()), Some(error.to_string())],
            ),
            None => autonomous::run(
                &format!(
                    "INSERT INTO token_sync.runs ({IDENTITY_COLUMNS}, status, finished_at, error) \
                     VALUES ({}, 'failed', pg_catalog.clock_timestamp(), $7)",
                    identity_params(1)
                ),
                self.identity()
                    .into_iter()
                    .chain([Some(error.to_string())])
                    .collect(),
            ),
        };
        if let Err(failure) = recorded {
            pgrx::warning!("{}", failure.message);
        }
    }
}

fn rfc3339(unix_micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(unix_micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn identity_placeholders_are_numbered_from_where_they_start() {
        assert_eq!(
            super::identity_params(7),
            "$7::date, $8, $9::timestamptz, $10::integer, $11::timestamptz, $12"
        );
    }
}
