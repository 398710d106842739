//! Runs a query job and pages through its result, on the network threads, delivering the
//! pages through the shared channel (`bigquery::delivery`). After the first page, the rest
//! is fetched by position, several ranges at once (`token_sync.fetch_concurrency`), and
//! delivered in order. Each response is encoded as soon as it arrives, row by row as it is
//! parsed (borrowing from its body). Memory is bounded in bytes: every response in flight
//! and every prepared page not yet written holds room from one `Budget`.

use super::client::{BigQueryClient, Page};
use crate::bigquery::budget::{Budget, Reservation, PEAK_PER_BODY_BYTE};
use crate::bigquery::context::BigQuery;
use crate::bigquery::copy_rows::RowEncoder;
use crate::bigquery::delivery::{Held, JobSummary, PageSink, ReadPath, ResultStream, PAGES_AHEAD};
use crate::bigquery::errors::bad_response;
use crate::bigquery::query;
use crate::bigquery::wire::{Body, JobReference};
use crate::error::SyncResult;
use crate::runtime;
use crate::types::integer::parse as parse_integer;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

/// Starts the query on the network threads; returns at once. Pages are delivered in result
/// order, each encoded by `encoder` first.
pub fn start(bigquery: &BigQuery, request: Value, encoder: RowEncoder) -> SyncResult<ResultStream> {
    let bigquery = bigquery.clone();
    let encoder = Arc::new(encoder);
    ResultStream::produce(move |sink| async move {
        fetch_pages(&bigquery, &request, encoder, &sink).await
    })
}

async fn fetch_pages(
    bigquery: &BigQuery,
    request: &Value,
    encoder: Arc<RowEncoder>,
    sink: &PageSink,
) -> SyncResult<()> {
    let settings = &bigquery.settings;
    let client = bigquery.rest().await?;
    let (job, first_body) =
        run_to_completion(&client, request, query::first_page_rows(settings)).await?;
    let first = first_body.parse_head()?;
    encoder.check_schema(
        first
            .schema
            .as_ref()
            .ok_or_else(|| bad_response("BigQuery's completed query response has no schema"))?,
    )?;
    let total_rows = first
        .total_rows()
        .ok_or_else(|| bad_response("BigQuery's completed query response has no totalRows"))?;
    let summary = JobSummary {
        job_id: job.reference.job_id.clone(),
        total_rows: Some(total_rows),
        bytes_billed: first.bytes_billed(),
        read_path: ReadPath::Query,
        snapshot_micros: job.created_micros,
    };
    let pages = PageFetch {
        client,
        job: job.reference,
        encoder,
        budget: Arc::new(Budget::new(
            settings.max_bytes_in_flight,
            settings.fetch_concurrency as usize + PAGES_AHEAD + 1,
            settings.page_rows,
            PEAK_PER_BODY_BYTE,
        )),
    };
    let mut room = pages.budget.unreserved();
    let (first_page, next_token, delivered) = pages.prepare(&first_body, &mut room)?;
    drop(first_body);
    if !sink.started(summary).await {
        return Ok(());
    }
    if delivered > 0 && !sink.deliver(first_page).await {
        return Ok(());
    }
    if next_token.is_none() || delivered >= total_rows {
        return Ok(());
    }
    if settings.fetch_concurrency <= 1 {
        pages.by_token(next_token, sink).await
    } else {
        pages
            .by_position(delivered, total_rows, settings.fetch_concurrency, sink)
            .await
    }
}

/// Everything a page fetch needs, cheap to clone into a task.
#[derive(Clone)]
struct PageFetch {
    client: BigQueryClient,
    job: JobReference,
    encoder: Arc<RowEncoder>,
    budget: Arc<Budget>,
}

impl PageFetch {
    /// Decodes and encodes one response, within the room reserved for it; returns the
    /// page with the room it keeps, the next page token, and the number of rows.
    fn prepare(
        &self,
        body: &Body,
        room: &mut Reservation,
    ) -> SyncResult<(Held, Option<String>, u64)> {
        let body_bytes = body.bytes.len();
        room.grow_to(body_bytes * self.budget.peak_per_body_byte);
        let (head, page) = self.encoder.encode_body(body)?;
        let rows = page.rows;
        self.budget
            .observe(body_bytes, rows as usize, page.weight());
        let room = room.take(page.weight());
        Ok((Held { page, room }, head.page_token, rows))
    }

