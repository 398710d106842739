//! Runs a query job and pages through its result. The fetch runs on the network threads
//! and hands decoded pages to the main thread through a small bounded channel, so the next
//! page is on its way while the current one is written, and memory holds at most a few pages.

use super::client::BigQueryClient;
use super::decode::{ColumnMap, Page};
use super::errors::bad_response;
use super::wire::{JobReference, QueryResponse};
use crate::error::SyncResult;
use crate::runtime::{self, BackgroundTask};
use crate::settings::Settings;
use serde_json::Value;
use tokio::sync::mpsc;

/// Pages decoded ahead of the writer.
const PAGES_AHEAD: usize = 2;

#[derive(Debug)]
pub enum Delivery {
    Started(JobSummary),
    Page(Page),
}

#[derive(Debug, Clone)]
pub struct JobSummary {
    pub job_id: String,
    pub total_rows: u64,
    pub bytes_billed: Option<i64>,
}

pub struct ResultStream {
    receiver: mpsc::Receiver<SyncResult<Delivery>>,
    _fetch: BackgroundTask<()>,
}

impl ResultStream {
    /// Starts the query on the network threads; returns at once.
    pub fn start(settings: &Settings, request: Value) -> SyncResult<Self> {
        let (sender, receiver) = mpsc::channel(PAGES_AHEAD);
        let settings = settings.clone();
        let fetch = runtime::spawn(async move {
            if let Err(error) = fetch_pages(&settings, &request, &sender).await {
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
    pub fn next(&mut self) -> SyncResult<Option<Delivery>> {
        runtime::wait(self.receiver.recv())?.transpose()
    }
}

async fn fetch_pages(
    settings: &Settings,
    request: &Value,
    sender: &mpsc::Sender<SyncResult<Delivery>>,
) -> SyncResult<()> {
    let client = BigQueryClient::connect(settings).await?;
    let (job, mut response) = run_to_completion(&client, request, settings.page_rows).await?;
    let columns = ColumnMap::from_schema(
        response
            .schema
            .as_ref()
            .ok_or_else(|| bad_response("BigQuery's completed query response has no schema"))?,
    )?;
    let summary = JobSummary {
        job_id: job.job_id.clone(),
        total_rows: response
            .total_rows()
            .ok_or_else(|| bad_response("BigQuery's completed query response has no totalRows"))?,
        bytes_billed: response.bytes_billed(),
    };
    if sender.send(Ok(Delivery::Started(summary))).await.is_err() {
        return Ok(());
    }
    loop {
        let page = columns.decode(std::mem::take(&mut response.rows))?;
        if !page.rows.is_empty() && sender.send(Ok(Delivery::Page(page))).await.is_err() {
            return Ok(());
        }
        let Some(token) = response.page_token.take() else {
            return Ok(());
        };
        let next = client
            .get_query_results(&job, Some(&token), settings.page_rows)
            .await?;
        if next.page_token.as_deref() == Some(token.as_str()) {
            return Err(bad_response("BigQuery returned the same page token twice"));
        }
        response = next;
    }
}

/// Sends the query and waits until BigQuery says the job is complete; returns the job and
/// the response that carries the first page.
pub async fn run_to_completion(
    client: &BigQueryClient,
    request: &Value,
    page_rows: u32,
) -> SyncResult<(JobReference, QueryResponse)> {
    let mut response = client.query(request).await?;
    let job = response
        .job_reference
        .clone()
        .ok_or_else(|| bad_response("BigQuery's query response has no jobReference"))?;
    while response.job_complete != Some(true) {
        response = client.get_query_results(&job, None, page_rows).await?;
    }
    Ok((job, response))
}

/// Runs a query whose result is a single row of scalars, interruptibly from the main thread.
pub fn single_row(
    settings: &Settings,
    request: Value,
) -> SyncResult<(String, Vec<Option<String>>)> {
    runtime::wait(async {
        let client = BigQueryClient::connect(settings).await?;
        let (job, response) = run_to_completion(&client, &request, 1).await?;
        let row = response
            .rows
            .into_iter()
            .next()
            .ok_or_else(|| bad_response("BigQuery's summary query returned no row"))?;
        Ok((job.job_id, row.f.into_iter().map(|cell| cell.v).collect()))
    })?
}
