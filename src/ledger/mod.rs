//! The run ledger: one row per day attempt in `token_sync.runs`, the view
//! `token_sync.attempts` that tells running from abandoned attempts, and the view
//! `token_sync.day_status` that shows, per day of the synced range, the last successful
//! load and whether the day is missing; `backfills`, the backfills called with `parallel`.

pub mod autonomous;
pub mod backfills;

use crate::day::{SyncDay, PG_EPOCH_OFFSET_MICROS};
use crate::error::{SyncError, SyncResult};
use crate::restricted::Restricted;
use pgrx::prelude::*;

pgrx::extension_sql_file!("ledger.sql", name = "ledger", bootstrap);

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
    /// The day already held exactly BigQuery's rows, so it was not rewritten: how that was known.
    pub unchanged: Option<Unchanged>,
    /// Columns this attempt added to the target, as the source gained them.
    pub schema_changes: Option<String>,
    /// The API the rows were read through (`query` or `storage`); none for an unchanged day.
    pub read_api: Option<&'static str>,
    /// BigQuery's time as of which the day was read or compared (Unix µs), where it said:
    /// a read session's snapshot, or the query job's creation.
    pub snapshot_micros: Option<i64>,
    /// What the day holds from this load, hour by hour (`crate::day_digest`), where known.
    pub hour_digests: Option<Vec<i64>>,
}

/// How a re-sync knew that the day had not changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unchanged {
    /// Both sides' row count, first and last time and fingerprint are the same.
    SameFingerprint,
    /// BigQuery has not written to the day's partition since the last load read it, and
    /// both sides hold that load's rows.
    PartitionUnwritten,
    /// BigQuery wrote to the partition, but every hour of its rows has the digest of the
    /// rows the last load wrote.
    SameHours,
}

impl Unchanged {
    pub fn reason(self) -> &'static str {
        match self {
            Self::SameFingerprint => "same fingerprint",
            Self::PartitionUnwritten => "its partition not written since it was read",
            Self::SameHours => {
                "its partition written since it was read, every hour's rows the same"
            }
        }
    }
}

impl LoadFigures {
    pub fn status(&self) -> &'static str {
        if self.unchanged.is_some() {
            "unchanged"
        } else {
            "succeeded"
        }
    }
}

/// What the last successful attempt at a day left: the rows the day held after it,
/// BigQuery's time as of which they were read or compared, and their digest hour by hour,
/// where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastLoad {
    pub rows: i64,
    pub snapshot_micros: Option<i64>,
    pub hour_digests: Option<Vec<i64>>,
}

/// The last successful attempt at `day` of `target_table`, read as the ledger's owner (the
/// caller may not read the ledger); None if it came from another source than
/// `source_table`, or if an attempt at any day of the target added columns after it (the
/// day holds none of their values).
pub fn last_load(
    target_table: &str,
    source_table: &str,
    day: SyncDay,
) -> SyncResult<Option<LastLoad>> {
    let _owner = as_owner()?;
    let hour_digests = if digests_kept()? {
        "(SELECT d.hour_digests FROM token_sync.run_digests d WHERE d.run_id = r.run_id)"
    } else {
        "NULL::bigint[]"
    };
    Spi::connect(|client| {
        let mut rows = client.select(
            &format!(
                "SELECT r.rows_loaded, (EXTRACT(EPOCH FROM r.snapshot_time) * 1000000)::bigint, \
                 r.source_table IS NOT DISTINCT FROM $3 AND NOT EXISTS (SELECT FROM token_sync.runs c \
                   WHERE c.target_table = r.target_table AND c.schema_changes IS NOT NULL \
                   AND c.status IN ('succeeded', 'unchanged') AND c.finished_at > r.finished_at), \
                 {hour_digests} FROM token_sync.runs r WHERE r.target_table = $1 AND r.day = $2 \
                 AND r.status IN ('succeeded', 'unchanged') ORDER BY r.finished_at DESC LIMIT 1"
            ),
            Some(1),
            &[target_table.into(), day.to_pg().into(), source_table.into()],
        )?;
        let Some(row) = rows.next() else {
            return Ok(None);
        };
        if row.get::<bool>(3)? != Some(true) {
            return Ok(None);
        }
        Ok(Some(LastLoad {
            rows: row.get::<i64>(1)?.unwrap_or_default(),
            snapshot_micros: row.get::<i64>(2)?,
            hour_digests: row.get::<Vec<i64>>(4)?,
        }))
    })
}

