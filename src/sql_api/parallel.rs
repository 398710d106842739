//! A backfill's days spread over background workers (`parallel => N`). Each worker connects
//! to the database as the caller, takes the next day from a counter in a shared memory
//! segment, syncs it as a backfill does (its own subtransaction and ledger row), commits it,
//! and writes the day's result into the segment; the caller waits, says each failed day in
//! a WARNING as it ends, and returns the rows in day order. A cancel of the caller stops the
//! workers: each day in flight is rolled back.
//!
//! Segment layout: `Header` | the request (JSON) | one slot of `SLOT` bytes per day:
//! `SlotHeader` then the day's result (JSON). A slot's state is 0 until a worker takes
//! its day, RUNNING while the worker syncs it, DONE once the result is written.

use super::{backfill_row, failed_row, BackfillRow};
use crate::bigquery::context::BigQuery;
use crate::day::SyncDay;
use crate::error::{OrRaise, SyncError};
use crate::mirror::MirrorPlan;
use crate::source::TableRef;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, DynamicBackgroundWorker};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use serde::{Deserialize, Serialize};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// At most this many workers for one call.
pub const MAX_PARALLEL: i32 = 32;
/// A day's result in the segment; an error longer than fits is cut (the ledger has it whole).
const SLOT: usize = 4096;
const ERROR_CUT: usize = 3000;

const RUNNING: u32 = 1;
const DONE: u32 = 2;

#[repr(C)]
struct Header {
    next_day: AtomicU32,
    /// Workers numbered above this take no more days.
    workers_allowed: AtomicU32,
    days: u32,
    request_len: u32,
    request_offset: u32,
}

#[repr(C)]
struct SlotHeader {
    state: AtomicU32,
    len: u32,
}

/// What a worker needs to sync the days as the caller would.
#[derive(Serialize, Deserialize)]
struct Request {
    source_table: String,
    time_column: Option<String>,
    target_table: String,
    from_day: String,
    /// token_sync's settings the caller SET in its session, which a new connection lacks.
    settings: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct DayResult {
    status: String,
    rows_loaded: Option<i64>,
    rows_reported: Option<i64>,
    seconds: f64,
    bytes_billed: Option<i64>,
    job_id: Option<String>,
    error: Option<String>,
}

/// Checks `parallel`: given, and between 1 and MAX_PARALLEL.
pub(crate) fn checked_parallel(parallel: Option<i32>) -> usize {
    match parallel {
        Some(n @ 1..=MAX_PARALLEL) => n as usize,
        _ => SyncError::invalid_argument(
            format!(
                "parallel must be between 1 and {MAX_PARALLEL}, not {}",
                parallel.map_or("NULL".to_string(), |n| n.to_string())
            ),
            "Pass how many days to sync at once, e.g. parallel => 4; each needs a background worker (max_worker_processes).",
        )
        .raise(),
    }
}

/// The days [from, to] of `plan`, synced by up to `parallel` workers.
pub(crate) fn backfill_in_workers(
    plan: &MirrorPlan,
    from: SyncDay,
    to: SyncDay,
    parallel: usize,
) -> Vec<BackfillRow> {
    let days = (from.days_until(to) + 1) as usize;
    let request = serde_json::to_vec(&Request {
        source_table: plan.source_name(),
        time_column: plan.time_column().map(str::to_string),
        target_table: plan.ledger_name.clone(),
        from_day: from.to_string(),
        settings: session_settings(),
    })
    .unwrap_or_default();
    let segment = Segment::create(&request, days);
    let workers = Workers::start(&segment, parallel.min(days));
    let mut reported = vec![false; days];
    loop {
        for (index, reported) in reported.iter_mut().enumerate() {
            if *reported {
                continue;
            }
            if let Some(result) = segment.result(index) {
                *reported = true;
                if let Some(error) = &result.error {
                    pgrx::warning!("token_sync: {} failed: {error}", day_at(from, index));
                }
            }
        }
        if workers.all_stopped() {
            break;
        }
        wait_a_moment();
    }
    let started = Instant::now();
    (0..days)
        .map(|index| {
            let day = day_at(from, index);
            match segment.result(index) {
                Some(result) => row(day, result),
                None => {
                    let error = "the background worker syncing the day ended before it finished; see the server log".to_string();
                    pgrx::warning!("token_sync: {day} failed: {error}");
                    failed_row(day, started, error)
                }
            }
        })
        .collect()
}

fn day_at(from: SyncDay, index: usize) -> SyncDay {
    from.after(index as u64).unwrap_or(from)
}

fn row(day: SyncDay, result: DayResult) -> BackfillRow {
    (
        day.to_pg(),
        result.status,
        result.rows_loaded,
        result.rows_reported,
        result.seconds,
        result.bytes_billed,
        result.job_id,
        result.error,
    )
}

/// token_sync's settings SET in this session: a worker's new connection has the rest
/// (server, database and role settings) as the caller has them.
fn session_settings() -> Vec<(String, String)> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT name::text, setting FROM pg_catalog.pg_settings \
                 WHERE name LIKE 'token\\_sync.%' AND source = 'session' ORDER BY name",
                None,
                &[],
            )?
            .map(|row| Ok((row.get::<String>(1)?, row.get::<String>(2)?)))
            .filter_map(
                |pair: Result<(Option<String>, Option<String>), pgrx::spi::Error>| match pair {
                    Ok((Some(name), Some(value))) => Some(Ok((name, value))),
                    Ok(_) => None,
                    Err(error) => Some(Err(error)),
                },
            )
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(SyncError::from)
    .or_raise()
}

