//! What is mirrored: `token_sync.tables`, one row per registered BigQuery table, with the
//! target it goes to and the column its days are cut by. The `token_*` functions act on
//! the `token_sync.source_table` setting instead and need no row here.

use crate::error::{SyncError, SyncResult};
use crate::source::TableRef;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

pgrx::extension_sql_file!("registry.sql", name = "registry", requires = ["ledger"]);

/// A registered table.
#[derive(Debug, Clone)]
pub struct Registered {
    pub source: TableRef,
    pub target_table: String,
    pub time_column: String,
}

/// The registered table `source_table` names.
pub fn find(source_table: &str) -> SyncResult<Registered> {
    let source = TableRef::parse(source_table)?;
    all_where(Some(&source.display()))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            SyncError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("the table {} is not registered", source.display()),
                format!(
                    "Register it first: SELECT * FROM token_sync.add_table({});",
                    crate::quote::pg_literal(&source.display())
                ),
            )
        })
}

/// Every registered table, by source name.
pub fn all() -> SyncResult<Vec<Registered>> {
    all_where(None)
}

fn all_where(source_table: Option<&str>) -> SyncResult<Vec<Registered>> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT source_table, target_table, time_column FROM token_sync.tables \
                 WHERE $1::text IS NULL OR source_table = $1 ORDER BY source_table",
                None,
                &[source_table.into()],
            )?
            .map(|row| {
                Ok((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?.unwrap_or_default(),
                    row.get::<String>(3)?.unwrap_or_default(),
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })?
    .into_iter()
    .map(|(source, target_table, time_column)| {
        Ok(Registered {
            source: TableRef::parse(&source)?,
            target_table,
            time_column,
        })
    })
    .collect()
}

/// Refuses to register `source` into a target that another registered source already
/// fills, or that is above or below such a target in a partition or inheritance tree:
/// each sync of a day would delete the other's rows of that day. Holds a lock on the
/// registry until the end of the transaction, so that two registrations cannot both pass.
pub fn check_one_source_per_target(source: &TableRef, target_table: &str) -> SyncResult<()> {
    Spi::run("LOCK TABLE token_sync.tables IN SHARE ROW EXCLUSIVE MODE")?;
    let other = Spi::get_one_with_args::<String>(
        "WITH RECURSIVE up(relid) AS ( \
           SELECT pg_catalog.to_regclass($2)::pg_catalog.oid \
           UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.relid), \
         down(relid) AS ( \
           SELECT pg_catalog.to_regclass($2)::pg_catalog.oid \
           UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN down ON i.inhparent = down.relid) \
         SELECT (SELECT t.source_table || ' (into ' || t.target_table || ')' FROM token_sync.tables t \
           WHERE t.source_table <> $1 AND (t.target_table = $2 \
             OR pg_catalog.to_regclass(t.target_table)::pg_catalog.oid IN (SELECT relid FROM up UNION SELECT relid FROM down)) \
           ORDER BY t.source_table LIMIT 1)",
        &[source.display().into(), target_table.into()],
    )?;
    match other {
        None => Ok(()),
        Some(other) => Err(SyncError::new(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("the target table {target_table} would share its rows with {other}"),
            "Each source needs a target of its own, outside the other targets' partition and inheritance trees: \
             a sync replaces the whole day of its target. Pass another target_table.",
        )),
    }
}

/// A row of `token_sync.tables`: source, target, time column, added, updated.
pub type TableRow = (
    String,
    String,
    String,
    TimestampWithTimeZone,
    TimestampWithTimeZone,
);

/// Registers the table, or updates its row; returns the row as stored.
pub fn upsert(registered: &Registered) -> SyncResult<TableRow> {
    Spi::connect_mut(|client| {
        let row = client
            .update(
                "INSERT INTO token_sync.tables (source_table, target_table, time_column) VALUES ($1, $2, $3) \
                 ON CONFLICT (source_table) DO UPDATE SET target_table = EXCLUDED.target_table, \
                 time_column = EXCLUDED.time_column, updated_at = pg_catalog.now() \
                 RETURNING source_table, target_table, time_column, added_at, updated_at",
                Some(1),
                &[
                    registered.source.display().into(),
                    registered.target_table.clone().into(),
                    registered.time_column.clone().into(),
                ],
            )?
            .first();
        Ok::<_, SyncError>((
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<String>(2)?.unwrap_or_default(),
            row.get::<String>(3)?.unwrap_or_default(),
            row.get::<TimestampWithTimeZone>(4)?
                .unwrap_or_else(TimestampWithTimeZone::negative_infinity),
            row.get::<TimestampWithTimeZone>(5)?
                .unwrap_or_else(TimestampWithTimeZone::negative_infinity),
        ))
    })
}

/// Unregisters the table; whether it was registered.
pub fn remove(source: &TableRef) -> SyncResult<bool> {
    Spi::get_one_with_args::<i64>(
        "WITH removed AS (DELETE FROM token_sync.tables WHERE source_table = $1 RETURNING 1) \
         SELECT count(*) FROM removed",
        &[source.display().into()],
    )
    .map_err(SyncError::from)
    .map(|removed| removed == Some(1))
}
