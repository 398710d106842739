//! Replacing one day of the target table: the day's rows are deleted and the new ones
//! inserted inside the caller's transaction, so other sessions see the old day until
//! commit and the new one after it, never a half-loaded day.

use super::target::{spi_error, TargetTable, TARGET_COLUMNS};
use crate::bigquery::decode::Page;
use crate::day::{timestamptz_from_unix_micros, SyncDay};
use crate::error::{SyncError, SyncResult};
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;

/// Serialises syncs of the same target and day until the end of the transaction: a second
/// session waits (bounded by `lock_timeout`, cancellable) and then replaces the day again,
/// so the result is one copy. Different days do not wait for each other.
pub fn lock_day(target: &TargetTable, day: SyncDay) -> SyncResult<()> {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('token_sync ' || $1), $2 - DATE '2000-01-01')",
        &[target.qualified_name.clone().into(), day.to_pg().into()],
    )
    .map_err(spi_error)
}

pub struct DayWriter {
    day: SyncDay,
    insert_sql: String,
    pub rows_written: u64,
}

impl DayWriter {
    /// Deletes the day's current rows and returns a writer for the new ones.
    pub fn replace_day(target: &TargetTable, day: SyncDay) -> SyncResult<Self> {
        let table = &target.qualified_name;
        Spi::run_with_args(
            &format!("DELETE FROM {table} WHERE block_timestamp >= $1 AND block_timestamp < $2"),
            &[day.start().into(), day.end().into()],
        )
        .map_err(spi_error)?;
        let columns: Vec<&str> = TARGET_COLUMNS.iter().map(|(name, _)| *name).collect();
        let arrays = [
            "text",
            "text",
            "text",
            "text",
            "text",
            "timestamptz",
            "bigint",
            "text",
        ]
        .iter()
        .enumerate()
        .map(|(i, kind)| format!("pg_catalog.unnest(${}::{kind}[])", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
        let insert_sql = format!(
            "INSERT INTO {table} ({}) SELECT * FROM ROWS FROM ({arrays})",
            columns.join(", ")
        );
        Ok(Self {
            day,
            insert_sql,
            rows_written: 0,
        })
    }

    /// Inserts one page with a single statement: one array per column.
    pub fn write(&mut self, page: Page) -> SyncResult<()> {
        let count = page.rows.len();
        let mut address = Vec::with_capacity(count);
        let mut symbol = Vec::with_capacity(count);
        let mut name = Vec::with_capacity(count);
        let mut decimals = Vec::with_capacity(count);
        let mut total_supply = Vec::with_capacity(count);
        let mut block_timestamp: Vec<TimestampWithTimeZone> = Vec::with_capacity(count);
        let mut block_number = Vec::with_capacity(count);
        let mut block_hash = Vec::with_capacity(count);
        let (start, end) = (self.day.start_unix_micros(), self.day.end_unix_micros());
        for row in page.rows {
            if row.block_timestamp < start || row.block_timestamp >= end {
                return Err(SyncError::bad_source_data(
                    format!("BigQuery returned a row outside {} (block {})", self.day, row.block_number),
                    "The source query's day filter was not applied; nothing was written. Check token_sync.api_url.",
                ));
            }
            address.push(row.address);
            symbol.push(row.symbol);
            name.push(row.name);
            decimals.push(row.decimals);
            total_supply.push(row.total_supply);
            block_timestamp.push(timestamptz_from_unix_micros(row.block_timestamp));
            block_number.push(row.block_number);
            block_hash.push(row.block_hash);
        }
        let arguments: [DatumWithOid; 8] = [
            address.into(),
            symbol.into(),
            name.into(),
            decimals.into(),
            total_supply.into(),
            block_timestamp.into(),
            block_number.into(),
            block_hash.into(),
        ];
        Spi::run_with_args(&self.insert_sql, &arguments).map_err(spi_error)?;
        self.rows_written += count as u64;
        Ok(())
    }
}
