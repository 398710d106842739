//! Running token_sync's own SQL the way PostgreSQL runs its maintenance commands (REFRESH
//! MATERIALIZED VIEW, VACUUM, CREATE INDEX):
//! - with `search_path` pinned to `pg_catalog, pg_temp`, so that no function or operator
//!   another role planted in a schema on the caller's path (the CVE-2018-1058 pattern) is
//!   picked instead of PostgreSQL's own;
//! - for what reads or writes a target table, as the table's owner under
//!   SECURITY_RESTRICTED_OPERATION, so that its triggers, defaults, index expressions and
//!   policies run with their owner's rights, never the caller's (often a superuser's, under
//!   pg_cron). What the caller may do is checked first, as the caller.
//!
//! Both last until the guard is dropped; a subtransaction's or transaction's abort undoes
//! them too, as it does for PostgreSQL's own commands.

use crate::error::{SyncError, SyncResult};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

pub const PINNED_SEARCH_PATH: &str = "pg_catalog, pg_temp";

pub struct Restricted {
    nest_level: i32,
    saved: Option<(pg_sys::Oid, i32)>,
}

impl Restricted {
    /// Pins `search_path` until the guard is dropped. Names the caller gave (a target
    /// table's) must be resolved before.
    pub fn search_path() -> Self {
        // SAFETY: the sequence RefreshMatView and vacuum use: a new GUC nest level, a value
        // saved at it, restored by AtEOXact_GUC at that level (in Drop, or by an abort).
        let nest_level = unsafe {
            let nest_level = pg_sys::NewGUCNestLevel();
            pg_sys::set_config_option(
                c"search_path".as_ptr(),
                c"pg_catalog, pg_temp".as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
            nest_level
        };
        Self {
            nest_level,
            saved: None,
        }
    }

    /// Becomes the owner of `relation` under SECURITY_RESTRICTED_OPERATION, with
    /// `search_path` pinned, until the guard is dropped.
    pub fn as_owner_of(relation: pg_sys::Oid) -> SyncResult<Self> {
        let owner = owner_of(relation)?;
        let mut guard = Self::search_path();
        // SAFETY: saved and restored around the work, as RefreshMatView does; an abort in
        // between restores them itself.
        unsafe {
            let mut user = pg_sys::InvalidOid;
            let mut context = 0;
            pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
            pg_sys::SetUserIdAndSecContext(
                owner,
                context | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            );
            guard.saved = Some((user, context));
        }
        Ok(guard)
    }
}

impl Drop for Restricted {
    fn drop(&mut self) {
        // SAFETY: undoes what the constructor did, in reverse order.
        unsafe {
            if let Some((user, context)) = self.saved {
                pg_sys::SetUserIdAndSecContext(user, context);
            }
            pg_sys::AtEOXact_GUC(false, self.nest_level);
        }
    }
}

fn owner_of(relation: pg_sys::Oid) -> SyncResult<pg_sys::Oid> {
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = $1)",
        &[relation.into()],
    )?
    .ok_or_else(|| {
        SyncError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            "the target table was dropped while token_sync was using it",
            "Run the day again.",
        )
    })
}
