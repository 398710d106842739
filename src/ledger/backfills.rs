//! `token_sync.backfills` and the view `token_sync.backfill_progress`: a backfill called
//! with `parallel` is recorded when it starts and when it ends, each on its own (see
//! `autonomous`), so that other sessions can follow it.

use super::{autonomous, backend_start, rfc3339};
use crate::day::SyncDay;

pgrx::extension_sql_file!("backfills.sql", name = "backfills", requires = ["ledger"]);

pub struct Backfill {
    id: Option<i64>,
}

impl Backfill {
    /// Records the backfill as started. If that cannot be done on its own (no worker slot),
    /// a WARNING says so and the backfill goes on unrecorded.
    pub fn start(
        target_table: &str,
        source_table: &str,
        from: SyncDay,
        to: SyncDay,
        parallel: usize,
    ) -> Self {
        let recorded = autonomous::run(
            "INSERT INTO token_sync.backfills (target_table, source_table, from_day, to_day, parallel, \
             started_at, backend_pid, backend_start) \
             VALUES ($1, $2, $3::date, $4::date, $5::integer, $6::timestamptz, $7::integer, $8::timestamptz) \
             RETURNING backfill_id",
            vec![
                Some(target_table.to_string()),
                Some(source_table.to_string()),
                Some(from.to_string()),
                Some(to.to_string()),
                Some(parallel.to_string()),
                Some(rfc3339(chrono::Utc::now().timestamp_micros())),
                Some(std::process::id().to_string()),
                Some(backend_start()),
            ],
        );
        match recorded {
            Ok(id) => Self { id },
            Err(error) => {
                pgrx::warning!("{}", error.message);
                Self { id: None }
            }
        }
    }

    /// Records the backfill as finished (every day has its result).
    pub fn finish(self) {
        let Some(id) = self.id else { return };
        let recorded = autonomous::run(
            "UPDATE token_sync.backfills SET finished_at = pg_catalog.clock_timestamp() \
             WHERE backfill_id = $1::bigint",
            vec![Some(id.to_string())],
        );
        if let Err(error) = recorded {
            pgrx::warning!("{}", error.message);
        }
    }
}
