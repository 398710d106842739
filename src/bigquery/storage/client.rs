//! The gRPC calls of the Storage Read API we make: `CreateReadSession` and `ReadRows`, with
//! the REST path's credentials, timeouts and retries, and the mapping of gRPC statuses to
//! errors that name the cause and say what to do.

use crate::bigquery::auth::Authorizer;
use crate::bigquery::retry::RetryPolicy;
use crate::error::{SyncError, SyncResult};
use crate::settings::{is_loopback, Settings};
use crate::source::TableRef;
use googleapis_tonic_google_cloud_bigquery_storage_v1::google::cloud::bigquery::storage::v1::{
    big_query_read_client::BigQueryReadClient, read_session, CreateReadSessionRequest, DataFormat,
    ReadRowsRequest, ReadRowsResponse, ReadSession,
};
use googleapis_tonic_google_rpc::google::rpc::RetryInfo;
use pgrx::PgSqlErrorCode;
use prost::Message;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status, Streaming};
use url::Url;

/// The largest ReadRows response accepted; BigQuery keeps them far smaller.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// What the server may send ahead of what the streams have taken, on the whole connection:
/// bytes that the HTTP/2 layer holds, outside what pages take of the budget. A 32nd of the
/// budget where that gives each stream more than HTTP/2's least window, and not sized to
/// the link (an adaptive window grows to 16 MB): a read from a far region goes at about
/// this much per round trip, and a larger budget widens it. Never less than every stream's
/// window together: a stream that waits for room in the budget keeps what it was sent
/// unread, and if that held the connection's whole window, a stream holding the room it
/// waits for could never receive its message.
pub fn connection_window(settings: &Settings) -> usize {
    stream_window(settings) * settings.fetch_concurrency.max(1) as usize
}

/// Each stream's share of the connection's window, at least HTTP/2's initial window.
fn stream_window(settings: &Settings) -> usize {
    let streams = settings.fetch_concurrency.max(1) as usize;
    (settings.max_bytes_in_flight / 32 / streams).clamp(MIN_WINDOW, MAX_WINDOW / streams)
}

/// HTTP/2's initial window, the least a peer expects.
const MIN_WINDOW: usize = 65_535;
/// The connection's window at most (hyper's adaptive windows stop there too).
const MAX_WINDOW: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct StorageClient {
    client: BigQueryReadClient<Channel>,
    auth: Authorizer,
    billing_project: String,
    pub timeout: Duration,
    retry: RetryPolicy,
}

