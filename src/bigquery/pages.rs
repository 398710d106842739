//! Runs a query job and pages through its result. The fetch runs on the network threads
//! and hands prepared pages to the main thread through a small bounded channel, so the next
//! pages are on their way while the current one is written. After the first page, the rest
//! is fetched by position, several ranges at once (`token_sync.fetch_concurrency`), and
//! delivered in order. Each response is decoded (borrowing from its body) and transformed
//! as soon as it arrives, so memory holds about `fetch_concurrency` + 2 prepared pages.

use super::client::{BigQueryClient, Page};
use super::decode::{self, ColumnMap};
use super::errors::bad_response;
use super::wire::{Body, JobReference};
use crate::error::SyncResult;
use crate::runtime::{self, BackgroundTask};
use crate::settings::Settings;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Pages prepared ahead of the writer, beside those being fetched.
const PAGES_AHEAD: usize = 2;

#[derive(Debug)]
pub enum Delivery<T> {
    Started(JobSummary),
    Page(T),
}

#[derive(Debug, Clone)]
pub struct JobSummary {
    pub job_id: String,
    pub total_rows: u64,
    pub bytes_billed: Option<i64>,
}

/// What each decoded page becomes on the network threads before it is delivered.
type Transform<T> = Arc<dyn for<'a> Fn(decode::Page<'a>) -> SyncResult<T> + Send + Sync>;

pub struct ResultStream<T> {
    receiver: mpsc::Receiver<SyncResult<Delivery<T>>>,
    _fetch: BackgroundTask<()>,
}

impl<T: Send + 'static> ResultStream<T> {
    /// Starts the query on the network threads; returns at once. Pages are delivered in
    /// result order, each passed through `transform` first.
    pub fn start<F>(settings: &Settings, request: Value, transform: F) -> SyncResult<Self>
    where
        F: for<'a> Fn(decode::Page<'a>) -> SyncResult<T> + Send + Sync + 'static,
    {
        let (sender, receiver) = mpsc::channel(PAGES_AHEAD);
        let settings = settings.clone();
        let transform: Transform<T> = Arc::new(transform);
        let fetch = runtime::spawn(async move {
            if let Err(error) = fetch_pages(&settings, &request, transform, &sender).await {
                // The receiver may be gone already; then nobody is waiting for the error.
                let _ = sender.send(Err(error)).await;
            }
        })?;
        Ok(Self {
            receiver,
            _fetch: fetch,
        })
    }

    /// The next delivery, waiting interruptibly; `None` once the result is exhausted.
    pub fn next(&mut self) -> SyncResult<Option<Delivery<T>>> {
        runtime::wait(self.receiver.recv())?.transpose()
    }
}

async fn fetch_pages<T: Send + 'static>(
    settings: &Settings,
    request: &Value,
    transform: Transform<T>,
    sender: &mpsc::Sender<SyncResult<Delivery<T>>>,
) -> SyncResult<()> {
    let client = BigQueryClient::connect(settings).await?;
    let (job, first_body) = run_to_completion(&client, request, settings.page_rows).await?;
    let first = first_body.parse()?;
    let columns = Arc::new(ColumnMap::from_schema(first.schema.as_ref().ok_or_else(
        || bad_response("BigQuery's completed query response has no schema"),
    )?)?);
    let total_rows = first
        .total_rows()
        .ok_or_else(|| bad_response("BigQuery's completed query response has no totalRows"))?;
    let summary = JobSummary {
        job_id: job.job_id.clone(),
        total_rows,
        bytes_billed: first.bytes_billed(),
    };
    let next_token = first.page_token.clone();
    let delivered = first.rows.len() as u64;
    let first_page = if first.rows.is_empty() {
        None
    } else {
        Some(transform(columns.decode(first.rows)?)?)
    };
    if sender.send(Ok(Delivery::Started(summary))).await.is_err() {
        return Ok(());
    }
    if let Some(page) = first_page {
        if sender.send(Ok(Delivery::Page(page))).await.is_err() {
            return Ok(());
        }
    }
    if next_token.is_none() || delivered >= total_rows {
        return Ok(());
    }
    let pages = PageFetch {
        client,
        job,
        columns,
        transform,
    };
    if settings.fetch_concurrency <= 1 {
        pages.by_token(next_token, settings.page_rows, sender).await
    } else {
        pages
            .by_position(delivered, total_rows, settings, sender)
            .await
    }
}