/// Sleeps until a worker starts or stops (the postmaster sets our latch) or 100 ms pass,
/// and lets a cancel in.
fn wait_a_moment() {
    // SAFETY: our own latch, as every backend waits on it.
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            100,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    pg_sys::check_for_interrupts!();
}

/// The shared memory segment of one call.
struct Segment {
    segment: *mut pg_sys::dsm_segment,
    base: *mut u8,
}

impl Segment {
    fn create(request: &[u8], days: usize) -> Self {
        let request_offset = std::mem::size_of::<Header>();
        let slots = (request_offset + request.len()).next_multiple_of(8);
        // SAFETY: a new segment of the size computed here, written before any worker
        // exists; detached in Drop (or by the resource owner, on an error).
        unsafe {
            let segment = pg_sys::dsm_create(slots + days * SLOT, 0);
            let base = pg_sys::dsm_segment_address(segment) as *mut u8;
            std::ptr::write_bytes(base, 0, slots + days * SLOT);
            base.cast::<Header>().write(Header {
                next_day: AtomicU32::new(0),
                workers_allowed: AtomicU32::new(u32::MAX),
                days: days as u32,
                request_len: request.len() as u32,
                request_offset: request_offset as u32,
            });
            std::ptr::copy_nonoverlapping(
                request.as_ptr(),
                base.add(request_offset),
                request.len(),
            );
            Self { segment, base }
        }
    }

    /// SAFETY: `handle` names a segment made by `create`, whose maker waits for this worker.
    unsafe fn attach(handle: pg_sys::dsm_handle) -> Option<Self> {
        let segment = pg_sys::dsm_attach(handle);
        (!segment.is_null()).then(|| Self {
            segment,
            base: pg_sys::dsm_segment_address(segment) as *mut u8,
        })
    }

    fn header(&self) -> &Header {
        // SAFETY: the segment begins with the Header `create` wrote.
        unsafe { &*self.base.cast::<Header>() }
    }

