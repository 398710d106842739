//! The bridge between the backend's main thread and the network. HTTP and JSON decoding
//! run on a small tokio runtime; only the main thread calls into PostgreSQL, and while it
//! waits it checks for interrupts, so `statement_timeout` and `pg_cancel_backend` work.

use crate::error::{SyncError, SyncResult};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// How long the main thread waits before it looks at pending interrupts again.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The backend's runtime, built on first use (never in the postmaster).
fn runtime() -> SyncResult<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            return_large_buffers_when_freed();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("token_sync-io")
                .enable_all()
                .on_thread_start(block_signals_on_this_thread)
                .build()
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|error| {
            SyncError::new(
                pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
                format!("could not start the network threads: {error}"),
                "Check the server's limits on threads (ulimit -u) and memory.",
            )
        })
}

/// Makes glibc give every block of `MMAP_THRESHOLD` bytes or more back to the system when it
/// is freed. By default the threshold rises to the largest block freed so far, and from
/// then on such blocks are carved from the network threads' arenas, which keep what was
/// freed: measured on a day read through the Storage Read API, the backend then held some
/// 24 MB more than the budget's pages. The setting is the process's: for the rest of the
/// backend's life PostgreSQL's own blocks of 1 MiB or more are mapped and unmapped too
/// (each a system call and its page faults), and blocks from 128 KiB to 1 MiB, which glibc
/// maps until its threshold first rises, come from the heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_buffers_when_freed() {
    /// The size from which a block has its own mapping (glibc's default starts at 128 KiB).
    const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;
    // SAFETY: a libc call with two integers, on the main thread before the network threads
    // start; it changes only a tuning parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Other C libraries have allocators of their own, and no such setting.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_buffers_when_freed() {}

/// PostgreSQL's signal handlers must run on the main thread, so worker threads block all signals.
fn block_signals_on_this_thread() {
    // SAFETY: plain libc calls on a stack-local signal set; affects only the calling thread.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

/// A task on the network threads that is aborted when its owner goes away, including when
/// the main thread unwinds from an ERROR or a cancel.
pub struct BackgroundTask<T>(JoinHandle<T>);

impl<T> Drop for BackgroundTask<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> BackgroundTask<T> {
    /// The task's output, from async code on the network threads.
    pub async fn join(mut self) -> SyncResult<T> {
        (&mut self.0).await.map_err(|error| {
            SyncError::new(
                pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("a network task ended abnormally: {error}"),
                "This is a bug in token_sync; please report it.",
            )
        })
    }
}

pub fn spawn<F>(future: F) -> SyncResult<BackgroundTask<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(BackgroundTask(runtime()?.spawn(future)))
}

/// Drives `future` to completion from the main thread, checking for interrupts between slices.
/// An interrupt raises its ERROR here, dropping the future (and so any request in flight).
pub fn wait<F: Future>(future: F) -> SyncResult<F::Output> {
    let runtime = runtime()?;
    let mut future = std::pin::pin!(future);
    loop {
        // The timer must be created inside the runtime, hence the async block.
        let slice =
            runtime.block_on(async { tokio::time::timeout(INTERRUPT_POLL, future.as_mut()).await });
        match slice {
            Ok(output) => return Ok(output),
            Err(_elapsed) => {
                pgrx::check_for_interrupts!();
            }
        }
    }
}

/// Sleeps on the backend's latch until it is set (e.g. a background worker this backend
/// waits for started or ended) or `timeout` passes, then lets a cancel or timeout in.
pub fn sleep_on_latch(timeout: Duration) {
    // SAFETY: the backend's own latch, waited on as every backend does.
    unsafe {
        pgrx::pg_sys::WaitLatch(
            pgrx::pg_sys::MyLatch,
            (pgrx::pg_sys::WL_LATCH_SET
                | pgrx::pg_sys::WL_TIMEOUT
                | pgrx::pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            timeout.as_millis() as _,
            pgrx::pg_sys::PG_WAIT_EXTENSION,
        );
        pgrx::pg_sys::ResetLatch(pgrx::pg_sys::MyLatch);
    }
    pgrx::pg_sys::check_for_interrupts!();
}
