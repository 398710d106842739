//! Feeding rows to PostgreSQL's own COPY machinery inside the backend: `BeginCopyFrom`
//! with a data-source callback that reads the pages the network threads encoded (in COPY's
//! binary format where it can, see `format_for`, else its text format), then `CopyFrom`.
//! Constraints, defaults, triggers and indexes behave as for `COPY ... FROM`, and
//! `pg_stat_progress_copy` shows the load while it runs.

use crate::error::{SyncError, SyncResult};
use crate::types::{Column, CopyFormat, SourceSchema};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;
use std::ffi::CString;

/// Hands out the next chunk of COPY data, or `None` at the end. A source that can fail hands
/// out whole rows, so that a failure ends the COPY at a row's end.
pub type ChunkSource<'a> = dyn FnMut() -> SyncResult<Option<Vec<u8>>> + 'a;

struct ActiveSource {
    next_chunk: Box<ChunkSource<'static>>,
    chunk: Vec<u8>,
    position: usize,
    failure: Option<SyncError>,
}

thread_local! {
    // COPY's callback takes no argument of ours, so the source of the COPY running on this
    // (the main) thread lives here for its duration.
    static SOURCE: RefCell<Option<ActiveSource>> = const { RefCell::new(None) };
}

/// Clears the source when the COPY ends, also when it ends by an error.
struct SourceGuard;

impl Drop for SourceGuard {
    fn drop(&mut self) {
        SOURCE.with(|source| source.borrow_mut().take());
    }
}

/// The binary format's signature, flags and header extension (none), before the rows.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The format a source's rows are COPYed in: binary where every column has a binary form
/// (`SourceSchema::copy_format`) and the session reads text values as the UTF-8 they are.
/// A binary text value is converted from the session's client_encoding (the text format
/// is told its encoding, UTF8, by an option the binary format does not take); so binary
/// needs client_encoding UTF8, or SQL_ASCII (background workers' own, no conversion) in a
/// UTF-8 database.
pub fn format_for(schema: &SourceSchema) -> CopyFormat {
    // SAFETY: both read the session's settled encodings, plain integers.
    let (client, database) = unsafe {
        (
            pg_sys::pg_get_client_encoding(),
            pg_sys::GetDatabaseEncoding(),
        )
    };
    let utf8 = pg_sys::pg_enc::PG_UTF8 as i32;
    let as_is = client == utf8 || client == pg_sys::pg_enc::PG_SQL_ASCII as i32 && database == utf8;
    if as_is {
        schema.copy_format()
    } else {
        CopyFormat::Text
    }
}

