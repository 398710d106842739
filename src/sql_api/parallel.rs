//! A backfill's days spread over background workers (`parallel => N`). Each worker connects
//! to the database as the caller's session user, becomes the caller's current user with the
//! caller's token_sync settings (as PostgreSQL's parallel workers take on their leader's
//! state), takes the next day from a counter in a shared memory segment, syncs it as a
//! backfill does (its own subtransaction and ledger row), commits it, and writes the day's
//! result into the segment; the caller waits, says each failed day in a WARNING as it ends,
//! and returns the rows in day order. A cancel of the caller, or its end, stops the
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
const SLOT: usize = 1024;

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
    /// The role the caller runs as (after SET ROLE, or in a SECURITY DEFINER function),
    /// and its security context.
    current_user: u32,
    security_context: i32,
    /// The caller's process, whose end stops the worker.
    leader_pid: i32,
    /// Every token_sync setting as the caller has it, wherever it came from.
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
    check_own_transaction();
    // SAFETY: plain reads of this backend's identity.
    let (leader_pid, (current_user, security_context)) = unsafe {
        let mut user = pg_sys::InvalidOid;
        let mut context = 0;
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        (pg_sys::MyProcPid, (user.to_u32(), context))
    };
    let request = serde_json::to_vec(&Request {
        source_table: plan.source_name(),
        time_column: plan.time_column().map(str::to_string),
        target_table: plan.ledger_name.clone(),
        from_day: from.to_string(),
        current_user,
        security_context,
        leader_pid,
        settings: current_settings(),
    })
    .unwrap_or_default();
    let segment = Segment::create(&request, days);
    let workers = Workers::start(&segment, parallel.min(days));
    let mut reported = vec![false; days];
    let mut waits = 0u64;
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
        crate::runtime::sleep_on_latch(std::time::Duration::from_millis(100));
        waits += 1;
        if waits.is_multiple_of(10) {
            check_not_blocking(&workers);
        }
    }
    let started = Instant::now();
    (0..days)
        .map(|index| {
            let day = day_at(from, index);
            match segment.result(index) {
                Some(result) => row(day, result),
                None => {
                    let error = if segment.taken(index) {
                        "the background worker syncing the day ended before it finished; see the server log"
                    } else {
                        "no background worker took the day: every worker ended before it; see the server log"
                    }
                    .to_string();
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

/// A backfill with `parallel` commits each day in its worker, so it refuses to run inside a
/// transaction block: locks the block took before (a day's, the target's) would keep the
/// workers waiting on it while it waits on them (`check_not_blocking` catches the rest).
fn check_own_transaction() {
    // SAFETY: a plain read of the transaction's state.
    if unsafe { pg_sys::IsTransactionBlock() } {
        SyncError::new(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "a backfill with parallel cannot run inside a transaction block",
            "Run it on its own, outside BEGIN ... COMMIT (as psql and pg_cron run a statement): each day commits in its worker, and this transaction's locks would keep them waiting. Or pass parallel => 1, which runs in the caller's transaction.",
        )
        .raise();
    }
}

/// Fails the call if a worker waits for a lock this backend holds: it would wait for ever,
/// unseen by the deadlock detector (this backend waits on its latch, not on a lock).
fn check_not_blocking(workers: &Workers) {
    let pids: Vec<i32> = workers
        .0
        .iter()
        .filter_map(|worker| worker.pid().ok())
        .collect();
    let blocking = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.unnest($1::pg_catalog.int4[]) AS w(pid) \
         WHERE pg_catalog.pg_backend_pid() = ANY (pg_catalog.pg_blocking_pids(w.pid)))",
        &[pids.into()],
    )
    .map_err(SyncError::from)
    .or_raise();
    if blocking == Some(true) {
        SyncError::new(
            PgSqlErrorCode::ERRCODE_T_R_DEADLOCK_DETECTED,
            "a backfill worker waits for a lock that this call's own statement holds",
            "Run the backfill with parallel in a statement of its own (not from a function or DO block that synced a day or changed the target first), or pass parallel => 1.",
        )
        .raise();
    }
}

/// Every token_sync setting's value in this session, read as PostgreSQL holds it (also one
/// the calling role may not read back, such as the credentials).
fn current_settings() -> Vec<(String, String)> {
    crate::settings::NAMES
        .iter()
        .filter_map(|name| {
            let name_c = std::ffi::CString::new(*name).ok()?;
            // SAFETY: a setting this library defines; the value is copied at once.
            let value = unsafe {
                let value = pg_sys::GetConfigOption(name_c.as_ptr(), true, false);
                (!value.is_null()).then(|| {
                    std::ffi::CStr::from_ptr(value)
                        .to_string_lossy()
                        .into_owned()
                })
            }?;
            Some((name.to_string(), value))
        })
        .collect()
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

    /// Whether a worker took the day.
    fn taken(&self, index: usize) -> bool {
        // SAFETY: a slot begins with its SlotHeader, zeroed by `create`.
        let slot = unsafe { &*self.slot(index).cast::<SlotHeader>() };
        slot.state.load(Ordering::Acquire) != 0
    }

    fn mark_running(&self, index: usize) {
        // SAFETY: a slot begins with its SlotHeader, zeroed by `create`.
        let slot = unsafe { &*self.slot(index).cast::<SlotHeader>() };
        slot.state.store(RUNNING, Ordering::Release);
    }

    fn store(&self, index: usize, mut result: DayResult) {
        let capacity = SLOT - std::mem::size_of::<SlotHeader>();
        let mut json = serde_json::to_vec(&result).unwrap_or_default();
        // Escapes can make the JSON of an error several times its length: cut the error
        // until its JSON fits.
        while json.len() > capacity {
            let Some(error) = result.error.as_mut().filter(|error| !error.is_empty()) else {
                break;
            };
            let mut cut = error.len() / 2;
            while !error.is_char_boundary(cut) {
                cut -= 1;
            }
            error.truncate(cut);
            error.push('…');
            json = serde_json::to_vec(&result).unwrap_or_default();
        }
        json.truncate(capacity);
        let slot = self.slot(index);
        // SAFETY: only the worker that took the day writes its slot, before marking it DONE.
        unsafe {
            std::ptr::copy_nonoverlapping(
                json.as_ptr(),
                slot.add(std::mem::size_of::<SlotHeader>()),
                json.len(),
            );
            let header = slot.cast::<SlotHeader>();
            std::ptr::addr_of_mut!((*header).len).write(json.len() as u32);
            (*header).state.store(DONE, Ordering::Release);
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
        let mut workers = Vec::new();
        for number in 1..=wanted {
            match register(
                &format!("token_sync backfill {number} of {wanted}"),
                "token_sync backfill",
                "token_sync_backfill_worker",
                segment,
                number,
            ) {
                Ok(worker) => workers.push(worker),
                Err(_) => break,
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
        // The workers' ledger writes each need a slot for a moment: one must stay free. A
        // probe that ends at once shows whether one is; if not, the last worker takes no
        // day (or none after the one it may have begun) and ends, which frees its slot.
        let room_left = workers.len() < wanted
            || register(
                "token_sync slot probe",
                "token_sync slot probe",
                "token_sync_slot_probe",
                segment,
                0,
            )
            .map(DynamicBackgroundWorker::terminate)
            .is_err();
        let working = if room_left && workers.len() > 1 {
            workers.len() - 1
        } else {
            workers.len()
        };
        segment.allow_workers(working);
        if working < wanted {
            pgrx::notice!(
                "token_sync: {working} of {wanted} background workers work on the backfill: the server has no slot for more (max_worker_processes){}",
                if working < workers.len() {
                    ", and keeps one for the ledger's writes"
                } else {
                    ""
                }
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

/// Registers a worker of this library, of type `kind`, that runs `function` on `segment`.
fn register(
    name: &str,
    kind: &str,
    function: &str,
    segment: &Segment,
    number: usize,
) -> Result<DynamicBackgroundWorker, pgrx::bgworkers::DynamicBackgroundWorkerLoadError> {
    // SAFETY: plain reads of this backend's identity.
    let (database, session_user, leader) = unsafe {
        (
            pg_sys::MyDatabaseId.to_u32(),
            pg_sys::GetSessionUserId().to_u32(),
            pg_sys::MyProcPid,
        )
    };
    BackgroundWorkerBuilder::new(&format!("{name} for PID {leader}"))
        .set_type(kind)
        .set_library("token_sync")
        .set_function(function)
        .enable_spi_access()
        .set_restart_time(None)
        .set_argument(Some(pg_sys::Datum::from(segment.handle())))
        .set_extra(&format!("{database} {session_user} {number}"))
        .set_notify_pid(leader)
        .load_dynamic()
}

/// A worker that ends at once: `Workers::start` learns from it whether a slot is free.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn token_sync_slot_probe(_argument: pg_sys::Datum) {}

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
    let (Some(Some(database)), Some(Some(session_user)), Some(Some(number))) =
        (ids.next(), ids.next(), ids.next())
    else {
        pgrx::warning!("token_sync backfill worker started without its database, role and number");
        return;
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(
        Some(pg_sys::Oid::from(database)),
        Some(pg_sys::Oid::from(session_user)),
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
    stop_when_gone(request.leader_pid);
    // SAFETY: the caller's role and context, as a parallel worker takes on its leader's;
    // the session's, kept across this worker's transactions.
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(request.current_user),
            request.security_context,
        );
    }
    let (bigquery, mut plan, from) = BackgroundWorker::transaction(AssertUnwindSafe(|| {
        for (name, value) in &request.settings {
            take_setting(name, value);
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

/// Sets a token_sync setting to the caller's value. Set as the server would set it for a
/// superuser: the caller held the value, whoever may set it.
fn take_setting(name: &str, value: &str) {
    let (Ok(name), Ok(value)) = (std::ffi::CString::new(name), std::ffi::CString::new(value))
    else {
        return;
    };
    // SAFETY: a setting of this library, set for the session at the current nest level,
    // as SET would; an invalid value raises an ERROR, which ends the worker.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SET,
            true,
            0,
            false,
        );
    }
}

/// Ends this worker (as SIGTERM does) once the caller's process is gone, e.g. terminated:
/// its cancel guard never ran. Watched from a thread of its own, which blocks every signal
/// so that they reach the main thread, and calls nothing of PostgreSQL's.
fn stop_when_gone(leader: i32) {
    std::thread::spawn(move || {
        // SAFETY: this thread's own signal mask.
        unsafe {
            let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), std::ptr::null_mut());
        }
        loop {
            std::thread::sleep(std::time::Duration::from_millis(200));
            // SAFETY: signal 0 only checks that the process exists.
            let gone = unsafe { libc::kill(leader, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            if gone {
                // SAFETY: SIGTERM to this process, handled on the main thread.
                unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
                return;
            }
        }
    });
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
