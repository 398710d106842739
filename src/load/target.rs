//! The table that receives the rows. Created on first use from the source's schema (each
//! column of the type that holds it exactly, REQUIRED as NOT NULL, an index on the time
//! column), outside the extension's membership, so that `DROP EXTENSION token_sync` never
//! drops the user's data.

use crate::day::TimeColumn;
use crate::error::{SyncError, SyncResult};
use crate::types::{Column, SourceSchema};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

#[derive(Debug, Clone)]
pub struct TargetTable {
    pub oid: pg_sys::Oid,
    /// `schema.table`, each part quoted: safe to splice into SQL.
    pub qualified_name: String,
    /// The source columns the target holds NOT NULL (with no default), even where the source
    /// allows NULL: a NULL there fails the day with an error naming the column.
    pub not_null: Vec<String>,
    /// Columns the preparation added because the source gained them, e.g. `fee (numeric)`.
    pub added_columns: Vec<String>,
}

/// How a target column says it mirrors a source column (its comment), so that a column the
/// source dropped can be told from a column of the user's own.
const MIRROR_COMMENT: &str = "token_sync: mirrors the source column";

/// Whether a source column the target lacks is added (a sync) or refused (a check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewColumns {
    Add,
    Allow,
    Refuse,
}

impl TargetTable {
    /// Resolves the target table's name, creating the table (with an index on the time
    /// column, which the day replace deletes by) when it does not exist, and checks that it
    /// has every source column with its type.
    pub fn prepare(setting: &str, schema: &SourceSchema, time: &TimeColumn) -> SyncResult<Self> {
        let quoted = quoted_name(setting)?;
        let mut oid = lookup(&quoted)?;
        if oid.is_none() {
            // Two first syncs at once would both create it: the second waits here for the
            // first to commit, then finds the table.
            Spi::run_with_args(
                "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('token_sync create ' || $1))",
                &[quoted.clone().into()],
            )
            .map_err(spi_error)?;
            oid = lookup(&quoted)?;
        }
        if oid.is_none() {
            let columns: Vec<String> = schema
                .columns
                .iter()
                .map(|column| {
                    let not_null = if column.not_null() { " NOT NULL" } else { "" };
                    format!("{} {}{not_null}", column.postgres_name(), column.pg_type())
                })
                .collect();
            Spi::run(&format!("CREATE TABLE {quoted} ({})", columns.join(", ")))
                .map_err(spi_error)?;
            Spi::run(&format!(
                "CREATE INDEX ON {quoted} ({})",
                time.postgres_name()
            ))
            .map_err(spi_error)?;
            for column in &schema.columns {
                comment_mirrored(&quoted, column)?;
            }
            oid = lookup(&quoted)?;
        }
        let oid = oid.ok_or_else(|| {
            SyncError::config(
                format!("the target table {quoted} could not be created"),
                "Check that the schema exists and the calling role may create tables in it.",
            )
        })?;
        Self::checked(oid, quoted, schema, NewColumns::Add)
    }

    /// Resolves the target table's name and checks its columns, changing nothing: `None`
    /// when the table does not exist yet.
    pub fn find(
        setting: &str,
        schema: &SourceSchema,
        new_columns: NewColumns,
    ) -> SyncResult<Option<Self>> {
        let quoted = quoted_name(setting)?;
        lookup(&quoted)?
            .map(|oid| Self::checked(oid, quoted, schema, new_columns))
            .transpose()
    }

    /// The table's `schema.table` as the ledger records it, also before the table exists:
    /// an unqualified name is the one CREATE TABLE would make, in `current_schema()`.
    pub fn ledger_name(setting: &str) -> SyncResult<String> {
        let quoted = quoted_name(setting)?;
        Spi::get_one_with_args::<String>(
            "SELECT coalesce((SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = pg_catalog.to_regclass($1)), \
             CASE WHEN pg_catalog.cardinality(p) = 2 THEN pg_catalog.format('%I.%I', p[1], p[2]) \
             ELSE pg_catalog.format('%I.%I', pg_catalog.current_schema(), p[1]) END) \
             FROM pg_catalog.parse_ident($2) AS p",
            &[quoted.clone().into(), setting.into()],
        )
        .map_err(spi_error)
        .map(|name| name.unwrap_or(quoted))
    }

    fn checked(
        oid: pg_sys::Oid,
        quoted: String,
        schema: &SourceSchema,
        new_columns: NewColumns,
    ) -> SyncResult<Self> {
        let (not_null, missing) = check_columns(oid, &quoted, schema)?;
        let mut added_columns = Vec::new();
        for column in missing {
            match new_columns {
                NewColumns::Allow => {}
                NewColumns::Add if !column.not_null() => {
                    Spi::run(&format!(
                        "ALTER TABLE {quoted} ADD COLUMN {} {}",
                        column.postgres_name(),
                        column.pg_type()
                    ))
                    .map_err(spi_error)?;
                    comment_mirrored(&quoted, column)?;
                    added_columns.push(format!("{} ({})", column.name, column.pg_type()));
                }
                NewColumns::Add | NewColumns::Refuse => {
                    return Err(SyncError::new(
                        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                        format!("the target table {quoted} has no column {}", column.name),
                        if new_columns == NewColumns::Refuse {
                            "The source gained the column: the next sync of a day adds it to the target.".to_string()
                        } else {
                            format!(
                                "The source's new column is REQUIRED; add it yourself: ALTER TABLE {quoted} ADD COLUMN {} {}.",
                                column.postgres_name(),
                                column.pg_type()
                            )
                        },
                    ))
                }
            }
        }
        let qualified_name = Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = $1",
            &[oid.into()],
        )
        .map_err(spi_error)?
        .unwrap_or(quoted);
        Ok(Self {
            oid,
            qualified_name,
            not_null,
            added_columns,
        })
    }
}