    /// One page after the other, following BigQuery's page tokens.
    async fn by_token(self, mut token: Option<String>, sink: &PageSink) -> SyncResult<()> {
        while let Some(current) = token.take() {
            let rows = self.budget.rows_per_request();
            let mut room = self.budget.reserve(rows).await;
            let (page, next, _) = self
                .client
                .get_result_rows(&self.job, Page::Token(&current), rows, |body| {
                    self.prepare(body, &mut room)
                })
                .await?;
            if next.as_deref() == Some(current.as_str()) {
                return Err(bad_response("BigQuery returned the same page token twice"));
            }
            token = next;
            if !sink.deliver(page).await {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The rest of the result in ranges fetched by position, up to `concurrency` at once
    /// and as many as the budget has room for, delivered in order.
    async fn by_position(
        self,
        from: u64,
        total_rows: u64,
        concurrency: u32,
        sink: &PageSink,
    ) -> SyncResult<()> {
        let mut next = from;
        let mut in_flight = VecDeque::new();
        loop {
            while in_flight.len() < concurrency as usize && next < total_rows {
                let rows = u64::from(self.budget.rows_per_request()).min(total_rows - next);
                // Waiting is safe only with nothing in flight: the pages in flight free
                // their room only after they are delivered, by this loop.
                let room = if in_flight.is_empty() {
                    self.budget.reserve(rows as u32).await
                } else {
                    match self.budget.try_reserve(rows as u32) {
                        Some(room) => room,
                        None => break,
                    }
                };
                let fetch = self.clone();
                let (start, end) = (next, next + rows);
                in_flight.push_back(runtime::spawn(async move {
                    fetch.range(start, end, room).await
                })?);
                next = end;
            }
            let Some(head) = in_flight.pop_front() else {
                return Ok(());
            };
            for page in head.join().await?? {
                if !sink.deliver(page).await {
                    return Ok(());
                }
            }
        }
    }

    /// Rows [start, end) of the result, asking again from where BigQuery stopped when it
    /// sent a shorter page (it caps a page at about 10 MB); one prepared page per answer.
    async fn range(self, start: u64, end: u64, mut room: Reservation) -> SyncResult<Vec<Held>> {
        let mut pages = Vec::new();
        let mut position = start;
        while position < end {
            let (page, _, rows) = self
                .client
                .get_result_rows(
                    &self.job,
                    Page::Position(position),
                    (end - position) as u32,
                    |body| self.prepare(body, &mut room),
                )
                .await?;
            if rows == 0 {
                return Err(bad_response(format!(
                    "BigQuery returned no rows at position {position} of a {end}-row result"
                )));
            }
            position += rows;
            pages.push(page);
        }
        Ok(pages)
    }
}

/// A query job BigQuery has completed.
pub struct CompletedJob {
    pub reference: JobReference,
    /// When BigQuery created it, in Unix microseconds, where it said (`jobs.query` does).
    pub created_micros: Option<i64>,
}

/// Sends the query and waits until BigQuery says the job is complete; returns the job and
/// the body of the response that carries the first page.
pub async fn run_to_completion(
    client: &BigQueryClient,
    request: &Value,
    page_rows: u32,
) -> SyncResult<(CompletedJob, Body)> {
    let mut body = client.query(request).await?;
    let job = CompletedJob {
        reference: body
            .envelope
            .job_reference
            .clone()
            .ok_or_else(|| bad_response("BigQuery's query response has no jobReference"))?,
        created_micros: body.envelope.created_micros(),
    };
    while body.envelope.job_complete != Some(true) {
        body = client
            .get_query_results(&job.reference, Page::First, page_rows)
            .await?;
    }
    Ok((job, body))
}

/// A query whose result is a single row of scalars, with its job.
pub struct SingleRow {
    pub job_id: String,
    /// When BigQuery created the job, in Unix microseconds, where it said.
    pub created_micros: Option<i64>,
    pub bytes_billed: Option<i64>,
    pub cells: Vec<Option<String>>,
}

impl SingleRow {
    /// The INT64 in the row's cell `index`, which the query named `name`; None for NULL.
    pub fn integer(&self, index: usize, name: &str) -> SyncResult<Option<i64>> {
        self.cells
            .get(index)
            .cloned()
            .flatten()
            .map(|text| parse_integer(&text, name))
            .transpose()
    }
}

/// Runs a query whose result is a single row of scalars, interruptibly from the main thread.
pub fn single_row(bigquery: &BigQuery, request: Value) -> SyncResult<SingleRow> {
    start_single_row(bigquery, request)?.wait()
}

/// Starts a query whose result is a single row of scalars on the network threads and
/// returns at once, so that the main thread can work while BigQuery does.
pub fn start_single_row(bigquery: &BigQuery, request: Value) -> SyncResult<PendingRow> {
    let bigquery = bigquery.clone();
    let task = runtime::spawn(async move {
        let client = bigquery.rest().await?;
        let (job, body) = run_to_completion(&client, &request, 1).await?;
        let response = body.parse()?;
        let bytes_billed = response.bytes_billed();
        let row = response
            .rows
            .into_iter()
            .next()
            .ok_or_else(|| bad_response("BigQuery's answer to a one-row query has no row"))?;
        Ok(SingleRow {
            job_id: job.reference.job_id,
            created_micros: job.created_micros,
            bytes_billed,
            cells: row
                .f
                .into_iter()
                .map(|cell| cell.v.into_text().map(Cow::into_owned))
                .collect(),
        })
    })?;
    Ok(PendingRow(task))
}

/// A one-row query on the network threads. Dropping it stops its requests; a job already
/// sent runs on in BigQuery, and is billed.
pub struct PendingRow(runtime::BackgroundTask<SyncResult<SingleRow>>);

impl PendingRow {
    /// Its row, waited for interruptibly from the main thread.
    pub fn wait(self) -> SyncResult<SingleRow> {
        runtime::wait(self.0.join())??
    }
}
