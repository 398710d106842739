//! A day's COPY rows kept by hour in PostgreSQL's temporary files (BufFile: in
//! `temp_tablespaces`, counted by `temp_file_limit`, removed when the (sub)transaction
//! ends), so that a re-sync can write back the rows of the hours that changed only: no
//! table, no catalog entry, no lock, no privilege beyond the day's own. Only the backend's
//! main thread touches them, never from inside COPY's callback but to read.

use crate::day::HOURS;
use crate::error::{SyncError, SyncResult};
use crate::load::copy_from::ChunkSource;
use crate::source::Source;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{PgMemoryContexts, PgSqlErrorCode};
use std::cell::RefCell;
use std::rc::Rc;

/// What one read of a file hands COPY at most.
const CHUNK_BYTES: usize = 1 << 20;

pub struct HourFiles {
    /// Per hour, its file, made by the hour's first row.
    files: [*mut pg_sys::BufFile; HOURS],
}

impl HourFiles {
    /// None yet; they go where `temp_tablespaces` says, as the role that makes them.
    pub fn new() -> Self {
        // SAFETY: reads the temp_tablespaces setting into this transaction's state, as a
        // sort or a hash join does before its files (BufFileCreateTemp does not).
        unsafe { pg_sys::PrepareTempTablespaces() };
        Self {
            files: [std::ptr::null_mut(); HOURS],
        }
    }

    /// Whether a day of `rows` fits in `temp_file_limit` (none by default), judged by the
    /// table's average row as BigQuery reports it, twice over: where the limit would refuse
    /// the files, the day is rewritten whole, which needs none.
    pub fn would_fit(source: &Source, rows: i64) -> SyncResult<bool> {
        let limit_kb = Spi::get_one::<i64>(
            "SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'temp_file_limit'",
        )?
        .unwrap_or(-1);
        if limit_kb < 0 {
            return Ok(true);
        }
        let row_bytes = source.schema.average_row_bytes.unwrap_or(u64::MAX);
        let day_kb = row_bytes
            .saturating_mul(2)
            .saturating_mul(rows.max(0) as u64)
            / 1024;
        Ok(day_kb < limit_kb as u64)
    }

    /// Appends `rows`, whole rows of COPY of `hour` (0 to 23; a later hour is the last's,
    /// as `DayDigest` counts it).
    pub fn append(&mut self, hour: usize, rows: &[u8]) {
        let file = &mut self.files[hour.min(HOURS - 1)];
        if file.is_null() {
            // SAFETY: a temporary file of the current resource owner (the day's
            // subtransaction), closed by `Drop`, or by that owner if the subtransaction
            // aborts first. Its BufFile lives in CurTransactionContext, which outlasts every
            // SPI call and COPY of the day, whatever context is current when a row comes.
            *file = unsafe {
                PgMemoryContexts::CurTransactionContext
                    .switch_to(|_| pg_sys::BufFileCreateTemp(false))
            };
        }
        // SAFETY: `file` is open; BufFileWrite copies the bytes, and raises an ERROR where
        // it cannot (a full disk, temp_file_limit).
        unsafe { pg_sys::BufFileWrite(*file, rows.as_ptr().cast_mut().cast(), rows.len()) };
    }

    /// COPY's chunks of the rows of `hours`, file after file from its start. A chunk ends
    /// where a read ends, not at a row's end: reading a file never fails but by an ERROR.
    pub fn rows_of(files: Rc<RefCell<Self>>, hours: Vec<usize>) -> Box<ChunkSource<'static>> {
        let mut hours = hours.into_iter();
        let mut reading: *mut pg_sys::BufFile = std::ptr::null_mut();
        Box::new(move || -> SyncResult<Option<Vec<u8>>> {
            loop {
                if reading.is_null() {
                    let Some(hour) = hours.next() else {
                        return Ok(None);
                    };
                    reading = files.borrow().files.get(hour).copied().unwrap_or_default();
                    if reading.is_null() {
                        continue;
                    }
                    // SAFETY: an open file of ours, read from its first byte.
                    let rewound = unsafe { pg_sys::BufFileSeek(reading, 0, 0, libc::SEEK_SET) };
                    if rewound != 0 {
                        return Err(SyncError::new(
                            PgSqlErrorCode::ERRCODE_IO_ERROR,
                            format!(
                                "token_sync could not read back the temporary file of hour {hour}"
                            ),
                            "Nothing was written for the day. Sync it again.",
                        ));
                    }
                }
                let mut chunk = vec![0u8; CHUNK_BYTES];
                // SAFETY: reads at most `CHUNK_BYTES` into `chunk`, which holds as many.
                let read =
                    unsafe { pg_sys::BufFileRead(reading, chunk.as_mut_ptr().cast(), CHUNK_BYTES) };
                if read == 0 {
                    reading = std::ptr::null_mut();
                    continue;
                }
                chunk.truncate(read);
                return Ok(Some(chunk));
            }
        })
    }
}

impl Drop for HourFiles {
    fn drop(&mut self) {
        // Unwinding from an ERROR, the aborting (sub)transaction's resource owner closes them.
        if std::thread::panicking() {
            return;
        }
        for file in self.files.iter().filter(|file| !file.is_null()) {
            // SAFETY: open, and closed once: `files` goes with `self`.
            unsafe { pg_sys::BufFileClose(*file) };
        }
    }
}
