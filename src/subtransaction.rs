//! Running one unit of work in its own subtransaction, the way PL/pgSQL's EXCEPTION block
//! does: on failure its writes are rolled back and the caller's transaction goes on.

use crate::error::SyncResult;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::panic::AssertUnwindSafe;

/// Errors that end the whole statement, never just one unit: a cancel, a timeout, a shutdown.
const FATAL_FOR_STATEMENT: [PgSqlErrorCode; 3] = [
    PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
    PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN,
    PgSqlErrorCode::ERRCODE_CRASH_SHUTDOWN,
];

enum Failure {
    Returned(String),
    Raised(Box<CaughtError>),
}

/// Runs `work` in a subtransaction. Its error (returned or raised by PostgreSQL) rolls the
/// subtransaction back and comes back as text; a cancel or timeout is re-raised.
pub fn run<T>(work: impl FnOnce() -> SyncResult<T>) -> Result<T, String> {
    // SAFETY: the same begin/release/rollback sequence as PL/pgSQL's exception blocks,
    // restoring the memory context and resource owner the caller had.
    let (context, owner) = unsafe {
        let saved = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        saved
    };
    let restore = || unsafe {
        pg_sys::CurrentMemoryContext = context;
        pg_sys::CurrentResourceOwner = owner;
    };
    let outcome = PgTryBuilder::new(AssertUnwindSafe(|| {
        work().map_err(|error| Failure::Returned(error.to_string()))
    }))
    .catch_others(|caught| Err(Failure::Raised(Box::new(caught))))
    .execute();
    match outcome {
        Ok(value) => {
            unsafe { pg_sys::ReleaseCurrentSubTransaction() };
            restore();
            Ok(value)
        }
        Err(failure) => {
            unsafe { pg_sys::RollbackAndReleaseCurrentSubTransaction() };
            restore();
            match failure {
                Failure::Returned(message) => Err(message),
                Failure::Raised(caught) => {
                    let report = match caught.as_ref() {
                        CaughtError::PostgresError(report)
                        | CaughtError::ErrorReport(report)
                        | CaughtError::RustPanic {
                            ereport: report, ..
                        } => report,
                    };
                    if FATAL_FOR_STATEMENT.contains(&report.sql_error_code()) {
                        caught.rethrow();
                    }
                    Err(report.message().to_string())
                }
            }
        }
    }
}