/// Whether the database has `token_sync.run_digests`: a database still on 0.4.0's SQL,
/// which this library serves until `ALTER EXTENSION token_sync UPDATE`, has not.
fn digests_kept() -> SyncResult<bool> {
    Spi::get_one::<bool>("SELECT pg_catalog.to_regclass('token_sync.run_digests') IS NOT NULL")
        .map(|kept| kept == Some(true))
        .map_err(SyncError::from)
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

/// The columns a successful attempt sets, in the order `Attempt::record_success` gives them.
const SUCCESS_COLUMNS: [&str; 9] = [
    "status",
    "rows_loaded",
    "rows_reported",
    "rows_nul_stripped",
    "bytes_billed",
    "job_id",
    "schema_changes",
    "read_api",
    "snapshot_time",
];

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
        let mut attempt = Self {
            run_id: None,
            day,
            target_table: target_table.to_string(),
            source_table: source_table.to_string(),
            started_at: rfc3339(chrono::Utc::now().timestamp_micros()),
            backend_start: backend_start(),
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
    /// ledger's owner: the caller may not write the ledger itself. Its digests, if any, go
    /// into `token_sync.run_digests`.
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
        let placeholders = (1..=SUCCESS_COLUMNS.len()).map(|n| format!("${n}"));
        let mut run_id = None;
        if let Some(open) = self.run_id {
            args.push(open.into());
            let set = SUCCESS_COLUMNS
                .iter()
                .zip(placeholders.clone())
                .map(|(column, placeholder)| format!("{column} = {placeholder}"))
                .collect::<Vec<_>>()
                .join(", ");
            run_id = Spi::get_one_with_args::<i64>(
                &format!(
                    "WITH updated AS (UPDATE token_sync.runs SET {set}, \
                     finished_at = pg_catalog.clock_timestamp() WHERE run_id = ${} RETURNING run_id) \
                     SELECT (SELECT run_id FROM updated)",
                    SUCCESS_COLUMNS.len() + 1
                ),
                &args,
            )?;
            // Under REPEATABLE READ the running row is younger than our snapshot: the end
            // of the attempt becomes a row of its own, with the same identity, which
            // token_sync.attempts shows in place of the running row.
            args.pop();
        }
        if run_id.is_none() {
            args.extend(
                self.identity()
                    .into_iter()
                    .map(pgrx::datum::DatumWithOid::from),
            );
            run_id = Spi::get_one_with_args::<i64>(
                &format!(
                    "INSERT INTO token_sync.runs ({}, finished_at, {IDENTITY_COLUMNS}) \
                     VALUES ({}, pg_catalog.clock_timestamp(), {}) RETURNING run_id",
                    SUCCESS_COLUMNS.join(", "),
                    placeholders.collect::<Vec<_>>().join(", "),
                    identity_params(SUCCESS_COLUMNS.len() + 1)
                ),
                &args,
            )?;
        }
        match (run_id, &figures.hour_digests) {
            (Some(run_id), Some(digests)) if digests_kept()? => Spi::run_with_args(
                "INSERT INTO token_sync.run_digests (run_id, hour_digests) VALUES ($1, $2)",
                &[run_id.into(), digests.clone().into()],
            )
            .map_err(SyncError::from),
            _ => Ok(()),
        }
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

/// When this backend started, as the ledger records it (with its PID, it names the backend).
fn backend_start() -> String {
    // SAFETY: reading the backend's own start time, set once at backend start.
    rfc3339(unsafe { pgrx::pg_sys::MyStartTimestamp } + PG_EPOCH_OFFSET_MICROS)
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
