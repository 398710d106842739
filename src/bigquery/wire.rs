//! The JSON shapes of BigQuery's `jobs.query` and `jobs.getQueryResults`, as far as we read them.

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    pub job_reference: Option<JobReference>,
    pub job_complete: Option<bool>,
    pub schema: Option<TableSchema>,
    #[serde(default)]
    pub rows: Vec<Row>,
    pub total_rows: Option<String>,
    pub page_token: Option<String>,
    pub total_bytes_processed: Option<String>,
    pub total_bytes_billed: Option<String>,
    #[serde(default)]
    pub errors: Vec<ErrorProto>,
}

impl QueryResponse {
    pub fn total_rows(&self) -> Option<u64> {
        self.total_rows.as_deref().and_then(|n| n.parse().ok())
    }

    /// Bytes billed when BigQuery reports it, else bytes processed (what is billed on demand).
    pub fn bytes_billed(&self) -> Option<i64> {
        self.total_bytes_billed
            .as_deref()
            .or(self.total_bytes_processed.as_deref())
            .and_then(|n| n.parse().ok())
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct JobReference {
    pub job_id: String,
    pub location: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Default)]
pub struct TableSchema {
    #[serde(default)]
    pub fields: Vec<FieldSchema>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct FieldSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
}

#[derive(Debug, Deserialize)]
pub struct Row {
    pub f: Vec<Cell>,
}

/// A scalar cell: BigQuery sends every scalar as a string, NULL as null.
#[derive(Debug, Deserialize)]
pub struct Cell {
    pub v: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Default)]
pub struct ErrorProto {
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// The body of a non-2xx answer.
#[derive(Debug, Deserialize, Default)]
pub struct ErrorBody {
    pub error: Option<ErrorBodyInner>,
}

#[derive(Debug, Deserialize, Default)]
pub struct ErrorBodyInner {
    pub message: Option<String>,
    #[serde(default)]
    pub errors: Vec<ErrorProto>,
    pub status: Option<String>,
}
