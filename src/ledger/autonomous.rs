//! Autonomous ledger writes: one statement run and committed by a short-lived background
//! worker, so that it survives the caller's rollback, an ERROR, a cancel, or the backend
//! being killed. The statement and its text arguments travel in a dynamic shared memory
//! segment; the worker connects as the ledger's owner (the role that created the
//! extension), with search_path pinned, so that a caller needs no right to write the
//! ledger, and cannot forge it: the ledger is written through these functions only.
//!
//! Segment layout: status (u32) | result (i64) | payload length (u32) | payload (JSON).

use crate::error::{SyncError, SyncResult};
use crate::restricted::PINNED_SEARCH_PATH;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, DynamicBackgroundWorker,
    DynamicBackgroundWorkerLoadError, SignalWakeFlags,
};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

const STATUS_PENDING: u32 = 0;
const STATUS_DONE: u32 = 1;
const HEADER: usize = 16;

#[derive(Serialize, Deserialize)]
struct Statement {
    sql: String,
    args: Vec<Option<String>>,
}

/// Runs `sql` (text parameters `$1..`) in a transaction of its own and returns the first
/// column of its first row, if any, as a bigint.
pub fn run(sql: &str, args: Vec<Option<String>>) -> SyncResult<Option<i64>> {
    let failed = |why: String| {
        SyncError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
            format!("could not write to the token_sync ledger on its own: {why}"),
            "Check max_worker_processes (a free slot is needed for a moment) and the server log.",
        )
    };
    let payload = serde_json::to_vec(&Statement {
        sql: sql.to_string(),
        args,
    })
    .map_err(|error| failed(error.to_string()))?;
    let owner = super::owner()?;
    // SAFETY: the segment is created, written and read only here, and by the worker we
    // wait for; it is detached before returning.
    unsafe {
        let segment = pg_sys::dsm_create(HEADER + payload.len(), 0);
        let base = pg_sys::dsm_segment_address(segment) as *mut u8;
        (base as *mut u32).write_unaligned(STATUS_PENDING);
        (base.add(4) as *mut i64).write_unaligned(i64::MIN);
        (base.add(12) as *mut u32).write_unaligned(payload.len() as u32);
        std::ptr::copy_nonoverlapping(payload.as_ptr(), base.add(HEADER), payload.len());
        let handle = pg_sys::dsm_segment_handle(segment);

        let outcome = start_worker(handle, owner)
            .map_err(|_| failed("no background worker slot was free".into()))
            .and_then(|worker| {
                worker
                    .wait_for_shutdown()
                    .map_err(|status| failed(format!("the worker ended as {status:?}")))
            });
        let status = (base as *const u32).read_unaligned();
        let result = (base.add(4) as *const i64).read_unaligned();
        pg_sys::dsm_detach(segment);
        outcome?;
        if status != STATUS_DONE {
            return Err(failed("the statement failed; see the server log".into()));
        }
        Ok((result != i64::MIN).then_some(result))
    }
}

/// How long a write waits for a background worker slot: a parallel backfill's workers may
/// hold all but one, and each of them writes the ledger.
const SLOT_WAIT: Duration = Duration::from_secs(5);

fn start_worker(
    handle: pg_sys::dsm_handle,
    owner: pg_sys::Oid,
) -> Result<DynamicBackgroundWorker, DynamicBackgroundWorkerLoadError> {
    let waited = Instant::now();
    loop {
        // SAFETY: plain reads of this backend's identity.
        let (database, pid) = unsafe { (pg_sys::MyDatabaseId.to_u32(), pg_sys::MyProcPid) };
        let started = BackgroundWorkerBuilder::new("token_sync ledger")
            .set_type("token_sync ledger")
            .set_library("token_sync")
            .set_function("token_sync_ledger_worker")
            .enable_spi_access()
            .set_restart_time(None)
            .set_argument(Some(pg_sys::Datum::from(handle)))
            .set_extra(&format!("{database} {}", owner.to_u32()))
            .set_notify_pid(pid)
            .load_dynamic();
        if started.is_ok() || waited.elapsed() >= SLOT_WAIT {
            return started;
        }
        crate::runtime::sleep_on_latch(Duration::from_millis(10));
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn token_sync_ledger_worker(argument: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGTERM);
    let mut ids = BackgroundWorker::get_extra()
        .split(' ')
        .map(|id| id.parse::<u32>().ok().map(pg_sys::Oid::from));
    let (Some(Some(database)), Some(Some(user))) = (ids.next(), ids.next()) else {
        pgrx::warning!("token_sync ledger worker started without its database and user");
        return;
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(database), Some(user));
    // SAFETY: the segment was created by the backend that waits for this worker to end.
    unsafe {
        let segment = pg_sys::dsm_attach(argument.value() as pg_sys::dsm_handle);
        if segment.is_null() {
            pgrx::warning!("token_sync ledger worker found no shared memory segment");
            return;
        }
        let base = pg_sys::dsm_segment_address(segment) as *mut u8;
        let length = (base.add(12) as *const u32).read_unaligned() as usize;
        let payload = std::slice::from_raw_parts(base.add(HEADER), length);
        match serde_json::from_slice::<Statement>(payload) {
            Ok(statement) => {
                let result = BackgroundWorker::transaction(|| {
                    let args: Vec<pgrx::datum::DatumWithOid> =
                        statement.args.iter().cloned().map(Into::into).collect();
                    Spi::connect_mut(|client| {
                        client.update(
                            "SELECT pg_catalog.set_config('search_path', $1, true)",
                            None,
                            &[PINNED_SEARCH_PATH.into()],
                        )?;
                        let table = client.update(statement.sql.as_str(), Some(1), &args)?;
                        // An UPDATE or DELETE without RETURNING counts the rows it processed
                        // but has no tuple table to read a result from.
                        match table.columns() {
                            Err(pgrx::spi::Error::NoTupleTable) => Ok(None),
                            _ if table.is_empty() => Ok(None),
                            _ => table.first().get_one::<i64>(),
                        }
                    })
                });
                match result {
                    Ok(value) => {
                        (base.add(4) as *mut i64).write_unaligned(value.unwrap_or(i64::MIN));
                        (base as *mut u32).write_unaligned(STATUS_DONE);
                    }
                    Err(error) => pgrx::warning!("token_sync ledger write failed: {error}"),
                }
            }
            Err(error) => pgrx::warning!("token_sync ledger worker got a bad statement: {error}"),
        }
        pg_sys::dsm_detach(segment);
    }
}