impl StorageClient {
    pub async fn connect(settings: &Settings, url: &Url) -> SyncResult<Self> {
        let auth = Authorizer::for_credentials(&settings.credentials).await?;
        let unreachable = |error: tonic::transport::Error| {
            SyncError::remote(
                format!("cannot reach BigQuery's Storage Read API at {url}"),
                "Check token_sync.storage_api_url and the server's network access to it; or set token_sync.read_api = 'query'.",
            )
            .with_detail(error.to_string())
            .transient()
        };
        let mut endpoint = Endpoint::from_shared(url.as_str().trim_end_matches('/').to_string())
            .map_err(unreachable)?
            .connect_timeout(settings.http_timeout)
            .initial_connection_window_size(connection_window(settings) as u32)
            .initial_stream_window_size(stream_window(settings) as u32)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(settings.http_timeout);
        if url.scheme() == "https" {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_webpki_roots())
                .map_err(unreachable)?;
        } else if !is_loopback(url) {
            return Err(SyncError::config(
                format!(
                    "token_sync.storage_api_url \"{url}\" uses plain http to a non-loopback host"
                ),
                "Use https, or http only to a loopback address (an emulator).",
            ));
        }
        let channel = with_timeout(settings.http_timeout, endpoint.connect())
            .await?
            .map_err(unreachable)?;
        Ok(Self {
            client: BigQueryReadClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES),
            auth,
            billing_project: settings.billing_project.clone(),
            timeout: settings.http_timeout,
            retry: RetryPolicy::new(settings),
        })
    }

    /// The same client on the same channel, calling with `auth`.
    pub fn with_auth(&self, auth: Authorizer) -> Self {
        Self {
            auth,
            ..self.clone()
        }
    }

    async fn request<T>(&self, message: T, routing: &str) -> SyncResult<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        let metadata = request.metadata_mut();
        if let Ok(routing) = MetadataValue::try_from(routing) {
            metadata.insert("x-goog-request-params", routing);
        }
        if let Some(token) = self.auth.bearer(self.timeout).await? {
            let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                SyncError::remote(
                    "the access token cannot be sent as a gRPC header",
                    "Check token_sync.credentials.",
                )
            })?;
            metadata.insert("authorization", value);
        }
        Ok(request)
    }

    /// A session over the day's rows of `table`, its `columns` in order, in Arrow, split
    /// into at most `streams` streams. Transient failures are retried.
    pub async fn create_read_session(
        &self,
        table: &TableRef,
        columns: Vec<String>,
        row_restriction: String,
        streams: u32,
    ) -> SyncResult<ReadSession> {
        let table_path = format!(
            "projects/{}/datasets/{}/tables/{}",
            table.project, table.dataset, table.table
        );
        let message = CreateReadSessionRequest {
            parent: format!("projects/{}", self.billing_project),
            read_session: Some(ReadSession {
                table: table_path.clone(),
                data_format: DataFormat::Arrow as i32,
                read_options: Some(read_session::TableReadOptions {
                    selected_fields: columns,
                    row_restriction,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            max_stream_count: streams as i32,
            preferred_min_stream_count: 0,
        };
        let routing = format!("read_session.table={table_path}");
        let mut retries = 0;
        loop {
            let request = self.request(message.clone(), &routing).await?;
            let mut client = self.client.clone();
            match with_timeout(self.timeout, client.create_read_session(request)).await? {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => {
                    let error = status_error(&status, Call::CreateReadSession);
                    retries = self.pause_before_retry(error, &status, retries).await?;
                }
            }
        }
    }

    /// `ReadRows` on `stream` from row `offset` on: the stream, or the status it failed
    /// with (for the caller to retry); an error of our own (no access token) as such.
    pub async fn read_rows(
        &self,
        stream: &str,
        offset: u64,
    ) -> SyncResult<Result<Streaming<ReadRowsResponse>, Status>> {
        let message = ReadRowsRequest {
            read_stream: stream.to_string(),
            offset: offset as i64,
        };
        let mut request = self
            .request(message, &format!("read_stream={stream}"))
            .await?;
        // A stream runs as long as it has rows; each message has its own deadline instead.
        request.metadata_mut().remove("grpc-timeout");
        let mut client = self.client.clone();
        Ok(
            match with_timeout(self.timeout, client.read_rows(request)).await {
                Ok(answer) => answer.map(tonic::Response::into_inner),
                Err(timeout) => Err(Status::deadline_exceeded(timeout.message)),
            },
        )
    }

    /// The retry policy's pause before retry number `retries + 1` of `error`, which
    /// `status` stands for: BigQuery's RetryInfo, where it sends one, says how long to wait.
    pub async fn pause_before_retry(
        &self,
        error: SyncError,
        status: &Status,
        retries: u32,
    ) -> SyncResult<u32> {
        self.retry.pause(error, retries, retry_info(status)).await
    }
}

async fn with_timeout<F: std::future::Future>(limit: Duration, future: F) -> SyncResult<F::Output> {
    tokio::time::timeout(limit, future).await.map_err(|_| {
        SyncError::remote(
            "BigQuery's Storage Read API did not answer in time",
            "It was retried token_sync.max_retries times; run the day again later, or raise token_sync.http_timeout.",
        )
        .transient()
    })
}

/// The delay a RESOURCE_EXHAUSTED or UNAVAILABLE status asks for, from its google.rpc.Status
/// details.
fn retry_info(status: &Status) -> Option<Duration> {
    let details =
        googleapis_tonic_google_rpc::google::rpc::Status::decode(status.details()).ok()?;
    details.details.iter().find_map(|any| {
        if !any.type_url.ends_with("google.rpc.RetryInfo") {
            return None;
        }
        let delay = RetryInfo::decode(any.value.as_ref()).ok()?.retry_delay?;
        Some(Duration::new(
            u64::try_from(delay.seconds).ok()?,
            u32::try_from(delay.nanos).ok()?,
        ))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    CreateReadSession,
    ReadRows,
}

/// The error a gRPC status stands for. Those of `CreateReadSession` that mean "not this
/// way" (no permission to create read sessions, a table that cannot be read by session)
/// carry the SQLSTATEs `falls_back` looks for.
pub fn status_error(status: &Status, call: Call) -> SyncError {
    let message = format!(
        "BigQuery's Storage Read API refused the request: {}",
        status.message()
    );
    let detail = format!("gRPC status {:?}", status.code());
    let error = match status.code() {
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::Internal
        | Code::Aborted
        | Code::DeadlineExceeded
        | Code::Unknown
        | Code::Cancelled => SyncError::remote(
            message,
            "BigQuery is overloaded or the connection broke. token_sync retried it token_sync.max_retries times; run the day again later.",
        )
        .transient(),
        Code::PermissionDenied => SyncError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            message,
            "The service account needs bigquery.readsessions.create on token_sync.billing_project (roles/bigquery.readSessionUser) and read access to the table; or set token_sync.read_api = 'query' (auto falls back by itself).",
        ),
        Code::Unauthenticated => SyncError::new(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            message,
            "The credentials were not accepted. Check token_sync.credentials.",
        ),
        Code::NotFound if call == Call::CreateReadSession => SyncError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            message,
            "Check the source table's name and token_sync.billing_project.",
        ),
        Code::InvalidArgument | Code::FailedPrecondition | Code::Unimplemented
            if call == Call::CreateReadSession =>
        {
            SyncError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                message,
                "The table cannot be read through the Storage Read API (a view, for example); set token_sync.read_api = 'query' (auto falls back by itself).",
            )
        }
        _ => SyncError::remote(
            message,
            "The read session cannot be read any more (it may have expired, after 6 hours); run the day again.",
        ),
    };
    error.with_detail(detail)
}

/// Whether `auto` reads the day through the query path instead, after this failure of
/// `CreateReadSession`.
pub fn falls_back(error: &SyncError) -> bool {
    matches!(
        error.code,
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE
            | PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::RawSettings;

    /// The defaults with a budget of `budget_kb` kB and `streams` streams.
    fn settings(budget_kb: i32, streams: i32) -> Settings {
        let mut raw = RawSettings::defaults();
        raw.billing_project = "billing-1".into();
        raw.max_bytes_in_flight = budget_kb;
        raw.fetch_concurrency = streams;
        raw.validate().expect("valid settings")
    }

    #[test]
    fn the_connection_window_holds_every_streams_window() {
        let defaults = settings(32 * 1024, 4);
        assert_eq!(stream_window(&defaults), 256 * 1024);
        assert_eq!(connection_window(&defaults), 1024 * 1024);
        for (budget_kb, streams) in [(256, 1), (1024, 4), (256, 32)] {
            let small = settings(budget_kb, streams);
            assert_eq!(
                stream_window(&small),
                MIN_WINDOW,
                "{budget_kb} kB, {streams}"
            );
            assert_eq!(connection_window(&small), MIN_WINDOW * streams as usize);
        }
        let large = settings(4 * 1024 * 1024, 32);
        assert_eq!(connection_window(&large), MAX_WINDOW);
    }
}
