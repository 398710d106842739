//! What a sync reads from: a BigQuery table's name (`TableRef`), and the table as read from
//! BigQuery for one call (`Source`: its schema and the column its days are cut by). Below
//! both the BigQuery side and the PostgreSQL side, which each take it as it is.

use crate::day::TimeColumn;
use crate::error::{SyncError, SyncResult};
use crate::types::SourceSchema;

/// A validated `project.dataset.table` BigQuery reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub project: String,
    pub dataset: String,
    pub table: String,
}

impl TableRef {
    pub fn parse(text: &str) -> SyncResult<Self> {
        Self::parse_as(text, "token_sync.source_table")
    }

    /// `text` as a table name; `what` names it in the error (a setting or an argument).
    pub fn parse_as(text: &str, what: &str) -> SyncResult<Self> {
        let invalid = || {
            SyncError::config(
                format!("{what} \"{text}\" is not a BigQuery table name"),
                "Write it as project.dataset.table, e.g. bigquery-public-data.crypto_ethereum.tokens.",
            )
        };
        let parts: Vec<&str> = text.split('.').collect();
        let [project, dataset, table] = parts.as_slice() else {
            return Err(invalid());
        };
        let valid = is_project_id(project)
            && !dataset.is_empty()
            && dataset.len() <= 1024
            && dataset
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !table.is_empty()
            && table.len() <= 1024
            && table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(invalid());
        }
        Ok(Self {
            project: project.to_string(),
            dataset: dataset.to_string(),
            table: table.to_string(),
        })
    }

    /// `project.dataset.table`, as users write it.
    pub fn display(&self) -> String {
        format!("{}.{}.{}", self.project, self.dataset, self.table)
    }

    /// The reference as GoogleSQL text: one quoted path.
    pub fn to_sql(&self) -> String {
        crate::quote::bigquery_ident(&self.display())
    }

    /// A view of the table's dataset's INFORMATION_SCHEMA (e.g. `PARTITIONS`), for GoogleSQL.
    pub fn dataset_view_sql(&self, view: &str) -> String {
        crate::quote::bigquery_ident(&format!(
            "{}.{}.INFORMATION_SCHEMA.{view}",
            self.project, self.dataset
        ))
    }
}

/// A source table as BigQuery describes it now (`bigquery::schema::read_source`).
pub struct Source {
    pub table: TableRef,
    pub schema: SourceSchema,
    pub time: TimeColumn,
}

impl Source {
    /// Each day is one partition of the table (`YYYYMMDD`), the days being cut by the
    /// column the table is partitioned on by day, and no streamed row is outside its
    /// partition: the partition's metadata describes the day.
    pub fn day_is_a_partition(&self) -> bool {
        self.schema.partitioned_by_day
            && !self.schema.streaming_buffer
            && self.schema.partitioning_column.as_deref() == Some(self.time.name.as_str())
    }
}

#[cfg(any(test, feature = "pg_test"))]
impl Source {
    /// A source as `tables.get` would describe it (its fields as JSON), partitioned on
    /// `block_timestamp`, for tests.
    pub fn described(fields_json: &str) -> Self {
        let fields: Vec<crate::types::FieldSchema> =
            serde_json::from_str(fields_json).expect("fields parse");
        let schema = SourceSchema {
            columns: fields
                .iter()
                .map(|field| crate::types::Column::from_field(field).expect("type maps"))
                .collect(),
            partitioning_column: Some("block_timestamp".into()),
            partitioned_by_day: true,
            streaming_buffer: false,
            average_row_bytes: Some(200),
        };
        let time = TimeColumn::choose(&schema, None, "p.d.t").expect("time column");
        Self {
            table: TableRef::parse("p.d.t").expect("valid name"),
            schema,
            time,
        }
    }
}

/// A Google Cloud project id, optionally domain-scoped.
pub fn is_project_id(text: &str) -> bool {
    // Optionally domain-scoped, as in "example.com:my-project".
    let id = text.rsplit(':').next().unwrap_or(text);
    !id.is_empty()
        && text.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'))
}
