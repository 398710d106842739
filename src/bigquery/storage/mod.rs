//! The Storage Read API path of a day: one read session over the table with the day's row
//! restriction and the mirrored columns, in Arrow, split into up to
//! `token_sync.fetch_concurrency` streams, all read at once. Each Arrow batch becomes COPY
//! rows on the network threads (`arrow_rows`, then both paths' `RowEncoder`). Memory is
//! bounded in bytes as on the query path: a stream waits for room in the `Budget` for a
//! message as large as the largest seen before it takes its next one (the server, not
//! the stream, decides how many rows a message holds), and each prepared page keeps its
//! room until it is written. What HTTP/2 lets the server send ahead is taken off the
//! budget first (`client::connection_window`). A stream cut short is read again from the
//! row it had reached.

mod arrow_rows;
pub mod client;

use super::budget::{Budget, Reservation, PEAK_PER_ARROW_BYTE};
use super::context::BigQuery;
use super::copy_rows::{EncodedPage, RowEncoder};
use super::delivery::{JobSummary, PageSink, ReadPath, ResultStream};
use super::errors::bad_response;
use crate::day::SyncDay;
use crate::error::{SyncError, SyncResult};
use crate::runtime;
use crate::source::Source;
use crate::types::Column;
use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamDecoder;
use arrow_schema::ArrowError;
use client::{status_error, Call, StorageClient};
use googleapis_tonic_google_cloud_bigquery_storage_v1::google::cloud::bigquery::storage::v1::{
    read_rows_response, read_session, ReadRowsResponse,
};
use std::sync::Arc;
use tokio::sync::Semaphore;

pub use client::falls_back;

/// Starts reading the day on the network threads; returns at once. The first delivery is
/// the session (or the error that `CreateReadSession` met), then pages in no set order, then
/// the rows the streams reported.
pub fn start(
    bigquery: &BigQuery,
    source: &Source,
    day: SyncDay,
    encoder: RowEncoder,
) -> SyncResult<ResultStream> {
    let bigquery = bigquery.clone();
    let table = source.table.clone();
    let columns = source.schema.columns.clone();
    let row_restriction = source.time.bigquery_restriction(day);
    ResultStream::produce(move |sink| async move {
        let settings = &bigquery.settings;
        let client = bigquery.storage().await?;
        let names = columns.iter().map(|column| column.name.clone()).collect();
        let session = client
            .create_read_session(&table, names, row_restriction, settings.fetch_concurrency)
            .await?;
        let schema = match &session.schema {
            Some(read_session::Schema::ArrowSchema(schema)) => schema.serialized_schema.clone(),
            Some(read_session::Schema::AvroSchema(_)) | None => bytes::Bytes::new(),
        };
        let summary = JobSummary {
            job_id: session.name.clone(),
            total_rows: None,
            bytes_billed: None,
            read_path: ReadPath::Storage,
            snapshot_micros: session
                .table_modifiers
                .as_ref()
                .and_then(|modifiers| modifiers.snapshot_time.as_ref())
                .map(|time| time.seconds * 1_000_000 + i64::from(time.nanos) / 1000),
        };
        if !sink.started(summary).await {
            return Ok(());
        }
        let reading = Arc::new(StreamReading {
            client,
            schema,
            columns,
            encoder,
            budget: Budget::new(
                settings
                    .max_bytes_in_flight
                    .saturating_sub(client::connection_window(settings))
                    .max(settings.max_bytes_in_flight / 2),
                session.streams.len().max(1) * 2,
                settings.page_rows,
                PEAK_PER_ARROW_BYTE,
            ),
            sink: sink.clone(),
        });
        // The HTTP/2 windows hold `fetch_concurrency` streams' (see `client::connection_window`):
        // a session of more streams than asked for reads that many at a time.
        let open = Arc::new(Semaphore::new(settings.fetch_concurrency.max(1) as usize));
        let mut tasks = Vec::new();
        for stream in session.streams {
            let (reading, open) = (reading.clone(), open.clone());
            tasks.push(runtime::spawn(async move {
                let _open = open.acquire_owned().await;
                reading.read(&stream.name).await
            })?);
        }
        let mut rows = 0;
        for task in tasks {
            rows += task.join().await??;
        }
        sink.ended(rows).await;
        Ok(())
    })
}

/// What every stream of one session shares.
struct StreamReading {
    client: StorageClient,
    /// The session's Arrow schema, as an IPC message.
    schema: bytes::Bytes,
    columns: Vec<Column>,
    encoder: RowEncoder,
    budget: Budget,
    sink: PageSink,
}