    fn request(&self) -> Option<Request> {
        let header = self.header();
        // SAFETY: `create` wrote request_len bytes at request_offset.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                self.base.add(header.request_offset as usize),
                header.request_len as usize,
            )
        };
        serde_json::from_slice(bytes).ok()
    }

    fn slot(&self, index: usize) -> *mut u8 {
        let header = self.header();
        let slots =
            (header.request_offset as usize + header.request_len as usize).next_multiple_of(8);
        // SAFETY: index < days, and the segment holds `days` slots after the request.
        unsafe { self.base.add(slots + index * SLOT) }
    }

    fn allow_workers(&self, count: usize) {
        self.header()
            .workers_allowed
            .store(count as u32, Ordering::Release);
    }

    /// The next day no worker has taken, as its index, for worker `number`.
    fn take_day(&self, number: u32) -> Option<usize> {
        let header = self.header();
        if number > header.workers_allowed.load(Ordering::Acquire) {
            return None;
        }
        let index = header.next_day.fetch_add(1, Ordering::AcqRel);
        (index < header.days).then_some(index as usize)
    }

    fn mark_running(&self, index: usize) {
        // SAFETY: a slot begins with its SlotHeader, zeroed by `create`.
        let slot = unsafe { &*self.slot(index).cast::<SlotHeader>() };
        slot.state.store(RUNNING, Ordering::Release);
    }

    fn store(&self, index: usize, mut result: DayResult) {
        let capacity = SLOT - std::mem::size_of::<SlotHeader>();
        if let Some(error) = result
            .error
            .as_mut()
            .filter(|error| error.len() > ERROR_CUT)
        {
            let mut cut = ERROR_CUT;
            while !error.is_char_boundary(cut) {
                cut -= 1;
            }
            error.truncate(cut);
            error.push('…');
        }
        let mut json = serde_json::to_vec(&result).unwrap_or_default();
        json.truncate(capacity);
        let slot = self.slot(index);
        // SAFETY: only the worker that took the day writes its slot, before marking it DONE.
        unsafe {
            std::ptr::copy_nonoverlapping(
                json.as_ptr(),
                slot.add(std::mem::size_of::<SlotHeader>()),
                json.len(),
            );
            let header = &mut *slot.cast::<SlotHeader>();
            header.len = json.len() as u32;
            header.state.store(DONE, Ordering::Release);
        }
    }

    /// The day's result, once its worker has stored it.
    fn result(&self, index: usize) -> Option<DayResult> {
        let slot = self.slot(index);
        // SAFETY: the slot's bytes are read only after its state says DONE (Acquire).
        unsafe {
            let header = &*slot.cast::<SlotHeader>();
            if header.state.load(Ordering::Acquire) != DONE {
                return None;
            }
            let json = std::slice::from_raw_parts(
                slot.add(std::mem::size_of::<SlotHeader>()),
                header.len as usize,
            );
            serde_json::from_slice(json).ok()
        }
    }

    fn handle(&self) -> pg_sys::dsm_handle {
        // SAFETY: a segment this backend holds.
        unsafe { pg_sys::dsm_segment_handle(self.segment) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: attached by this process, detached once.
        unsafe { pg_sys::dsm_detach(self.segment) }
    }
}

/// The call's workers; dropped (also by an error or a cancel unwinding), each one still
/// running is told to stop.
struct Workers(Vec<DynamicBackgroundWorker>);

impl Workers {
    fn start(segment: &Segment, wanted: usize) -> Self {
        // SAFETY: plain reads of this backend's identity.
        let (database, role, leader) = unsafe {
            (
                pg_sys::MyDatabaseId.to_u32(),
                pg_sys::GetUserId().to_u32(),
                pg_sys::MyProcPid,
            )
        };
        let mut workers = Vec::new();
        let mut working = wanted;
        for number in 1..=wanted {
            let started = BackgroundWorkerBuilder::new(&format!(
                "token_sync backfill {number} of {wanted} for PID {leader}"
            ))
            .set_type("token_sync backfill")
            .set_library("token_sync")
            .set_function("token_sync_backfill_worker")
            .enable_spi_access()
            .set_restart_time(None)
            .set_argument(Some(pg_sys::Datum::from(segment.handle())))
            .set_extra(&format!("{database} {role} {number}"))
            .set_notify_pid(leader)
            .load_dynamic();
            match started {
                Ok(worker) => workers.push(worker),
                Err(_) => {
                    // The server is full: the last worker takes no day (or none after the one
                    // it may have begun) and ends, which frees a slot for the ledger writes.
                    working = workers.len().saturating_sub(1).max(1);
                    segment.allow_workers(working);
                    break;
                }
            }
        }
        if workers.is_empty() {
            SyncError::new(
                PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                "no background worker could be started for the backfill",
                "Raise max_worker_processes (each day at once needs one, and a moment of another for its ledger rows), or pass a smaller parallel.",
            )
            .raise();
        }
        if working < wanted {
            pgrx::notice!(
                "token_sync: {working} of {wanted} background workers work on the backfill: the server has no slot for more (max_worker_processes), and keeps one for the ledger's writes"
            );
        }
        Self(workers)
    }

