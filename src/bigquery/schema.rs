//! A source table's schema and partitioning, from BigQuery's `tables.get`: the one
//! description the rest of a sync is generated from.

use super::errors::bad_response;
use super::rest::client::BigQueryClient;
use crate::bigquery::context::BigQuery;
use crate::day::TimeColumn;
use crate::error::{SyncError, SyncResult};
use crate::runtime;
use crate::source::{Source, TableRef};
use crate::types::{Column, FieldSchema, SourceSchema};
use pgrx::PgSqlErrorCode;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TableResource {
    schema: Option<Fields>,
    time_partitioning: Option<TimePartitioning>,
    #[serde(rename = "type")]
    table_type: Option<String>,
    /// Present while streamed rows wait in the streaming buffer, outside their partitions.
    streaming_buffer: Option<serde_json::Value>,
    /// The table's logical bytes and rows, in decimal (absent for a view).
    num_bytes: Option<String>,
    num_rows: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Fields {
    #[serde(default)]
    fields: Vec<FieldSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimePartitioning {
    field: Option<String>,
    #[serde(rename = "type")]
    granularity: Option<String>,
}

pub async fn fetch(client: &BigQueryClient, table: &TableRef) -> SyncResult<SourceSchema> {
    let body = client.get_table(table).await?;
    let resource: TableResource = serde_json::from_slice(&body.bytes).map_err(|error| {
        bad_response(format!(
            "BigQuery's table resource is not readable: {error}"
        ))
    })?;
    parse(resource, table)
}

/// The source table as BigQuery describes it now, with the column its days are cut by
/// (`time_column`, or else the partitioning column); read from the main thread,
/// interruptibly.
pub fn read_source(
    bigquery: &BigQuery,
    table: &TableRef,
    time_column: Option<&str>,
) -> SyncResult<Source> {
    let schema = runtime::wait(async {
        let client = bigquery.rest().await?;
        fetch(&client, table).await
    })??;
    let time = TimeColumn::choose(&schema, time_column, &table.display())?;
    Ok(Source {
        table: table.clone(),
        schema,
        time,
    })
}

fn parse(resource: TableResource, table: &TableRef) -> SyncResult<SourceSchema> {
    let fields = resource
        .schema
        .map(|schema| schema.fields)
        .unwrap_or_default();
    if fields.is_empty() {
        return Err(SyncError::new(
            PgSqlErrorCode::ERRCODE_FDW_ERROR,
            format!(
                "the source table {} has no columns (a {})",
                table.display(),
                resource.table_type.as_deref().unwrap_or("table")
            ),
            "Point the sync at a table with a schema.",
        ));
    }
    Ok(SourceSchema {
        columns: fields
            .iter()
            .map(Column::from_field)
            .collect::<SyncResult<_>>()?,
        // Ingestion-time partitioning (no field) partitions on _PARTITIONTIME, not a column;
        // a view's or materialized view's partitions do not move when its base tables do.
        partitioned_by_day: resource.table_type.as_deref() == Some("TABLE")
            && resource
                .time_partitioning
                .as_ref()
                .is_some_and(|p| p.field.is_some() && p.granularity.as_deref() == Some("DAY")),
        streaming_buffer: resource.streaming_buffer.is_some(),
        partitioning_column: resource.time_partitioning.and_then(|p| p.field),
        average_row_bytes: average_row_bytes(
            resource.num_bytes.as_deref(),
            resource.num_rows.as_deref(),
        ),
    })
}

/// Bytes over rows, rounded up; unknown for an empty table or where either is not said.
fn average_row_bytes(bytes: Option<&str>, rows: Option<&str>) -> Option<u64> {
    let bytes = bytes?.parse::<u64>().ok()?;
    let rows = rows?.parse::<u64>().ok().filter(|rows| *rows > 0)?;
    Some(bytes.div_ceil(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Kind, Mode};

    #[test]
    fn reads_columns_and_the_partitioning_column() {
        let resource: TableResource = serde_json::from_str(
            r#"{"type":"TABLE","schema":{"fields":[
                {"name":"address","type":"STRING","mode":"REQUIRED"},
                {"name":"topics","type":"STRING","mode":"REPEATED"},
                {"name":"block_timestamp","type":"TIMESTAMP"}]},
               "timePartitioning":{"type":"DAY","field":"block_timestamp"}}"#,
        )
        .expect("parses");
        let table = TableRef::parse("p.d.t").expect("valid");
        let schema = parse(resource, &table).expect("maps");
        assert_eq!(
            schema.partitioning_column.as_deref(),
            Some("block_timestamp")
        );
        assert!(schema.partitioned_by_day);
        assert_eq!(schema.columns[1].mode, Mode::Repeated);
        assert_eq!(schema.columns[2].kind, Kind::Timestamp);
        assert_eq!(schema.columns[2].mode, Mode::Nullable);
        assert_eq!(schema.average_row_bytes, None);
    }

    #[test]
    fn the_average_row_is_bytes_over_rows_where_both_are_said() {
        assert_eq!(average_row_bytes(Some("1001"), Some("10")), Some(101));
        assert_eq!(average_row_bytes(Some("0"), Some("0")), None);
        assert_eq!(average_row_bytes(None, Some("10")), None);
        assert_eq!(average_row_bytes(Some("-1"), Some("10")), None);
    }
}