impl StreamReading {
    /// Reads `stream` to its end, delivering a page per message; returns its row count. A
    /// transient failure is retried from the row reached, as the retry policy says: the
    /// stream is one request, whose retries are counted from its start to its end.
    async fn read(&self, stream: &str) -> SyncResult<u64> {
        let mut offset = 0u64;
        let mut retries = 0;
        loop {
            let failure = match self.client.read_rows(stream, offset).await? {
                Ok(mut messages) => {
                    let mut decoder = self.decoder()?;
                    loop {
                        let room = self.budget.reserve_largest().await;
                        let message = match messages_next(&self.client, &mut messages).await {
                            Ok(Some(message)) => message,
                            Ok(None) => return Ok(offset),
                            Err(status) => break status,
                        };
                        if let Some((page, room)) = self.prepare(&mut decoder, message, room)? {
                            offset += page.rows;
                            if !self.sink.page(page, room).await {
                                return Ok(offset);
                            }
                        }
                    }
                }
                Err(status) => status,
            };
            let error = status_error(&failure, Call::ReadRows);
            let detail = format!(
                "{} (stream {stream}, at row {offset})",
                error.detail.as_deref().unwrap_or_default()
            );
            let error = error.with_detail(detail);
            retries = self
                .client
                .pause_before_retry(error, &failure, retries)
                .await?;
        }
    }

    /// A decoder that has read the session's schema.
    fn decoder(&self) -> SyncResult<StreamDecoder> {
        let mut decoder = StreamDecoder::new();
        let mut schema = arrow_buffer::Buffer::from(first_message(&self.schema));
        if decoder.decode(&mut schema).map_err(arrow_error)?.is_some() {
            return Err(bad_response("the read session's schema holds rows"));
        }
        Ok(decoder)
    }

    /// One message's rows as a page of COPY rows, with the room it keeps; none for a
    /// message without rows.
    fn prepare(
        &self,
        decoder: &mut StreamDecoder,
        message: ReadRowsResponse,
        mut room: Reservation,
    ) -> SyncResult<Option<(EncodedPage, Reservation)>> {
        let Some(read_rows_response::Rows::ArrowRecordBatch(batch)) = message.rows else {
            if message.row_count == 0 {
                return Ok(None);
            }
            return Err(bad_response(
                "a ReadRows response carries rows that are not Arrow",
            ));
        };
        let body_bytes = batch.serialized_record_batch.len();
        room.grow_to(body_bytes * PEAK_PER_ARROW_BYTE);
        let mut buffer = arrow_buffer::Buffer::from(batch.serialized_record_batch);
        let mut page = EncodedPage::default();
        while !buffer.is_empty() {
            let Some(record_batch) = decoder.decode(&mut buffer).map_err(arrow_error)? else {
                break;
            };
            self.encode(&record_batch, &mut page)?;
        }
        let (reported, decoded) = (u64::try_from(message.row_count).unwrap_or(0), page.rows);
        if decoded != reported {
            return Err(SyncError::bad_source_data(
                format!("a ReadRows response reports {reported} rows but holds {decoded}"),
                "Nothing was written for the day. Run it again; if it persists, set token_sync.read_api = 'query'.",
            ));
        }
        self.budget
            .observe(body_bytes, decoded as usize, page.weight());
        let kept = room.take(page.weight());
        Ok(Some((page, kept)))
    }

    /// Appends the batch's rows to the page, a slice at a time: the REST-shaped values of a
    /// slice live only until it is encoded, so a batch's values are never all held at once.
    fn encode(&self, batch: &RecordBatch, page: &mut EncodedPage) -> SyncResult<()> {
        arrow_rows::check_columns(batch, &self.columns)?;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let length = ROWS_PER_SLICE.min(batch.num_rows() - offset);
            let slice = batch.slice(offset, length);
            let rows = arrow_rows::rows(&slice, &self.columns)?;
            self.encoder.append(rows, page)?;
            if offset == 0 {
                // The first slice's bytes, times the slices to come.
                let slices_left = (batch.num_rows() - length).div_ceil(length);
                page.bytes.reserve(page.bytes.len() * slices_left);
            }
            offset += length;
        }
        Ok(())
    }
}

/// The stream's next message, within the per-message timeout.
async fn messages_next(
    client: &StorageClient,
    messages: &mut tonic::Streaming<ReadRowsResponse>,
) -> Result<Option<ReadRowsResponse>, tonic::Status> {
    tokio::time::timeout(client.timeout, messages.message())
        .await
        .map_err(|_| {
            tonic::Status::deadline_exceeded("no ReadRows message within token_sync.http_timeout")
        })?
}

/// Rows converted and encoded at a time, out of a batch of thousands.
const ROWS_PER_SLICE: usize = 256;

/// The marker in front of an IPC message's length since Arrow 0.15.
const CONTINUATION: usize = u32::MAX as usize;

/// The first IPC message of `bytes`: a schema may come as a whole IPC stream (the emulator
/// sends its end-of-stream marker too), which would end the decoder before any batch.
fn first_message(bytes: &bytes::Bytes) -> bytes::Bytes {
    let length_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|word| word.try_into().ok())
            .map(|word| u32::from_le_bytes(word) as usize)
    };
    let (prefix, length) = match length_at(0) {
        Some(CONTINUATION) => (8, length_at(4)),
        other => (4, other),
    };
    match length {
        Some(length) if prefix + length <= bytes.len() => bytes.slice(..prefix + length),
        _ => bytes.clone(),
    }
}

fn arrow_error(error: ArrowError) -> SyncError {
    bad_response(format!("a ReadRows response is not valid Arrow: {error}"))
}