    fn all_stopped(&self) -> bool {
        self.0
            .iter()
            .all(|worker| matches!(worker.pid(), Err(status) if !matches!(status, pgrx::bgworkers::BackgroundWorkerStatus::NotYetStarted)))
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in self.0.drain(..) {
            // Tells the postmaster to SIGTERM it; a worker already gone is only unregistered.
            let _ = worker.terminate();
        }
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn token_sync_backfill_worker(argument: pg_sys::Datum) {
    // SAFETY: installed before signals are unblocked; see `die_at_next_interrupt_check`.
    unsafe {
        #[cfg(not(feature = "pg18"))]
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(die_at_next_interrupt_check));
        // PostgreSQL 18 names the backend's pqsignal pqsignal_be (its header's macro).
        #[cfg(feature = "pg18")]
        pg_sys::pqsignal_be(pg_sys::SIGTERM as i32, Some(die_at_next_interrupt_check));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    let mut ids = BackgroundWorker::get_extra()
        .split(' ')
        .map(|id| id.parse::<u32>().ok());
    let (Some(Some(database)), Some(Some(role)), Some(Some(number))) =
        (ids.next(), ids.next(), ids.next())
    else {
        pgrx::warning!("token_sync backfill worker started without its database, role and number");
        return;
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(
        Some(pg_sys::Oid::from(database)),
        Some(pg_sys::Oid::from(role)),
    );
    // SAFETY: the segment's maker waits for this worker to end before it detaches.
    let Some(segment) = (unsafe { Segment::attach(argument.value() as pg_sys::dsm_handle) }) else {
        pgrx::warning!("token_sync backfill worker found no shared memory segment");
        return;
    };
    let Some(request) = segment.request() else {
        pgrx::warning!("token_sync backfill worker got a request it cannot read");
        return;
    };
    let (bigquery, mut plan, from) = BackgroundWorker::transaction(AssertUnwindSafe(|| {
        for (name, value) in &request.settings {
            Spi::run_with_args(
                "SELECT pg_catalog.set_config($1, $2, false) \
                 WHERE pg_catalog.current_setting($1) IS DISTINCT FROM $2",
                &[name.as_str().into(), value.as_str().into()],
            )
            .map_err(SyncError::from)
            .or_raise();
        }
        let bigquery = BigQuery::load().or_raise();
        let table = TableRef::parse(&request.source_table).or_raise();
        let plan = MirrorPlan::new(
            &table,
            request.time_column.as_deref(),
            &request.target_table,
        )
        .or_raise();
        let from = SyncDay::parse(&request.from_day).or_raise();
        (bigquery, plan, from)
    }));
    while let Some(index) = segment.take_day(number) {
        segment.mark_running(index);
        let day = day_at(from, index);
        let row = BackgroundWorker::transaction(AssertUnwindSafe(|| {
            backfill_row(&bigquery, &mut plan, day, "")
        }));
        let (_, status, rows_loaded, rows_reported, seconds, bytes_billed, job_id, error) = row;
        segment.store(
            index,
            DayResult {
                status,
                rows_loaded,
                rows_reported,
                seconds,
                bytes_billed,
                job_id,
                error,
            },
        );
    }
}

/// SIGTERM in a worker, as PostgreSQL's `die` handles it in a backend: the next
/// CHECK_FOR_INTERRUPTS (the network waits make one at least every 100 ms) ends the worker
/// with FATAL, rolling back the day in flight.
unsafe extern "C-unwind" fn die_at_next_interrupt_check(_signal: std::ffi::c_int) {
    // SAFETY: only async-signal-safe stores and SetLatch, as `die` does.
    unsafe {
        (&raw mut pg_sys::ProcDiePending).write_volatile(1);
        (&raw mut pg_sys::InterruptPending).write_volatile(1);
        pg_sys::SetLatch(pg_sys::MyLatch);
    }
}
