//! Replacing one day of the target table: the day's rows are deleted and the new ones
//! COPYed in (or, for a table an engine routes, COPYed into a staging table and inserted
//! from it), inside the caller's transaction, so other sessions see the old day until
//! commit and the new one after it, never a half-loaded day.

use super::copy_from::{copy_into, ChunkSource};
use super::target::{column_definitions, TargetTable, WritePath, TABLE_TREE};
use crate::day::SyncDay;
use crate::day_digest::hour_ranges;
use crate::error::{SyncError, SyncResult};
use crate::source::Source;
use crate::types::CopyFormat;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::panic::AssertUnwindSafe;

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
    /// None for a target that COPY loads directly. Refused, with what to do, if the caller
    /// may not create temporary tables or has one of the staging table's name.
    pub fn create(source: &Source, target: &TargetTable) -> SyncResult<Option<Self>> {
        if target.write_path == WritePath::Copy {
            return Ok(None);
        }
        let may_stage = Spi::get_one::<bool>(
            "SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMPORARY')",
        )?;
        if may_stage != Some(true) {
            return Err(SyncError::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied to create temporary tables, in which token_sync stages the day of {}",
                    target.qualified_name
                ),
                "Grant it: GRANT TEMPORARY ON DATABASE ... TO the calling role (sql/grant_runner_role.sql does).",
            ));
        }
        let taken = Spi::get_one::<bool>(&format!(
            "SELECT pg_catalog.to_regclass('{STAGING_TABLE}') IS NOT NULL \
             OR pg_catalog.to_regtype('{STAGING_TABLE}') IS NOT NULL"
        ))?;
        if taken == Some(true) {
            return Err(SyncError::new(
                PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
                format!("this session has a temporary relation or type {STAGING_TABLE} of its own, where token_sync stages the day of {}", target.qualified_name),
                format!("Drop it (DROP TABLE {STAGING_TABLE} or DROP TYPE {STAGING_TABLE}), or sync the day from another session."),
            ));
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

/// Deletes the day's rows and stores what `next_chunk` yields, rows of COPY in `format`
/// with the source's columns in the schema's order, through `staging` if the target has
/// one; returns the rows stored.
pub fn replace_day(
    source: &Source,
    target: &TargetTable,
    day: SyncDay,
    staging: Option<&Staging>,
    format: CopyFormat,
    next_chunk: Box<ChunkSource<'static>>,
) -> SyncResult<u64> {
    Spi::run_with_args(
        &format!("DELETE FROM {}", the_day_in(source, target)),
        &day_bounds(day),
    )?;
    let Some(staging) = staging else {
        return copy_into_target(source, target, day, format, next_chunk);
    };
    let columns = &source.schema.columns;
    copy_into(
        staging.oid,
        "token_sync's staging table",
        columns,
        format,
        next_chunk,
    )?;
    let list = columns
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

/// COPYs the rows into the target (a partitioned one routes them), a missing partition
/// said as the day's.
fn copy_into_target(
    source: &Source,
    target: &TargetTable,
    day: SyncDay,
    format: CopyFormat,
    next_chunk: Box<ChunkSource<'static>>,
) -> SyncResult<u64> {
    PgTryBuilder::new(AssertUnwindSafe(|| {
        copy_into(
            target.oid,
            &target.qualified_name,
            &source.schema.columns,
            format,
            next_chunk,
        )
    }))
    .catch_when(
        PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
        |caught| match no_partition_for(&caught, target, day) {
            Some(error) => Err(error),
            None => caught.rethrow(),
        },
    )
    .execute()
}

/// Replaces the rows of the day's `hours` (UTC, ascending) with what `rows` yields, rows of
/// COPY in `format` of those hours only: one DELETE over the hours' ranges, then COPY, as
/// for the whole day. Returns the rows deleted and stored.
pub fn replace_hours(
    source: &Source,
    target: &TargetTable,
    day: SyncDay,
    hours: &[usize],
    format: CopyFormat,
    rows: Box<ChunkSource<'static>>,
) -> SyncResult<(u64, u64)> {
    if hours.is_empty() {
        return Ok((0, 0));
    }
    let ranges = hour_ranges(hours);
    let filter = (0..ranges.len())
        .map(|range| format!("({})", source.time.postgres_filter(1 + 2 * range)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let bounds = ranges
        .iter()
        .flat_map(|&(from, to)| [day.hour_start(from).into(), day.hour_start(to).into()])
        .collect::<Vec<pgrx::datum::DatumWithOid<'static>>>();
    let deleted = Spi::connect_mut(|client| {
        client
            .update(
                &format!("DELETE FROM {} WHERE {filter}", target.qualified_name),
                None,
                &bounds,
            )
            .map(|deleted| deleted.len() as u64)
    })?;
    let stored = copy_into_target(source, target, day, format, rows)?;
    Ok((deleted, stored))
}

/// PostgreSQL's "no partition of relation ... found for row", said as the day's: which
/// partition is missing and how to make it. The caller's subtransaction then rolls back.
fn no_partition_for(caught: &CaughtError, target: &TargetTable, day: SyncDay) -> Option<SyncError> {
    let CaughtError::PostgresError(report) = caught else {
        return None;
    };
    if !report.message().starts_with("no partition of relation") {
        return None;
    }
    let next = day.next().unwrap_or(day);
    let target_literal = crate::quote::pg_literal(&target.qualified_name);
    let target = &target.qualified_name;
    let error = SyncError::new(
        PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
        format!("the partitioned target table {target} has no partition for rows of {day}"),
        format!(
            "Make the day's partition, e.g. CREATE TABLE ... PARTITION OF {target} FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00') \
             (or a DEFAULT partition); where pg_partman manages the table, \
             SELECT partman.create_partition_time({target_literal}, ARRAY['{day} 00:00:00+00'::timestamptz]) (days ahead: \
             partman.run_maintenance or a larger premake). Then sync the day again: nothing of it was written."
        ),
    );
    Some(match report.detail() {
        Some(detail) => error.with_detail(format!("{} ({detail})", report.message())),
        None => error.with_detail(report.message()),
    })
}

/// The rows of the day that queries of the target see, once COPY stored `stored` of the
/// `received` rows. Counted through a query where the two differ, or where something could
/// keep stored rows from queries, move them out of the day, or keep the day's DELETE from
/// removing the old ones: a trigger, a rule or row-level security on the table or a table
/// below it, an engine's staging.
/// Elsewhere COPY put each row, its time checked within the day, into the table or the
/// partition it routed it to, so a query that finds one of them stands for the count,
/// which would read the whole day back (about a tenth of a first load's time); an
/// extension that reads the table from somewhere else finds none, and the day is counted
/// after all.
pub fn rows_seen_after_copy(
    source: &Source,
    target: &TargetTable,
    day: SyncDay,
    stored: u64,
    received: u64,
) -> SyncResult<i64> {
    if stored == 0
        || stored != received
        || target.write_path != WritePath::Copy
        || rows_may_go_astray(target)?
    {
        return rows_in_day(source, target, day);
    }
    let found = Spi::get_one_with_args::<bool>(
        &format!("SELECT EXISTS (SELECT FROM {})", the_day_in(source, target)),
        &day_bounds(day),
    )?;
    match (found, i64::try_from(stored)) {
        (Some(true), Ok(stored)) => Ok(stored),
        _ => rows_in_day(source, target, day),
    }
}

/// Whether the target, or a table below it, has a trigger of its own (not a foreign key's),
/// a rule (on DELETE, one can keep the old day) or row-level security.
pub fn rows_may_go_astray(target: &TargetTable) -> SyncResult<bool> {
    Spi::get_one_with_args::<bool>(
        &format!("{TABLE_TREE} SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger g JOIN tree t ON g.tgrelid = t.relid \
                        WHERE NOT g.tgisinternal) \
             OR EXISTS (SELECT FROM pg_catalog.pg_rewrite r JOIN tree t ON r.ev_class = t.relid) \
             OR EXISTS (SELECT FROM pg_catalog.pg_class c JOIN tree t ON c.oid = t.relid \
                        WHERE c.relrowsecurity)"),
        &[target.oid.into()],
    )
    .map(|astray| astray != Some(false))
    .map_err(SyncError::from)
}

/// The rows the day holds in the target, read back through a query: what every reader of
/// the table sees, whatever COPY reported.
pub fn rows_in_day(source: &Source, target: &TargetTable, day: SyncDay) -> SyncResult<i64> {
    Spi::get_one_with_args::<i64>(
        &format!(
            "SELECT pg_catalog.count(*) FROM {}",
            the_day_in(source, target)
        ),
        &day_bounds(day),
    )
    .map_err(SyncError::from)
    .map(Option::unwrap_or_default)
}

/// `target WHERE` the day's filter, whose bounds are the parameters $1 and $2 (`day_bounds`).
pub fn the_day_in(source: &Source, target: &TargetTable) -> String {
    format!(
        "{} WHERE {}",
        target.qualified_name,
        source.time.postgres_filter(1)
    )
}

pub fn day_bounds(day: SyncDay) -> [pgrx::datum::DatumWithOid<'static>; 2] {
    [day.start().into(), day.end().into()]
}
