//! One error type for the whole sync path. Every failure carries a SQLSTATE, a message
//! that names the cause, and a HINT that says what to do; `raise` turns it into an ereport.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::fmt;

#[derive(Debug, Clone)]
pub struct SyncError {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: String,
    /// Worth retrying: BigQuery was overloaded or the connection failed.
    pub transient: bool,
}

pub type SyncResult<T> = Result<T, SyncError>;

/// SPI's own failures (an ERROR a statement raises unwinds past us instead): a statement or
/// a result token_sync got wrong, so a bug.
impl From<pgrx::spi::Error> for SyncError {
    fn from(error: pgrx::spi::Error) -> Self {
        SyncError::new(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("token_sync's query failed: {error}"),
            "This is a bug in token_sync; please report it with the statement that failed.",
        )
    }
}

impl SyncError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            hint: hint.into(),
            transient: false,
        }
    }

    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn config(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            message,
            hint,
        )
    }

    pub fn invalid_argument(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            message,
            hint,
        )
    }

    /// The source answered, but with something we refuse to load.
    pub fn bad_source_data(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_DATA_EXCEPTION, message, hint)
    }

    /// BigQuery or the network failed.
    pub fn remote(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE, message, hint)
    }

    /// Raises this error as an ERROR in the calling backend. Only the main thread may call it.
    pub fn raise(self) -> ! {
        let mut report =
            ErrorReport::new(self.code, self.message, "token_sync").set_hint(self.hint);
        if let Some(detail) = self.detail {
            report = report.set_detail(detail);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

/// Raises the error of a failed result, so that SQL-facing functions read straight.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for SyncResult<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|error| error.raise())
    }
}
