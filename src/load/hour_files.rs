//! A day's COPY rows kept by hour in PostgreSQL's temporary files (BufFile: under
//! `temp_tablespaces`, counted by `temp_file_limit`, removed when the (sub)transaction
//! ends), so that a re-sync can write back the rows of the hours that changed only: no
//! table, no catalog entry, no lock, no privilege beyond the day's own.

use crate::day::HOURS;
use crate::error::SyncResult;
use crate::load::copy_from::ChunkSource;
use pgrx::pg_sys;
use std::cell::RefCell;
use std::rc::Rc;

/// What one read of a file hands COPY at most.
const CHUNK_BYTES: usize = 1 << 20;

pub struct HourFiles {
    /// Per hour, its file, made by the hour's first row.
    files: [*mut pg_sys::BufFile; HOURS],
}

impl HourFiles {
    pub fn new() -> Self {
        Self {
            files: [std::ptr::null_mut(); HOURS],
        }
    }

    /// Appends `rows`, whole rows of COPY of `hour` (0 to 23).
    pub fn append(&mut self, hour: usize, rows: &[u8]) {
        let Some(file) = self.files.get_mut(hour) else {
            return;
        };
        if file.is_null() {
            // SAFETY: a temporary file of this backend's current resource owner, closed by
            // `Drop`, or by the resource owner if the (sub)transaction aborts first.
            *file = unsafe { pg_sys::BufFileCreateTemp(false) };
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
                    unsafe { pg_sys::BufFileSeek(reading, 0, 0, libc::SEEK_SET) };
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
