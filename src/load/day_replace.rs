//! Replacing one day of the target table: the day's rows are deleted and the new ones
//! COPYed in, inside the caller's transaction, so other sessions see the old day until
//! commit and the new one after it, never a half-loaded day.

use super::copy_from::{copy_into, ChunkSource};
use super::target::TargetTable;
use crate::day::SyncDay;
use crate::error::{SyncError, SyncResult};
use crate::source::Source;
use pgrx::prelude::*;

/// Serialises syncs of the same target and day until the end of the transaction: a second
/// session waits (bounded by `lock_timeout`, cancellable) and then replaces the day again,
/// so the result is one copy. Different days do not wait for each other.
pub fn lock_day(target: &TargetTable, day: SyncDay) -> SyncResult<()> {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('token_sync ' || $1), $2 - DATE '2000-01-01')",
        &[target.qualified_name.clone().into(), day.to_pg().into()],
    )
    .map_err(SyncError::from)
}

/// Deletes the day's rows and COPYs in what `next_chunk` yields, one line per row with the
/// source's columns in the schema's order; returns the rows stored.
pub fn replace_day(
    source: &Source,
    target: &TargetTable,
    day: SyncDay,
    next_chunk: Box<ChunkSource<'static>>,
) -> SyncResult<u64> {
    Spi::run_with_args(
        &format!(
            "DELETE FROM {} WHERE {}",
            target.qualified_name,
            source.time.postgres_filter(1)
        ),
        &[day.start().into(), day.end().into()],
    )?;
    let columns: Vec<&str> = source
        .schema
        .columns
        .iter()
        .map(|column| column.name.as_str())
        .collect();
    copy_into(target.oid, &target.qualified_name, &columns, next_chunk)
}

/// The rows the day holds in the target, read back through a query: what every reader of
/// the table sees, whatever COPY reported.
pub fn rows_in_day(source: &Source, target: &TargetTable, day: SyncDay) -> SyncResult<i64> {
    Spi::get_one_with_args::<i64>(
        &format!(
            "SELECT pg_catalog.count(*) FROM {} WHERE {}",
            target.qualified_name,
            source.time.postgres_filter(1)
        ),
        &[day.start().into(), day.end().into()],
    )
    .map_err(SyncError::from)
    .map(Option::unwrap_or_default)
}