/// Everything a page fetch needs, cheap to clone into a task.
struct PageFetch<T> {
    client: BigQueryClient,
    job: JobReference,
    columns: Arc<ColumnMap>,
    transform: Transform<T>,
}

impl<T> Clone for PageFetch<T> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            job: self.job.clone(),
            columns: self.columns.clone(),
            transform: self.transform.clone(),
        }
    }
}

impl<T: Send + 'static> PageFetch<T> {
    /// One page after the other, following BigQuery's page tokens.
    async fn by_token(
        self,
        mut token: Option<String>,
        page_rows: u32,
        sender: &mpsc::Sender<SyncResult<Delivery<T>>>,
    ) -> SyncResult<()> {
        while let Some(current) = token.take() {
            let body = self
                .client
                .get_query_results(&self.job, Page::Token(&current), page_rows)
                .await?;
            let response = body.parse()?;
            if response.page_token.as_deref() == Some(current.as_str()) {
                return Err(bad_response("BigQuery returned the same page token twice"));
            }
            token = response.page_token.clone();
            let page = (self.transform)(self.columns.decode(response.rows)?)?;
            if sender.send(Ok(Delivery::Page(page))).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The rest of the result in ranges of `page_rows` fetched by position, up to
    /// `fetch_concurrency` at once, delivered in order.
    async fn by_position(
        self,
        from: u64,
        total_rows: u64,
        settings: &Settings,
        sender: &mpsc::Sender<SyncResult<Delivery<T>>>,
    ) -> SyncResult<()> {
        let step = u64::from(settings.page_rows.max(1));
        let mut ranges = (from..total_rows)
            .step_by(step as usize)
            .map(move |start| (start, (start + step).min(total_rows)));
        let mut in_flight = VecDeque::new();
        loop {
            while in_flight.len() < settings.fetch_concurrency as usize {
                let Some((start, end)) = ranges.next() else {
                    break;
                };
                let fetch = self.clone();
                in_flight.push_back(runtime::spawn(
                    async move { fetch.range(start, end).await },
                )?);
            }
            let Some(next) = in_flight.pop_front() else {
                return Ok(());
            };
            for page in next.join().await?? {
                if sender.send(Ok(Delivery::Page(page))).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    /// Rows [start, end) of the result, asking again from where BigQuery stopped when it
    /// sent a shorter page (it caps a page at about 10 MB); one prepared page per answer.
    async fn range(self, start: u64, end: u64) -> SyncResult<Vec<T>> {
        let mut pages = Vec::new();
        let mut position = start;
        while position < end {
            let body = self
                .client
                .get_query_results(&self.job, Page::Position(position), (end - position) as u32)
                .await?;
            let response = body.parse()?;
            if response.rows.is_empty() {
                return Err(bad_response(format!(
                    "BigQuery returned no rows at position {position} of a {end}-row result"
                )));
            }
            position += response.rows.len() as u64;
            pages.push((self.transform)(self.columns.decode(response.rows)?)?);
        }
        Ok(pages)
    }
}

/// Sends the query and waits until BigQuery says the job is complete; returns the job and
/// the body of the response that carries the first page.
pub async fn run_to_completion(
    client: &BigQueryClient,
    request: &Value,
    page_rows: u32,
) -> SyncResult<(JobReference, Body)> {
    let mut body = client.query(request).await?;
    let job = body
        .envelope
        .job_reference
        .clone()
        .ok_or_else(|| bad_response("BigQuery's query response has no jobReference"))?;
    while body.envelope.job_complete != Some(true) {
        body = client
            .get_query_results(&job, Page::First, page_rows)
            .await?;
    }
    Ok((job, body))
}

/// Runs a query whose result is a single row of scalars, interruptibly from the main thread.
pub fn single_row(
    settings: &Settings,
    request: Value,
) -> SyncResult<(String, Vec<Option<String>>)> {
    runtime::wait(async {
        let client = BigQueryClient::connect(settings).await?;
        let (job, body) = run_to_completion(&client, &request, 1).await?;
        let row = body
            .parse()?
            .rows
            .into_iter()
            .next()
            .ok_or_else(|| bad_response("BigQuery's summary query returned no row"))?;
        Ok((
            job.job_id,
            row.f
                .into_iter()
                .map(|cell| cell.v.map(Cow::into_owned))
                .collect(),
        ))
    })?
}
