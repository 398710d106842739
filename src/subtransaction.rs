//! Running one unit of work in its own subtransaction, the way PL/pgSQL's EXCEPTION block
//! does: on failure its writes are rolled back and the caller's transaction goes on, and
//! the caller decides whether to raise the failure again.

use crate::error::{SyncError, SyncResult};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::{CaughtError, ErrorReportWithLevel};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::panic::AssertUnwindSafe;

/// Errors that end the whole statement, never just one unit: a cancel, a timeout, a shutdown.
const FATAL_FOR_STATEMENT: [PgSqlErrorCode; 3] = [
    PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
    PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN,
    PgSqlErrorCode::ERRCODE_CRASH_SHUTDOWN,
];

/// Why a unit failed: an error it returned, or one PostgreSQL (or a panic) raised in it.
pub enum UnitFailure {
    Returned(SyncError),
    Raised(Box<CaughtError>),
}

impl UnitFailure {
    pub fn message(&self) -> String {
        match self {
            Self::Returned(error) => error.to_string(),
            Self::Raised(caught) => report_of(caught).message().to_string(),
        }
    }

    /// A cancel, a timeout or a shutdown: the statement must end, not just this unit.
    pub fn ends_statement(&self) -> bool {
        match self {
            Self::Returned(_) => false,
            Self::Raised(caught) => {
                FATAL_FOR_STATEMENT.contains(&report_of(caught).sql_error_code())
            }
        }
    }

    /// Raises the failure again, as it was first raised.
    pub fn raise(self) -> ! {
        match self {
            Self::Returned(error) => error.raise(),
            Self::Raised(caught) => caught.rethrow(),
        }
    }
}

fn report_of(caught: &CaughtError) -> &ErrorReportWithLevel {
    match caught {
        CaughtError::PostgresError(report)
        | CaughtError::ErrorReport(report)
        | CaughtError::RustPanic {
            ereport: report, ..
        } => report,
    }
}

/// Runs `work` in a subtransaction. On failure (returned, or raised by PostgreSQL) the
/// subtransaction is rolled back and the caller's transaction goes on.
pub fn run<T>(work: impl FnOnce() -> SyncResult<T>) -> Result<T, UnitFailure> {
    // SAFETY: the same begin/release/rollback sequence as PL/pgSQL's exception blocks,
    // restoring the memory context and resource owner the caller had.
    let (context, owner) = unsafe {
        let saved = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        saved
    };
    let outcome = PgTryBuilder::new(AssertUnwindSafe(|| work().map_err(UnitFailure::Returned)))
        .catch_others(|caught| Err(UnitFailure::Raised(Box::new(caught))))
        .execute();
    unsafe {
        if outcome.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::CurrentMemoryContext = context;
        pg_sys::CurrentResourceOwner = owner;
    }
    outcome
}
