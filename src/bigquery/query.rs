//! The GoogleSQL we send, generated from the source's schema. The day always travels as a
//! DATE query parameter; the text spliced in is the source table, validated by
//! `TableRef::parse`, and column names from BigQuery's own schema, quoted.

use crate::day::SyncDay;
use crate::settings::Settings;
use crate::source::Source;
use serde_json::{json, Value};

/// Rows asked for in the first page: until it arrives the width of a row is unknown, so
/// it is kept small; the pages after it are sized to the memory budget.
const FIRST_PAGE_ROWS: u32 = 1_000;

pub fn first_page_rows(settings: &Settings) -> u32 {
    settings.page_rows.min(FIRST_PAGE_ROWS)
}

/// Every column of the day's rows, in the schema's order.
pub fn day_rows(settings: &Settings, source: &Source, day: SyncDay) -> Value {
    let columns: Vec<String> = source
        .schema
        .columns
        .iter()
        .map(|c| c.bigquery_name())
        .collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        columns.join(", "),
        source.table.to_sql(),
        source.time.bigquery_filter()
    );
    request(settings, sql, day, vec![])
}

/// Count, MIN/MAX of the time column (as Unix microseconds) and the order-independent
/// fingerprint of the day.
pub fn day_summary(
    settings: &Settings,
    source: &Source,
    day: SyncDay,
    fingerprint_sql: &str,
) -> Value {
    let time = source.time.bigquery_unix_micros();
    let sql = format!(
        "SELECT COUNT(*) AS row_count, MIN({time}) AS min_micros, MAX({time}) AS max_micros, \
         IFNULL({fingerprint_sql}, 0) AS fingerprint FROM {} WHERE {}",
        source.table.to_sql(),
        source.time.bigquery_filter()
    );
    // The NUL character travels as a parameter: literal escapes for it differ between engines.
    let nul = json!({
        "name": "nul",
        "parameterType": {"type": "STRING"},
        "parameterValue": {"value": "\u{0}"},
    });
    request(settings, sql, day, vec![nul])
}

/// The day's partition as BigQuery's metadata has it: its rows, and when data was last
/// written to it (Unix microseconds); a metadata query, which scans no table. A day with
/// no partition gives 0 rows and NULL.
pub fn partition_state(settings: &Settings, source: &Source, day: SyncDay) -> Value {
    let sql = format!(
        "SELECT IFNULL(SUM(total_rows), 0) AS total_rows, \
         UNIX_MICROS(MAX(last_modified_time)) AS modified_micros FROM {} \
         WHERE table_name = @table_name AND partition_id = FORMAT_DATE('%Y%m%d', @day)",
        source.table.dataset_view_sql("PARTITIONS")
    );
    let table_name = json!({
        "name": "table_name",
        "parameterType": {"type": "STRING"},
        "parameterValue": {"value": source.table.table},
    });
    request(settings, sql, day, vec![table_name])
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