/// COPYs everything `next_chunk` yields (rows in `format`) into the table `relation` (named
/// `shown` in errors), into `columns` in that order, and returns the number of rows COPY
/// stored. A failure of the source ends the COPY and is returned; the caller's
/// (sub)transaction then discards what was stored.
pub fn copy_into(
    relation: pg_sys::Oid,
    shown: &str,
    columns: &[Column],
    format: CopyFormat,
    next_chunk: Box<ChunkSource<'static>>,
) -> SyncResult<u64> {
    check_copy_allowed(relation, shown)?;
    if format == CopyFormat::Binary {
        // SAFETY: the lock table_open takes below anyway, taken first and held to the end
        // of the transaction, so that no ALTER TABLE changes a column's type after it is read.
        unsafe { pg_sys::LockRelationOid(relation, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE) };
        check_types_unchanged(relation, shown, columns)?;
    }
    SOURCE.with(|source| {
        *source.borrow_mut() = Some(ActiveSource {
            next_chunk,
            // BeginCopyFrom reads the binary header before any row.
            chunk: match format {
                CopyFormat::Binary => BINARY_HEADER.to_vec(),
                CopyFormat::Text => Vec::new(),
            },
            position: 0,
            failure: None,
        })
    });
    let _guard = SourceGuard;
    let column_names: Vec<CString> = columns
        .iter()
        .map(|column| CString::new(column.name.as_str()).unwrap_or_default())
        .collect();
    // SAFETY: the sequence DoCopy follows for COPY FROM, with our callback as the source.
    // Every pointer handed to PostgreSQL is palloc'd in the current memory context or
    // outlives the call (`column_names` is copied by makeString's caller through pstrdup).
    let stored = unsafe {
        let rel = pg_sys::table_open(relation, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        pg_sys::addRangeTableEntryForRelation(
            pstate,
            rel,
            pg_sys::RowExclusiveLock as i32,
            std::ptr::null_mut(),
            false,
            false,
        );
        let mut attnames: *mut pg_sys::List = std::ptr::null_mut();
        for name in &column_names {
            let value = pg_sys::makeString(pg_sys::pstrdup(name.as_ptr()));
            attnames = pg_sys::lappend(attnames, value.cast());
        }
        let cstate = pg_sys::BeginCopyFrom(
            pstate,
            rel,
            std::ptr::null_mut(),
            std::ptr::null(),
            false,
            Some(read_copy_data),
            attnames,
            copy_options(format),
        );
        let stored = pg_sys::CopyFrom(cstate);
        pg_sys::EndCopyFrom(cstate);
        pg_sys::free_parsestate(pstate);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        stored
    };
    let failure = SOURCE.with(|source| {
        source
            .borrow_mut()
            .as_mut()
            .and_then(|active| active.failure.take())
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(stored),
    }
}

/// COPY's options for `format`: `FORMAT binary`, or the text format's encoding (our bytes
/// are UTF-8 whatever the session's client_encoding).
fn copy_options(format: CopyFormat) -> *mut pg_sys::List {
    let (name, value) = match format {
        CopyFormat::Binary => (c"format", c"binary"),
        CopyFormat::Text => (c"encoding", c"UTF8"),
    };
    // SAFETY: a one-element list of a DefElem, palloc'd in the current memory context as
    // COPY's parser would make it, for BeginCopyFrom to read in this context.
    unsafe {
        let option = pg_sys::makeDefElem(
            pg_sys::pstrdup(name.as_ptr()),
            pg_sys::makeString(pg_sys::pstrdup(value.as_ptr())).cast(),
            -1,
        );
        pg_sys::lappend(std::ptr::null_mut(), option.cast())
    }
}

/// Binary rows are read by the receive function of each column's type as it is when COPY
/// runs: a type changed since the target was checked (an ALTER TABLE committed while the
/// day was read) would take them as another type's bytes. Text input would refuse them;
/// binary is refused here instead.
fn check_types_unchanged(relation: pg_sys::Oid, shown: &str, columns: &[Column]) -> SyncResult<()> {
    let changed = super::target::first_column_not_as_checked(relation, columns)?;
    match changed {
        None => Ok(()),
        Some(name) => Err(SyncError::new(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "the column {} of {shown} changed while the day was read from BigQuery",
                crate::quote::shown(&name)
            ),
            "Nothing was written for the day. Sync it again: the next sync checks the table anew.",
        )),
    }
}

/// What the COPY command checks before it writes and `CopyFrom` does not, for the role
/// that writes (the table's owner, see `crate::restricted`): that no row-level security
/// policy applies to it (COPY cannot apply policies, so the COPY command refuses such a
/// table). The caller's own rights are checked before, by `TargetTable::check_caller_may`.
fn check_copy_allowed(relation: pg_sys::Oid, shown: &str) -> SyncResult<()> {
    let row_security = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.row_security_active($1::pg_catalog.regclass)",
        &[relation.into()],
    )?;
    if row_security != Some(false) {
        return Err(row_security_refused(shown));
    }
    Ok(())
}

pub fn row_security_refused(shown: &str) -> SyncError {
    SyncError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("row-level security applies to {shown} for the current role, and token_sync loads through COPY, which cannot apply its policies"),
        "Run the sync as a role that bypasses row security (the table owner, unless FORCE ROW LEVEL SECURITY is set, or a role with BYPASSRLS), or ALTER TABLE ... DISABLE ROW LEVEL SECURITY on the target.",
    )
}

/// COPY's data source: copies up to `maxread` bytes into `outbuf`; 0 means the end.
#[pg_guard]
unsafe extern "C-unwind" fn read_copy_data(
    outbuf: *mut std::ffi::c_void,
    _minread: i32,
    maxread: i32,
) -> i32 {
    SOURCE.with(|source| {
        let mut source = source.borrow_mut();
        let Some(active) = source.as_mut() else {
            return 0;
        };
        while active.position == active.chunk.len() {
            if active.failure.is_some() {
                return 0;
            }
            match (active.next_chunk)() {
                Ok(Some(chunk)) => {
                    active.chunk = chunk;
                    active.position = 0;
                }
                Ok(None) => return 0,
                Err(error) => {
                    // End the COPY here, at a row's end; copy_into returns the error.
                    active.failure = Some(error);
                    return 0;
                }
            }
        }
        let count = (active.chunk.len() - active.position).min(maxread.max(0) as usize);
        // SAFETY: COPY gives a buffer of at least `maxread` bytes; `count` is no more.
        unsafe {
            std::ptr::copy_nonoverlapping(
                active.chunk.as_ptr().add(active.position),
                outbuf.cast::<u8>(),
                count,
            );
        }
        active.position += count;
        count as i32
    })
}
