//! The GoogleSQL we send. The day always travels as a DATE query parameter; the only text
//! spliced in is the source table, validated by `TableRef::parse`.

use crate::day::SyncDay;
use crate::settings::Settings;
use serde_json::{json, Value};

/// The source columns, in the order the target table has them.
pub const COLUMNS: [(&str, &str); 8] = [
    ("address", "STRING"),
    ("symbol", "STRING"),
    ("name", "STRING"),
    ("decimals", "STRING"),
    ("total_supply", "STRING"),
    ("block_timestamp", "TIMESTAMP"),
    ("block_number", "INTEGER"),
    ("block_hash", "STRING"),
];

/// [day 00:00 UTC, day+1 00:00 UTC): BigQuery's TIMESTAMP(date) is midnight UTC, and the
/// range on the partitioning column lets BigQuery prune to the day's partition.
const DAY_FILTER: &str = "block_timestamp >= TIMESTAMP(@day) \
     AND block_timestamp < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))";

/// Rows asked for in the first page: until it arrives the width of a row is unknown, so
/// it is kept small; the pages after it are sized to the memory budget.
const FIRST_PAGE_ROWS: u32 = 1_000;

pub fn first_page_rows(settings: &Settings) -> u32 {
    settings.page_rows.min(FIRST_PAGE_ROWS)
}

pub fn day_rows(settings: &Settings, day: SyncDay) -> Value {
    let columns: Vec<&str> = COLUMNS.iter().map(|(name, _)| *name).collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {DAY_FILTER}",
        columns.join(", "),
        settings.source_table.to_sql()
    );
    request(settings, sql, day, vec![])
}

/// Count, MIN/MAX(block_timestamp) and the order-independent fingerprint of the day.
pub fn day_summary(settings: &Settings, day: SyncDay, fingerprint_sql: &str) -> Value {
    let sql = format!(
        "SELECT COUNT(*) AS row_count, MIN(block_timestamp) AS min_timestamp, \
         MAX(block_timestamp) AS max_timestamp, IFNULL({fingerprint_sql}, 0) AS fingerprint \
         FROM {} WHERE {DAY_FILTER}",
        settings.source_table.to_sql()
    );
    // The NUL character travels as a parameter: literal escapes for it differ between engines.
    let nul = json!({
        "name": "nul",
        "parameterType": {"type": "STRING"},
        "parameterValue": {"value": "\u{0}"},
    });
    request(settings, sql, day, vec![nul])
}

fn request(settings: &Settings, sql: String, day: SyncDay, mut parameters: Vec<Value>) -> Value {
    parameters.push(json!({
        "name": "day",
        "parameterType": {"type": "DATE"},
        "parameterValue": {"value": day.to_string()},
    }));
    let mut body = json!({
        "query": sql,
        "useLegacySql": false,
        "parameterMode": "NAMED",
        "queryParameters": parameters,
        "maxResults": first_page_rows(settings),
        "timeoutMs": 10_000,
        "location": settings.location,
        "formatOptions": {"useInt64Timestamp": true},
        "labels": {"app": "token_sync"},
        "requestId": uuid::Uuid::new_v4().to_string(),
    });
    if let Some(limit) = settings.max_bytes_billed {
        body["maximumBytesBilled"] = Value::String(limit.to_string());
    }
    body
}
