//! Turns what BigQuery answers into errors that name the cause and say what to do.

use super::wire::{ErrorBody, ErrorProto};
use crate::error::SyncError;
use pgrx::PgSqlErrorCode;

/// Reasons BigQuery gives for failures that go away on their own.
const TRANSIENT_REASONS: [&str; 5] = [
    "rateLimitExceeded",
    "backendError",
    "internalError",
    "jobRateLimitExceeded",
    "jobBackendError",
];

/// Reasons that no retry can fix, whatever the HTTP status says.
const PERMANENT_REASONS: [&str; 8] = [
    "invalidQuery",
    "invalid",
    "accessDenied",
    "notFound",
    "quotaExceeded",
    "bytesBilledLimitExceeded",
    "authError",
    "billingNotEnabled",
];

fn is_transient(status: u16, reason: &str) -> bool {
    TRANSIENT_REASONS.contains(&reason)
        || (matches!(status, 429 | 500 | 502 | 503 | 504) && !PERMANENT_REASONS.contains(&reason))
}

/// An error BigQuery reported, by HTTP status and reason.
pub fn remote_error(status: u16, reason: &str, message: &str) -> SyncError {
    let text = if message.is_empty() {
        format!("BigQuery answered HTTP {status} {reason}")
    } else {
        format!("BigQuery refused the request: {message}")
    };
    let (code, hint) = match (status, reason) {
        _ if is_transient(status, reason) => (
            PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            "BigQuery is overloaded or failing right now. token_sync retried it token_sync.max_retries times; run the day again later.",
        ),
        (_, "notFound") | (404, _) => (
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            "Check token_sync.source_table and token_sync.location: the table, dataset or job was not found there.",
        ),
        (_, "accessDenied") | (403, _) => (
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "The service account needs roles/bigquery.jobUser on token_sync.billing_project and read access (roles/bigquery.dataViewer) on the source table.",
        ),
        (401, _) | (_, "authError") => (
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            "The credentials were not accepted. Check token_sync.credentials (the key may be revoked or for another project).",
        ),
        (_, "bytesBilledLimitExceeded") => (
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            "The query would bill more than token_sync.max_bytes_billed. Raise that setting if the scan is expected.",
        ),
        (_, "quotaExceeded") => (
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            "A BigQuery quota of token_sync.billing_project is exhausted. Try again after the quota resets, or raise it in the Cloud console.",
        ),
        (_, "invalidQuery") | (_, "invalid") | (400, _) => (
            PgSqlErrorCode::ERRCODE_FDW_ERROR,
            "BigQuery refused the query token_sync built from the source's schema: check the source table's name (token_sync.source_table, or the registered table), and whether its schema changed during the call.",
        ),
        _ => (
            PgSqlErrorCode::ERRCODE_FDW_ERROR,
            "See the message from BigQuery above.",
        ),
    };
    let error = SyncError::new(code, text, hint)
        .with_detail(format!("HTTP status {status}, reason {reason}"));
    if is_transient(status, reason) {
        error.transient()
    } else {
        error
    }
}

pub fn from_error_protos(status: u16, errors: &[ErrorProto]) -> SyncError {
    let first = errors.first().cloned().unwrap_or_default();
    remote_error(
        status,
        first.reason.as_deref().unwrap_or("unknown"),
        first.message.as_deref().unwrap_or(""),
    )
}

/// A non-2xx HTTP answer, whose body may or may not be BigQuery's error JSON.
pub fn from_http_status(status: u16, body: &[u8]) -> SyncError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    match parsed.error {
        Some(inner) if !inner.errors.is_empty() => from_error_protos(status, &inner.errors),
        Some(inner) => remote_error(
            status,
            inner.status.as_deref().unwrap_or("unknown"),
            inner.message.as_deref().unwrap_or(""),
        ),
        None => remote_error(status, "unknown", ""),
    }
}

pub fn network(error: &reqwest::Error) -> SyncError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    SyncError::remote(
        format!("the request to BigQuery {what}"),
        "Check token_sync.api_url, the server's network access to it, and token_sync.http_timeout.",
    )
    .with_detail(cause_chain(error))
    .transient()
}

/// The error's causes, without reqwest's own text, which carries the URL and so a page token.
fn cause_chain(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        "no further cause given".to_string()
    } else {
        causes.join(": ")
    }
}

pub fn not_a_query_response(error: serde_json::Error) -> SyncError {
    bad_response(format!(
        "BigQuery's answer is not a query response: {error}"
    ))
}

pub fn bad_response(what: impl Into<String>) -> SyncError {
    SyncError::bad_source_data(
        what,
        "BigQuery (or the server at token_sync.api_url) sent a response this version cannot read; nothing was written. Check token_sync.api_url.",
    )
}
