//! The day's partition as BigQuery's metadata describes it (its dataset's
//! `INFORMATION_SCHEMA.PARTITIONS`): how many rows it holds and when data was last written
//! to it. A metadata query: BigQuery bills its minimum (10 MB), not a scan of the day.

use super::context::BigQuery;
use super::query;
use super::rest::pages::{self, SingleRow};
use crate::day::SyncDay;
use crate::error::SyncResult;
use crate::source::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub rows: i64,
    /// When data was last inserted, loaded, streamed or changed in it (Unix µs); none where
    /// the day has no partition. BigQuery says a deletion may not move it.
    pub modified_micros: Option<i64>,
}

/// Reads the day's partition's metadata, and the job that read it.
pub fn read(
    bigquery: &BigQuery,
    source: &Source,
    day: SyncDay,
) -> SyncResult<(PartitionState, SingleRow)> {
    let request = query::partition_state(&bigquery.settings, source, day);
    let job = pages::single_row(bigquery, request)?;
    let state = PartitionState {
        rows: job.integer(0, "total_rows")?.unwrap_or(0),
        modified_micros: job.integer(1, "modified_micros")?,
    };
    Ok((state, job))
}
