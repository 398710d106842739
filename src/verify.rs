//! `token_verify_day`'s comparison: the day's row count, MIN/MAX(block_timestamp) and an
//! order-independent fingerprint, computed by BigQuery over the source and by PostgreSQL
//! over the target with the same formula, generated here from one column list so that the
//! two sides cannot drift apart.
//!
//! Each row is hashed over its length-prefixed, NUL-stripped fields (NUL is stripped on
//! load, so the source side strips it too); the first 32 bits of the MD5 are summed, so the
//! order of rows does not matter and a changed, missing or duplicated row changes the sum.

use crate::bigquery::decode::{parse_integer, parse_timestamp_micros};
use crate::bigquery::pages::{self, SingleRow};
use crate::bigquery::query;
use crate::day::SyncDay;
use crate::error::SyncResult;
use crate::load::target::{spi_error, TargetTable};
use crate::settings::Settings;
use pgrx::prelude::*;

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Timestamp,
    Integer,
}

const FINGERPRINT_COLUMNS: [(&str, Kind); 8] = [
    ("address", Kind::Text),
    ("symbol", Kind::Text),
    ("name", Kind::Text),
    ("decimals", Kind::Text),
    ("total_supply", Kind::Text),
    ("block_timestamp", Kind::Timestamp),
    ("block_number", Kind::Integer),
    ("block_hash", Kind::Text),
];

fn bigquery_fingerprint_sql() -> String {
    let fields: Vec<String> = FINGERPRINT_COLUMNS
        .iter()
        .map(|(column, kind)| match kind {
            Kind::Text => format!(
                "IFNULL(CONCAT(CAST(LENGTH(REPLACE({column}, @nul, '')) AS STRING), ':', REPLACE({column}, @nul, '')), '~')"
            ),
            Kind::Timestamp => format!("CAST(UNIX_MICROS({column}) AS STRING)"),
            Kind::Integer => format!("CAST({column} AS STRING)"),
        })
        .collect();
    format!(
        "SUM(CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5(CONCAT({}))), 1, 8)) AS INT64))",
        fields.join(", '|', ")
    )
}

fn postgres_fingerprint_sql() -> String {
    let fields: Vec<String> = FINGERPRINT_COLUMNS
        .iter()
        .map(|(column, kind)| match kind {
            Kind::Text => format!("coalesce(length({column})::text || ':' || {column}, '~')"),
            Kind::Timestamp => format!("{}::text", unix_micros_sql(column)),
            Kind::Integer => format!("{column}::text"),
        })
        .collect();
    format!(
        "sum(('x' || substr(md5({}), 1, 8))::bit(32)::bigint)",
        fields.join(" || '|' || ")
    )
}

fn unix_micros_sql(expression: &str) -> String {
    format!("(extract(epoch FROM {expression}) * 1000000)::bigint")
}

/// What one side holds for the day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaySummary {
    pub rows: i64,
    /// Microseconds since the Unix epoch; `None` for an empty day.
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    pub fingerprint: i64,
}

pub struct Comparison {
    pub bigquery: DaySummary,
    pub local: DaySummary,
    pub job_id: String,
}

impl Comparison {
    pub fn matches(&self) -> bool {
        self.bigquery == self.local
    }
}

pub fn compare_day(settings: &Settings, day: SyncDay) -> SyncResult<Comparison> {
    // A check changes nothing: a target that does not exist yet holds no rows.
    let local = match TargetTable::find(&settings.target_table)? {
        Some(target) => local_summary(&target, day)?,
        None => {
            pgrx::notice!(
                "token_sync: the target table {} does not exist yet; it holds no rows",
                settings.target_table
            );
            DaySummary::default()
        }
    };
    let (bigquery, job) = bigquery_summary(settings, day)?;
    Ok(Comparison {
        bigquery,
        local,
        job_id: job.job_id,
    })
}

/// What BigQuery holds for the day, and the job that computed it.
pub fn bigquery_summary(settings: &Settings, day: SyncDay) -> SyncResult<(DaySummary, SingleRow)> {
    let request = query::day_summary(settings, day, &bigquery_fingerprint_sql());
    let job = pages::single_row(settings, request)?;
    let cell = |index: usize| job.cells.get(index).cloned().flatten();
    let summary = DaySummary {
        rows: cell(0)
            .as_deref()
            .map(parse_integer)
            .transpose()?
            .unwrap_or(0),
        min_timestamp: cell(1).as_deref().map(parse_timestamp_micros).transpose()?,
        max_timestamp: cell(2).as_deref().map(parse_timestamp_micros).transpose()?,
        fingerprint: cell(3)
            .as_deref()
            .map(parse_integer)
            .transpose()?
            .unwrap_or(0),
    };
    Ok((summary, job))
}

/// What the target table holds for the day.
pub fn local_summary(target: &TargetTable, day: SyncDay) -> SyncResult<DaySummary> {
    let sql = format!(
        "SELECT count(*), {}, {}, coalesce({}, 0)::bigint FROM {} \
         WHERE block_timestamp >= $1 AND block_timestamp < $2",
        unix_micros_sql("min(block_timestamp)"),
        unix_micros_sql("max(block_timestamp)"),
        postgres_fingerprint_sql(),
        target.qualified_name
    );
    Spi::connect(|client| {
        let row = client
            .select(&sql, Some(1), &[day.start().into(), day.end().into()])?
            .first();
        Ok(DaySummary {
            rows: row.get::<i64>(1)?.unwrap_or(0),
            min_timestamp: row.get::<i64>(2)?,
            max_timestamp: row.get::<i64>(3)?,
            fingerprint: row.get::<i64>(4)?.unwrap_or(0),
        })
    })
    .map_err(spi_error)
}
