//! The JSON shapes of BigQuery's `jobs.query` and `jobs.getQueryResults`, as far as we read them.
//! A response body is kept whole and parsed borrowing from it: most cells (hex, numbers)
//! need no allocation of their own.

use super::errors::{from_error_protos, not_a_query_response};
use crate::error::{SyncError, SyncResult};
pub use crate::types::value::Cell;
use crate::types::FieldSchema;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// A complete response body as received, with its envelope already read (but for a page of
/// rows, whose envelope is left empty: its one parse, `parse_each_row`, reads its errors).
pub struct Body {
    pub bytes: bytes::Bytes,
    pub envelope: Envelope,
}

impl Body {
    /// The whole response, its rows decoded borrowing from the body.
    pub fn parse(&self) -> SyncResult<QueryResponse<Vec<Row<'_>>>> {
        serde_json::from_slice(&self.bytes).map_err(not_a_query_response)
    }

    /// What describes the page, its rows skipped.
    pub fn parse_head(&self) -> SyncResult<QueryResponse<IgnoredAny>> {
        serde_json::from_slice(&self.bytes).map_err(not_a_query_response)
    }

    /// What describes the page, each row handed to `each_row` as soon as it is parsed: the
    /// rows are never all held decoded. The other members are kept as their JSON text and
    /// read as `parse_head` reads them; a member given twice, `rows` too, is refused, and
    /// so is a page that reports errors. The first error `each_row` returns ends the parse
    /// and is returned as it is.
    pub fn parse_each_row(
        &self,
        mut each_row: impl FnMut(Row<'_>) -> SyncResult<()>,
    ) -> SyncResult<QueryResponse<IgnoredAny>> {
        let mut failure = None;
        let mut deserializer = serde_json::Deserializer::from_slice(&self.bytes);
        let head = RowsOf {
            each_row: &mut each_row,
            failure: &mut failure,
        }
        .deserialize(&mut deserializer)
        .and_then(|head| deserializer.end().map(|()| head));
        if let Some(failure) = failure {
            return Err(failure);
        }
        let head: QueryResponse<IgnoredAny> =
            serde_json::from_str(&head.map_err(not_a_query_response)?)
                .map_err(not_a_query_response)?;
        if !head.errors.is_empty() {
            return Err(from_error_protos(200, &head.errors));
        }
        Ok(head)
    }
}

/// A response object: its `rows` one at a time through `RowsSeed`; its other members as a
/// JSON object of their text, copied as they are.
struct RowsOf<'s, F> {
    each_row: &'s mut F,
    failure: &'s mut Option<SyncError>,
}

impl<'de, F: FnMut(Row<'de>) -> SyncResult<()>> DeserializeSeed<'de> for RowsOf<'_, F> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: FnMut(Row<'de>) -> SyncResult<()>> Visitor<'de> for RowsOf<'_, F> {
    type Value = String;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a query response object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        let mut seen: Vec<String> = Vec::new();
        let mut head = String::from("{");
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            if key == "rows" {
                map.next_value_seed(RowsSeed {
                    each_row: &mut *self.each_row,
                    failure: &mut *self.failure,
                })?;
            } else {
                let value = map.next_value::<&'de RawValue>()?;
                if head.len() > 1 {
                    head.push(',');
                }
                head.push_str(&serde_json::to_string(&key).map_err(de::Error::custom)?);
                head.push(':');
                head.push_str(value.get());
            }
            seen.push(key);
        }
        head.push('}');
        Ok(head)
    }
}

/// The `rows` array, one row at a time.
struct RowsSeed<'s, F> {
    each_row: &'s mut F,
    failure: &'s mut Option<SyncError>,
}

impl<'de, F: FnMut(Row<'de>) -> SyncResult<()>> DeserializeSeed<'de> for RowsSeed<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, F: FnMut(Row<'de>) -> SyncResult<()>> Visitor<'de> for RowsSeed<'_, F> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a list of rows")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element::<Row<'de>>()? {
            if let Err(error) = (self.each_row)(row) {
                *self.failure = Some(error);
                return Err(de::Error::custom("a row was refused"));
            }
        }
        Ok(())
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

/// A page of a query's result; `R` is how its rows are read (decoded, or skipped).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse<R> {
    pub schema: Option<TableSchema>,
    #[serde(default)]
    pub rows: R,
    pub total_rows: Option<String>,
    pub page_token: Option<String>,
    pub total_bytes_processed: Option<String>,
    pub total_bytes_billed: Option<String>,
    #[serde(default)]
    pub errors: Vec<ErrorProto>,
}

impl<R> QueryResponse<R> {
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
