//! The table that receives the rows. Created on first use, outside the extension's
//! membership, so that `DROP EXTENSION token_sync` never drops the user's data.

use crate::error::{SyncError, SyncResult};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Column names and types of the target, mirroring the source table.
pub const TARGET_COLUMNS: [(&str, &str); 8] = [
    ("address", "text"),
    ("symbol", "text"),
    ("name", "text"),
    ("decimals", "text"),
    ("total_supply", "text"),
    ("block_timestamp", "timestamp with time zone"),
    ("block_number", "bigint"),
    ("block_hash", "text"),
];

const CREATE_COLUMNS: &str = "address text NOT NULL, symbol text, name text, decimals text, \
     total_supply text, block_timestamp timestamptz NOT NULL, block_number bigint NOT NULL, \
     block_hash text NOT NULL";

#[derive(Debug, Clone)]
pub struct TargetTable {
    pub oid: pg_sys::Oid,
    /// `schema.table`, each part quoted: safe to splice into SQL.
    pub qualified_name: String,
}

impl TargetTable {
    /// Resolves `token_sync.target_table`, creating it (with an index on block_timestamp,
    /// which the day replace deletes by) when it does not exist, and checks its columns.
    pub fn prepare(setting: &str) -> SyncResult<Self> {
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
            Spi::run(&format!("CREATE TABLE {quoted} ({CREATE_COLUMNS})")).map_err(spi_error)?;
            Spi::run(&format!("CREATE INDEX ON {quoted} (block_timestamp)")).map_err(spi_error)?;
            oid = lookup(&quoted)?;
        }
        let oid = oid.ok_or_else(|| {
            SyncError::config(
                format!("the target table {quoted} could not be created"),
                "Check that the schema exists and the calling role may create tables in it.",
            )
        })?;
        Self::checked(oid, quoted)
    }

    /// Resolves `token_sync.target_table` and checks its columns, creating nothing:
    /// `None` when the table does not exist yet.
    pub fn find(setting: &str) -> SyncResult<Option<Self>> {
        let quoted = quoted_name(setting)?;
        lookup(&quoted)?
            .map(|oid| Self::checked(oid, quoted))
            .transpose()
    }

    fn checked(oid: pg_sys::Oid, quoted: String) -> SyncResult<Self> {
        check_columns(oid, &quoted)?;
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
            format!("token_sync.target_table \"{setting}\" is not [schema.]table"),
            "Set it to e.g. public.raw_tokens.",
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

fn check_columns(oid: pg_sys::Oid, quoted: &str) -> SyncResult<()> {
    let present: Vec<(String, String)> = Spi::connect(|client| {
        client
            .select(
                "SELECT attname::text, pg_catalog.format_type(atttypid, atttypmod) \
                 FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
                None,
                &[oid.into()],
            )?
            .map(|row| Ok((row.get::<String>(1)?.unwrap_or_default(), row.get::<String>(2)?.unwrap_or_default())))
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .map_err(spi_error)?;
    for (name, expected) in TARGET_COLUMNS {
        match present.iter().find(|(column, _)| column == name) {
            Some((_, actual)) if actual == expected => {}
            Some((_, actual)) => {
                return Err(SyncError::new(
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    format!("column {name} of the target table {quoted} is {actual}, expected {expected}"),
                    "Point token_sync.target_table at a table with the raw_tokens columns, or let token_sync create a new one.",
                ))
            }
            None => {
                return Err(SyncError::new(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                    format!("the target table {quoted} has no column {name}"),
                    "Point token_sync.target_table at a table with the raw_tokens columns, or let token_sync create a new one.",
                ))
            }
        }
    }
    Ok(())
}

pub fn spi_error(error: pgrx::spi::Error) -> SyncError {
    SyncError::new(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("token_sync's query failed: {error}"),
        "This is a bug in token_sync; please report it with the statement that failed.",
    )
}
