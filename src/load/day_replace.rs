//! Replacing one day of the target table: the day's rows are deleted and the new ones
//! COPYed in (or, for a table an engine routes, COPYed into a staging table and inserted
//! from it), inside the caller's transaction, so other sessions see the old day until
//! commit and the new one after it, never a half-loaded day.

use super::copy_from::{copy_into, ChunkSource};
use super::target::{column_definitions, TargetTable, WritePath};
use crate::day::SyncDay;
use crate::error::{SyncError, SyncResult};
use crate::source::Source;
use pgrx::prelude::*;

/// Serialises syncs of the same target and day until the end of the transaction: a second
/// session waits (bounded by `lock_timeout`, cancellable) and then replaces the day again,
/// so the result is one copy. Different days do not wait for each other.
pub fn lock_day(target: &TargetTable, day: SyncDay) -> SyncResult<()> {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('token_sync ' || $1), $2 - DATE '2000-01-01')",
        &[target.qualified_name.clone().into(), day.to_pg().into()],
    )
    .map_err(SyncError::from)
}

/// Where the day of a staged target (see `WritePath::Staged`) is COPYed first, to be
/// inserted from with one `INSERT INTO ... SELECT`, which the engine routes. A temporary
/// table, made by the caller before token_sync becomes the target's owner (a
/// security-restricted operation may not create one) and readable by that owner; `drop`
/// removes it once the day is in, and an abort of the day's subtransaction takes it along.
pub struct Staging {
    oid: pg_sys::Oid,
}

const STAGING_TABLE: &str = "pg_temp.token_sync_staging";

impl Staging {
    /// None for a target that COPY loads directly.
    pub fn create(source: &Source, target: &TargetTable) -> SyncResult<Option<Self>> {
        if target.write_path == WritePath::Copy {
            return Ok(None);
        }
        Spi::run(&format!(
            "CREATE TEMPORARY TABLE {STAGING_TABLE} ({})",
            column_definitions(&source.schema, false)
        ))?;
        let other_owner = Spi::get_one_with_args::<String>(
            "SELECT (SELECT pg_catalog.quote_ident(r.rolname) FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_roles r ON r.oid = c.relowner \
             WHERE c.oid = $1 AND r.rolname <> CURRENT_USER)",
            &[target.oid.into()],
        )?;
        if let Some(owner) = other_owner {
            Spi::run(&format!("GRANT SELECT ON {STAGING_TABLE} TO {owner}"))?;
        }
        let oid = Spi::get_one::<pg_sys::Oid>(&format!(
            "SELECT '{STAGING_TABLE}'::pg_catalog.regclass::pg_catalog.oid"
        ))?
        .unwrap_or(pg_sys::InvalidOid);
        Ok(Some(Self { oid }))
    }

    pub fn drop(self) -> SyncResult<()> {
        Spi::run(&format!("DROP TABLE {STAGING_TABLE}")).map_err(SyncError::from)
    }
}

/// Deletes the day's rows and stores what `next_chunk` yields, one line per row with the
/// source's columns in the schema's order, through `staging` if the target has one;
/// returns the rows stored.
pub fn replace_day(
    source: &Source,
    target: &TargetTable,
    day: SyncDay,
    staging: Option<&Staging>,
    next_chunk: Box<ChunkSource<'static>>,
) -> SyncResult<u64> {
    Spi::run_with_args(
        &format!(
            "DELETE FROM {} WHERE {}",
            target.qualified_name,
            source.time.postgres_filter(1)
        ),
        &[day.start().into(), day.end().into()],
    )?;
    let columns: Vec<&str> = source
        .schema
        .columns
        .iter()
        .map(|column| column.name.as_str())
        .collect();
    let Some(staging) = staging else {
        return copy_into(target.oid, &target.qualified_name, &columns, next_chunk);
    };
    copy_into(
        staging.oid,
        "token_sync's staging table",
        &columns,
        next_chunk,
    )?;
    let list = source
        .schema
        .columns
        .iter()
        .map(|column| column.postgres_name())
        .collect::<Vec<_>>()
        .join(", ");
    Spi::connect_mut(|client| {
        client
            .update(
                &format!(
                    "INSERT INTO {} ({list}) SELECT {list} FROM {STAGING_TABLE}",
                    target.qualified_name
                ),
                None,
                &[],
            )
            .map(|inserted| inserted.len() as u64)
    })
    .map_err(SyncError::from)
}

/// The rows the day holds in the target, read back through a query: what every reader of
/// the table sees, whatever COPY reported.
pub fn rows_in_day(source: &Source, target: &TargetTable, day: SyncDay) -> SyncResult<i64> {
    Spi::get_one_with_args::<i64>(
        &format!(
            "SELECT pg_catalog.count(*) FROM {} WHERE {}",
            target.qualified_name,
            source.time.postgres_filter(1)
        ),
        &[day.start().into(), day.end().into()],
    )
    .map_err(SyncError::from)
    .map(Option::unwrap_or_default)
}