/// The setting as `schema.table` (or `table`), each part quoted: safe to splice into SQL.
fn quoted_name(setting: &str) -> SyncResult<String> {
    let parts: Vec<String> =
        Spi::get_one_with_args("SELECT pg_catalog.parse_ident($1)", &[setting.into()])
            .map_err(spi_error)?
            .unwrap_or_default();
    if parts.is_empty() || parts.len() > 2 {
        return Err(SyncError::config(
            format!("the target table \"{setting}\" is not [schema.]table"),
            "Name it as [schema.]table, e.g. public.raw_tokens (in token_sync.target_table, or add_table's target_table).",
        ));
    }
    Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.quote_ident(p) FROM pg_catalog.unnest($1::text[]) AS p), '.')",
        &[parts.into()],
    )
    .map_err(spi_error)
    .map(Option::unwrap_or_default)
}

fn lookup(quoted: &str) -> SyncResult<Option<pg_sys::Oid>> {
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT (SELECT c.oid FROM pg_catalog.pg_class c \
         WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'p'))",
        &[quoted.into()],
    )
    .map_err(spi_error)
}

/// Marks a target column as the mirror of a source column.
fn comment_mirrored(quoted: &str, column: &Column) -> SyncResult<()> {
    Spi::run(&format!(
        "COMMENT ON COLUMN {quoted}.{} IS '{MIRROR_COMMENT} {} ({})'",
        column.postgres_name(),
        column.name,
        column.pg_type()
    ))
    .map_err(spi_error)
}

/// A column of the target as PostgreSQL has it.
struct TargetColumn {
    name: String,
    pg_type: String,
    /// NOT NULL with no default: every row COPY writes must give it a value.
    requires_value: bool,
    /// Made by token_sync as the mirror of a source column.
    mirrored: bool,
}

/// Checks that every source column the target has is of the source's type, and that the
/// target neither requires nor mirrors a column the source no longer has; returns the
/// source columns the target holds NOT NULL, and the source columns it lacks.
fn check_columns<'s>(
    oid: pg_sys::Oid,
    quoted: &str,
    schema: &'s SourceSchema,
) -> SyncResult<(Vec<String>, Vec<&'s Column>)> {
    let present: Vec<TargetColumn> = Spi::connect(|client| {
        client
            .select(
                "SELECT attname::text, pg_catalog.format_type(atttypid, atttypmod), attnotnull AND NOT atthasdef, \
                 coalesce(pg_catalog.col_description(attrelid, attnum) LIKE $2 || '%', false) \
                 FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
                None,
                &[oid.into(), MIRROR_COMMENT.into()],
            )?
            .map(|row| {
                Ok(TargetColumn {
                    name: row.get::<String>(1)?.unwrap_or_default(),
                    pg_type: row.get::<String>(2)?.unwrap_or_default(),
                    requires_value: row.get::<bool>(3)?.unwrap_or_default(),
                    mirrored: row.get::<bool>(4)?.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .map_err(spi_error)?;
    let mut missing = Vec::new();
    for column in &schema.columns {
        let (name, expected) = (&column.name, column.pg_type());
        match present.iter().find(|present| present.name == *name) {
            Some(target) if target.pg_type == expected => {}
            Some(target) => {
                return Err(SyncError::new(
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    format!(
                        "column {name} of the target table {quoted} is {}, but the source's is {expected}",
                        target.pg_type
                    ),
                    format!(
                        "If the source changed the column's type, convert the target's: ALTER TABLE {quoted} \
                         ALTER COLUMN {} TYPE {expected} USING {}::{expected}; or mirror into a new table.",
                        column.postgres_name(),
                        column.postgres_name()
                    ),
                ))
            }
            None => missing.push(column),
        }
    }
    if let Some(dropped) = present
        .iter()
        .find(|target| target.mirrored && schema.column(&target.name).is_none())
    {
        return Err(SyncError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "the source no longer has the column {}, which the target table {quoted} mirrors",
                dropped.name
            ),
            format!(
                "To drop it with the old days' values: ALTER TABLE {quoted} DROP COLUMN \"{0}\"; to keep them: \
                 COMMENT ON COLUMN {quoted}.\"{0}\" IS NULL (then new days leave it NULL).",
                dropped.name
            ),
        ));
    }
    if let Some(orphan) = present
        .iter()
        .find(|target| target.requires_value && schema.column(&target.name).is_none())
    {
        return Err(SyncError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "the source has no column {}, which the target table {quoted} requires (NOT NULL)",
                orphan.name
            ),
            format!(
                "If the source dropped it, run ALTER TABLE {quoted} ALTER COLUMN {} DROP NOT NULL to keep the old days' values.",
                orphan.name
            ),
        ));
    }
    let not_null = present
        .into_iter()
        .filter(|target| target.requires_value)
        .map(|target| target.name)
        .collect();
    Ok((not_null, missing))
}

pub fn spi_error(error: pgrx::spi::Error) -> SyncError {
    SyncError::new(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("token_sync's query failed: {error}"),
        "This is a bug in token_sync; please report it with the statement that failed.",
    )
}
