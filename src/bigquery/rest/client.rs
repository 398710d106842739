//! The REST calls we make: `tables.get`, `jobs.query` and `jobs.getQueryResults`.

use crate::bigquery::auth::Authorizer;
use crate::bigquery::errors;
use crate::bigquery::retry::RetryPolicy;
use crate::bigquery::wire::{Body, Envelope, JobReference};
use crate::error::{SyncError, SyncResult};
use crate::settings::Settings;
use crate::source::TableRef;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use url::Url;

/// How long one getQueryResults call may wait server-side for a running job.
const JOB_WAIT_MS: u32 = 10_000;

/// Which part of a result `getQueryResults` asks for.
#[derive(Debug, Clone, Copy)]
pub enum Page<'a> {
    First,
    Token(&'a str),
    Position(u64),
}

#[derive(Clone)]
pub struct BigQueryClient {
    http: reqwest::Client,
    api_url: Url,
    billing_project: String,
    location: String,
    auth: Authorizer,
    timeout: Duration,
    retry: RetryPolicy,
}

/// The backend's HTTP client, kept from call to call (and day to day of a backfill) so that
/// its connections, and their TLS handshakes, are reused.
static HTTP: Mutex<Option<(Duration, reqwest::Client)>> = Mutex::new(None);

fn http_client(timeout: Duration) -> SyncResult<reqwest::Client> {
    let mut cached = HTTP.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((built_for, client)) = cached.as_ref() {
        if *built_for == timeout {
            return Ok(client.clone());
        }
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("token_sync/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .build()
        .map_err(|error| errors::network(&error))?;
    *cached = Some((timeout, client.clone()));
    Ok(client)
}

impl BigQueryClient {
    pub async fn connect(settings: &Settings) -> SyncResult<Self> {
        let auth = Authorizer::for_credentials(&settings.credentials).await?;
        let http = http_client(settings.http_timeout)?;
        Ok(Self {
            http,
            api_url: settings.api_url.clone(),
            billing_project: settings.billing_project.clone(),
            location: settings.location.clone(),
            auth,
            timeout: settings.http_timeout,
            retry: RetryPolicy::new(settings),
        })
    }

    /// The same client, calling with `auth`.
    pub fn with_auth(&self, auth: Authorizer) -> Self {
        Self {
            auth,
            ..self.clone()
        }
    }

    /// `tables.get`: the table's schema and partitioning.
    pub async fn get_table(&self, table: &TableRef) -> SyncResult<Body> {
        let mut url = self.api_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([
                "bigquery",
                "v2",
                "projects",
                &table.project,
                "datasets",
                &table.dataset,
                "tables",
                &table.table,
            ]);
        }
        self.send(|| self.http.get(url.clone())).await
    }

    /// `jobs.query`. The body carries a requestId, so a retry returns the same job instead
    /// of starting another.
    pub async fn query(&self, body: &serde_json::Value) -> SyncResult<Body> {
        let url = self.queries_url(&[]);
        self.send(|| self.http.post(url.clone()).json(body)).await
    }

    /// `jobs.getQueryResults`, its envelope read: where the job stands.
    pub async fn get_query_results(
        &self,
        job: &JobReference,
        page: Page<'_>,
        max_results: u32,
    ) -> SyncResult<Body> {
        self.results(job, page, max_results, Reading::Envelope)
            .await
    }

    /// `jobs.getQueryResults` of a completed job: a page of rows, handed to `read`, which
    /// reads it in one pass (`Body::parse_each_row`, its errors included) rather than after
    /// a scan for its envelope. A transient error `read` finds (BigQuery's `backendError`
    /// in the page) asks for the page again, as a transient HTTP error does.
    pub async fn get_result_rows<T>(
        &self,
        job: &JobReference,
        page: Page<'_>,
        max_results: u32,
        mut read: impl FnMut(&Body) -> SyncResult<T>,
    ) -> SyncResult<T> {
        let mut retries = 0;
        loop {
            let body = self.results(job, page, max_results, Reading::Rows).await?;
            match read(&body) {
                Err(error) => retries = self.retry.pause(error, retries, None).await?,
                read => return read,
            }
        }
    }

    async fn results(
        &self,
        job: &JobReference,
        page: Page<'_>,
        max_results: u32,
        reading: Reading,
    ) -> SyncResult<Body> {
        let mut url = self.queries_url(&[&job.job_id]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("maxResults", &max_results.to_string())
                .append_pair("timeoutMs", &JOB_WAIT_MS.to_string())
                .append_pair("formatOptions.useInt64Timestamp", "true")
                .append_pair(
                    "location",
                    job.location.as_deref().unwrap_or(self.location.as_str()),
                );
            match page {
                Page::First => {}
                Page::Token(token) => {
                    query.append_pair("pageToken", token);
                }
                Page::Position(index) => {
                    query.append_pair("startIndex", &index.to_string());
                }
            }
        }
        self.send_reading(|| self.http.get(url.clone()), reading)
            .await
    }

    /// `{api_url}/bigquery/v2/projects/{billing_project}/queries[/{extra}]`, each segment escaped.
    fn queries_url(&self, extra: &[&str]) -> Url {
        let mut url = self.api_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend([
                    "bigquery",
                    "v2",
                    "projects",
                    &self.billing_project,
                    "queries",
                ])
                .extend(extra);
        }
        url
    }

    /// Sends the request, retrying transient failures as the retry policy says. A retry
    /// repeats the same request: the same job, the same page.
    async fn send(&self, request: impl Fn() -> reqwest::RequestBuilder) -> SyncResult<Body> {
        self.send_reading(request, Reading::Envelope).await
    }

    async fn send_reading(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
        reading: Reading,
    ) -> SyncResult<Body> {
        let mut retries = 0;
        loop {
            match self.send_once(request(), reading).await {
                Err(error) => retries = self.retry.pause(error, retries, None).await?,
                body => return body,
            }
        }
    }

    async fn send_once(
        &self,
        request: reqwest::RequestBuilder,
        reading: Reading,
    ) -> SyncResult<Body> {
        let token = self.auth.bearer(self.timeout).await?;
        let request = match &token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        self.exchange(request, reading)
            .await
            .map_err(|error| redact(error, token.as_deref()))
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        reading: Reading,
    ) -> SyncResult<Body> {
        let response = request.send().await.map_err(|e| errors::network(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| errors::network(&e))?;
        if !status.is_success() {
            return Err(errors::from_http_status(status.as_u16(), &body));
        }
        if reading == Reading::Rows {
            return Ok(Body {
                bytes: body,
                envelope: Envelope::default(),
            });
        }
        let envelope: Envelope =
            serde_json::from_slice(&body).map_err(errors::not_a_query_response)?;
        if !envelope.errors.is_empty() {
            return Err(errors::from_error_protos(status.as_u16(), &envelope.errors));
        }
        Ok(Body {
            bytes: body,
            envelope,
        })
    }
}

/// How much of a successful answer `exchange` reads before returning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Its envelope: its errors, and where its job stands.
    Envelope,
    /// Nothing: a page of rows, whose one parse reads its errors with its rows.
    Rows,
}

/// Whatever a server sends back, the bearer token we sent it never reaches an error message.
fn redact(mut error: SyncError, token: Option<&str>) -> SyncError {
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        error.message = error.message.replace(token, "[redacted]");
        error.detail = error
            .detail
            .map(|detail| detail.replace(token, "[redacted]"));
    }
    error
}
