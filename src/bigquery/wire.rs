//! The JSON shapes of BigQuery's `jobs.query` and `jobs.getQueryResults`, as far as we read them.
//! A response body is kept whole and parsed borrowing from it: most cells (hex, numbers)
//! need no allocation of their own.

use super::errors::not_a_query_response;
use crate::error::SyncResult;
pub use crate::types::value::Cell;
use crate::types::FieldSchema;
use serde::Deserialize;

/// A complete response body as received, with its envelope already read.
pub struct Body {
    pub bytes: bytes::Bytes,
    pub envelope: Envelope,
}

impl Body {
    /// The whole response, borrowing from the body.
    pub fn parse(&self) -> SyncResult<QueryResponse<'_>> {
        serde_json::from_slice(&self.bytes).map_err(not_a_query_response)
    }
}

/// What every answer is read for when it arrives: its errors, and where its job stands.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    #[serde(default)]
    pub errors: Vec<ErrorProto>,
    pub job_reference: Option<JobReference>,
    pub job_complete: Option<bool>,
    /// When the job was created, in milliseconds since the epoch (`jobs.query` only).
    pub creation_time: Option<String>,
}

impl Envelope {
    /// When the job was created, in Unix microseconds: everything BigQuery had committed
    /// before it is in the job's result.
    pub fn created_micros(&self) -> Option<i64> {
        self.creation_time
            .as_deref()
            .and_then(|millis| millis.parse::<i64>().ok())
            .and_then(|millis| millis.checked_mul(1000))
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse<'a> {
    pub schema: Option<TableSchema>,
    #[serde(default, borrow)]
    pub rows: Vec<Row<'a>>,
    pub total_rows: Option<String>,
    pub page_token: Option<String>,
    pub total_bytes_processed: Option<String>,
    pub total_bytes_billed: Option<String>,
}

impl QueryResponse<'_> {
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

#[derive(Debug, Deserialize)]
pub struct Row<'a> {
    #[serde(borrow)]
    pub f: Vec<Cell<'a>>,
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
