//! The table that receives the rows. Created on first use from the source's schema (each
//! column of the type that holds it exactly, REQUIRED as NOT NULL, an index on the time
//! column), outside the extension's membership, so that `DROP EXTENSION token_sync` never
//! drops the user's data.

use super::copy_from::row_security_refused;
use crate::day::TimeColumn;
use crate::error::{SyncError, SyncResult};
use crate::quote;
use crate::restricted::Restricted;
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
    /// How the day's rows get into the table.
    pub write_path: WritePath,
}

/// How the day's rows reach the table where every query reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePath {
    /// PostgreSQL's own COPY inside the backend, straight into the table.
    Copy,
    /// COPY into a temporary staging table, then `INSERT INTO ... SELECT` from it: for a
    /// table an extension routes its rows for (a Citus table to its shards, a TimescaleDB
    /// hypertable to its chunks), which it does for statements through the planner but not
    /// for the backend's COPY.
    Staged(Engine),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Citus,
    TimescaleDb,
}

/// How a target column says it mirrors a source column (its comment), so that a column the
/// source dropped can be told from a column of the user's own.
const MIRROR_COMMENT: &str = "token_sync: mirrors the source column";

/// What a call does to the target table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads the day (token_verify_day).
    Read,
    /// Reads the day, deletes it and COPYs the new rows in (a sync).
    Replace,
}

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
            lock_creation(&quoted)?;
            oid = lookup(&quoted)?;
        }
        if oid.is_none() {
            Spi::run(&format!(
                "CREATE TABLE {quoted} ({})",
                column_definitions(schema, true)
            ))?;
            Spi::run(&format!(
                "CREATE INDEX ON {quoted} ({})",
                time.postgres_name()
            ))?;
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
        // Refused before any column is added to it.
        let write_path = write_path(oid, &quoted)?;
        Self::checked(oid, quoted, schema, NewColumns::Add, write_path)
    }

    /// Refuses a table token_sync cannot load (see `write_path`), before anything is written.
    pub fn check_loadable(&self) -> SyncResult<()> {
        write_path(self.oid, &self.qualified_name).map(|_| ())
    }

    /// Checks, as the calling role, what it needs to do `access` to the table: token_sync
    /// then reads and writes it as the table's owner (see `crate::restricted`).
    pub fn check_caller_may(&self, access: Access) -> SyncResult<()> {
        let privileges: &[(&str, &str)] = match access {
            Access::Read => &[("SELECT", "read")],
            Access::Replace => &[
                ("SELECT", "read"),
                ("DELETE", "delete from"),
                ("INSERT", "insert into"),
            ],
        };
        for (privilege, verb) in privileges {
            let granted = Spi::get_one_with_args::<bool>(
                "SELECT pg_catalog.has_table_privilege($1, $2)",
                &[self.oid.into(), (*privilege).into()],
            )?;
            if granted != Some(true) {
                return Err(SyncError::new(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("permission denied to {verb} {}", self.qualified_name),
                    "Grant SELECT, INSERT and DELETE on the target table (see sql/grant_runner_role.sql).",
                ));
            }
        }
        let (row_security, owner_may_use_schema) = Spi::get_two_with_args::<bool, bool>(
            "SELECT pg_catalog.row_security_active($1::pg_catalog.regclass), \
             pg_catalog.has_schema_privilege(c.relowner, c.relnamespace, 'USAGE') \
             FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[self.oid.into()],
        )?;
        match access {
            // The day is read and written as the table's owner, who would see rows the
            // policies hide from the caller.
            _ if row_security != Some(false) => Err(row_security_refused(&self.qualified_name)),
            _ if owner_may_use_schema != Some(true) => Err(SyncError::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "the owner of {} may not use its schema, and token_sync reads and writes the table as its owner",
                    self.qualified_name
                ),
                "GRANT USAGE ON SCHEMA ... TO the table's owner, or make a role that may use the schema its owner.",
            )),
            _ => self.check_staged_may(),
        }
    }

    /// What a staged target (see `WritePath::Staged`) needs beyond a plain table's, to be
    /// read or written: a Citus table's owner, as whom Citus connects to the workers, may log
    /// in. (The staging table's privilege is checked when a day is staged.)
    fn check_staged_may(&self) -> SyncResult<()> {
        let WritePath::Staged(engine) = self.write_path else {
            return Ok(());
        };
        if engine == Engine::Citus {
            let owner_without_login = Spi::get_one_with_args::<String>(
                "SELECT (SELECT pg_catalog.quote_ident(r.rolname) FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_roles r ON r.oid = c.relowner \
                 WHERE c.oid = $1 AND NOT r.rolcanlogin AND EXISTS (SELECT FROM pg_catalog.pg_dist_partition p \
                   WHERE p.logicalrelid = c.oid AND NOT (p.partmethod = 'n' AND p.repmodel = 's')))",
                &[self.oid.into()],
            )?;
            if let Some(owner) = owner_without_login {
                return Err(SyncError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                    format!(
                        "the owner of {}, {owner}, cannot log in, and token_sync reads and writes the table as its owner, \
                         as whom Citus connects to the workers",
                        self.qualified_name
                    ),
                    format!(
                        "ALTER ROLE {owner} LOGIN, with a way in to every worker (pg_dist_authinfo or .pgpass), or make a role that can log in the table's owner."
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Resolves the target table's name and checks its columns, changing nothing: `None`
    /// when the table does not exist yet. A table token_sync cannot load is found too (it
    /// can be read and verified); `check_loadable` refuses it.
    pub fn find(
        setting: &str,
        schema: &SourceSchema,
        new_columns: NewColumns,
    ) -> SyncResult<Option<Self>> {
        let quoted = quoted_name(setting)?;
        lookup(&quoted)?
            .map(|oid| {
                let write_path = match table_kind(oid)? {
                    TableKind::Routed(engine) => WritePath::Staged(engine),
                    TableKind::Loadable | TableKind::Refused { .. } => WritePath::Copy,
                };
                Self::checked(oid, quoted, schema, new_columns, write_path)
            })
            .transpose()
    }

    /// The table's `schema.table` as the ledger records it, also before the table exists:
    /// an unqualified name is the one CREATE TABLE would make, in `current_schema()`.
    /// Resolved with the caller's search_path; everything after uses this name. A name
    /// token_sync must never write to is refused: a table of a system or temporary schema,
    /// of token_sync's own schema or of any extension, or a relation that is not a table.
    pub fn ledger_name(setting: &str) -> SyncResult<String> {
        let quoted = quoted_name(setting)?;
        // The caller's search_path resolves the name, in a statement of qualified function
        // calls only: the rest runs with the path pinned.
        let (relation, current_schema) = Spi::get_two_with_args::<pg_sys::Oid, String>(
            "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid, pg_catalog.current_schema()::pg_catalog.text",
            &[quoted.clone().into()],
        )?;
        let _pinned = Restricted::search_path();
        let (name, refusal) = Spi::get_two_with_args::<String, String>(
            "WITH named AS ( \
               SELECT coalesce((SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = $1), \
                 CASE WHEN pg_catalog.cardinality(p) = 2 THEN pg_catalog.format('%I.%I', p[1], p[2]) \
                 ELSE pg_catalog.format('%I.%I', $3::text, p[1]) END) AS name \
               FROM pg_catalog.parse_ident($2) AS p) \
             SELECT name, CASE \
               WHEN schema IN ('pg_catalog', 'information_schema', 'pg_toast', 'token_sync') \
                 THEN 'is in the schema ' || schema || ', where token_sync writes no rows of its own' \
               WHEN schema ~ '^pg_(toast_)?temp' THEN 'is a temporary table, which the next session would not see' \
               WHEN extension IS NOT NULL THEN 'belongs to the extension ' || extension \
               WHEN relkind NOT IN ('r', 'p') THEN 'is a ' || CASE relkind WHEN 'v' THEN 'view' \
                 WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence' \
                 ELSE 'relation of another kind' END || ', not a table' \
             END \
             FROM named, LATERAL (SELECT (pg_catalog.parse_ident(name))[1] AS schema, \
               (SELECT c.relkind::text FROM pg_catalog.pg_class c WHERE c.oid = $1) AS relkind, \
               (SELECT e.extname::text FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid \
                 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = $1 \
                 AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e' LIMIT 1) AS extension) AS facts",
            &[relation.into(), setting.into(), current_schema.into()],
        )?;
        let name = name.unwrap_or(quoted);
        match refusal {
            None => Ok(name),
            Some(why) => Err(SyncError::new(
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!("the target table {name} {why}"),
                "Name a table of your own in a schema of your own (token_sync.target_table, or add_table's target_table); \
                 token_sync creates it on the first sync.",
            )),
        }
    }

    fn checked(
        oid: pg_sys::Oid,
        quoted: String,
        schema: &SourceSchema,
        new_columns: NewColumns,
        write_path: WritePath,
    ) -> SyncResult<Self> {
        let (mut not_null, mut missing) = check_columns(oid, &quoted, schema)?;
        if new_columns == NewColumns::Add && missing.iter().any(|column| !column.not_null()) {
            // Another session (a backfill's other worker) may be adding them: wait for it,
            // as for the table's creation, then look again.
            lock_creation(&quoted)?;
            (not_null, missing) = check_columns(oid, &quoted, schema)?;
        }
        if new_columns == NewColumns::Add && missing.iter().any(|column| !column.not_null()) {
            mark_mirrors(oid, &quoted, schema)?;
        }
        let mut added_columns = Vec::new();
        for column in missing {
            match new_columns {
                NewColumns::Allow => {}
                NewColumns::Add if !column.not_null() => {
                    Spi::run(&format!(
                        "ALTER TABLE {quoted} ADD COLUMN {} {}",
                        column.postgres_name(),
                        column.pg_type()
                    ))?;
                    comment_mirrored(&quoted, column)?;
                    added_columns.push(format!(
                        "{} ({})",
                        quote::shown(&column.name),
                        column.pg_type()
                    ));
                }
                NewColumns::Add | NewColumns::Refuse => {
                    return Err(SyncError::new(
                        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                        format!(
                            "the target table {quoted} has no column {}",
                            quote::shown(&column.name)
                        ),
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
        )?
        .unwrap_or(quoted);
        Ok(Self {
            write_path,
            oid,
            qualified_name,
            not_null,
            added_columns,
        })
    }
}

/// The source's columns as CREATE TABLE defines them, each of the type that holds it
/// exactly, REQUIRED ones NOT NULL if `not_null`.
pub fn column_definitions(schema: &SourceSchema, not_null: bool) -> String {
    let columns: Vec<String> = schema
        .columns
        .iter()
        .map(|column| {
            let constraint = if not_null && column.not_null() {
                " NOT NULL"
            } else {
                ""
            };
            format!(
                "{} {}{constraint}",
                column.postgres_name(),
                column.pg_type()
            )
        })
        .collect();
    columns.join(", ")
}

/// Serialises the sessions that create the table or add columns to it, until the end of
/// the transaction.
fn lock_creation(quoted: &str) -> SyncResult<()> {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('token_sync create ' || $1))",
        &[quoted.into()],
    )
    .map_err(SyncError::from)
}

/// The setting as `schema.table` (or `table`), each part quoted: safe to splice into SQL.
fn quoted_name(setting: &str) -> SyncResult<String> {
    let parts: Vec<String> =
        Spi::get_one_with_args("SELECT pg_catalog.parse_ident($1)", &[setting.into()])?
            .unwrap_or_default();
    if parts.is_empty() || parts.len() > 2 {
        return Err(SyncError::config(
            format!("the target table \"{setting}\" is not [schema.]table"),
            "Name it as [schema.]table, e.g. public.raw_tokens (in token_sync.target_table, or add_table's target_table).",
        ));
    }
    // PostgreSQL would cut a longer name, and two names could then be one table.
    if let Some(long) = parts.iter().find(|part| part.len() > 63) {
        return Err(SyncError::config(
            format!(
                "the target table \"{setting}\" has a name part of {} bytes, and PostgreSQL keeps 63",
                long.len()
            ),
            "Name the target table with at most 63 bytes a part.",
        ));
    }
    Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.quote_ident(p) \
         FROM pg_catalog.unnest($1::pg_catalog.text[]) AS p), '.')",
        &[parts.into()],
    )
    .map_err(SyncError::from)
    .map(Option::unwrap_or_default)
}

fn lookup(quoted: &str) -> SyncResult<Option<pg_sys::Oid>> {
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT (SELECT c.oid FROM pg_catalog.pg_class c \
         WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'p'))",
        &[quoted.into()],
    )
    .map_err(SyncError::from)
}

/// What a target table is, as far as loading it goes.
enum TableKind {
    /// A heap table or a partitioned table whose partitions are all heap tables: COPY
    /// stores the rows where every query reads them.
    Loadable,
    /// A table whose rows an extension routes elsewhere, in statements through the planner.
    Routed(Engine),
    /// Anything else, named as the error shows it, with what to do instead.
    Refused { what: String, hint: &'static str },
}

const ACCESS_METHOD_HINT: &str = "token_sync loads heap tables (PostgreSQL's default access method), and has not been \
     tested with others. Mirror into a heap table, or convert this one: ALTER TABLE ... SET ACCESS METHOD heap.";
const RULE_HINT: &str = "COPY, through which token_sync loads, ignores rules, so rows the rule would redirect or \
     rewrite would be stored as they are. Drop the rule (DROP RULE ... ON ...), or mirror into another table.";
const FOREIGN_HINT: &str =
    "token_sync loads the rows into the table's own storage, and has not been tested with \
     foreign tables. Make the partition a heap table, or mirror into another table.";

/// How rows reach the table, or an error naming its kind if token_sync cannot load it: a
/// table or partition with an access method other than heap, a foreign partition, or a
/// table with rules on INSERT (COPY ignores rules). A Citus table or a TimescaleDB
/// hypertable is staged (see `WritePath::Staged`). Read from the catalogs; an extension's
/// own catalog is read only when the extension is installed, so a plain server pays one
/// lookup of pg_extension.
fn write_path(oid: pg_sys::Oid, quoted: &str) -> SyncResult<WritePath> {
    match table_kind(oid)? {
        TableKind::Loadable => Ok(WritePath::Copy),
        TableKind::Routed(engine) => Ok(WritePath::Staged(engine)),
        TableKind::Refused { what, hint } => Err(SyncError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("the target table {quoted} is {what}, which token_sync cannot load"),
            hint,
        )),
    }
}

fn table_kind(oid: pg_sys::Oid) -> SyncResult<TableKind> {
    match storage_or_rule(oid)? {
        TableKind::Loadable => Ok(engine_table(oid)?.unwrap_or(TableKind::Loadable)),
        refused => Ok(refused),
    }
}

/// Refused if the table has a rule on INSERT, or its storage is not heap (`storage_kind`),
/// whichever engine owns it.
fn storage_or_rule(oid: pg_sys::Oid) -> SyncResult<TableKind> {
    let insert_rule = Spi::get_one_with_args::<String>(
        "SELECT (SELECT pg_catalog.quote_ident(r.rulename) FROM pg_catalog.pg_rewrite r \
         WHERE r.ev_class = $1 AND r.ev_type = '3' ORDER BY r.rulename LIMIT 1)",
        &[oid.into()],
    )?;
    if let Some(rule) = insert_rule {
        return Ok(TableKind::Refused {
            what: format!("a table with a rule on INSERT ({rule})"),
            hint: RULE_HINT,
        });
    }
    storage_kind(oid)
}

/// A Citus table (distributed, reference or local) or a TimescaleDB hypertable.
fn engine_table(oid: pg_sys::Oid) -> SyncResult<Option<TableKind>> {
    let (citus, timescaledb) = Spi::get_two::<bool, bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus'), \
         EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'timescaledb')",
    )?;
    if citus == Some(true) {
        let in_metadata = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = $1)",
            &[oid.into()],
        )?;
        if in_metadata == Some(true) {
            return Ok(Some(TableKind::Routed(Engine::Citus)));
        }
    }
    if timescaledb == Some(true) {
        let hypertable = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT FROM _timescaledb_catalog.hypertable h \
             JOIN pg_catalog.pg_namespace n ON n.nspname = h.schema_name \
             JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = h.table_name \
             WHERE c.oid = $1)",
            &[oid.into()],
        )?;
        if hypertable == Some(true) {
            return Ok(Some(TableKind::Routed(Engine::TimescaleDb)));
        }
    }
    Ok(None)
}

/// `tree(relid, level)`: the table `$1` (level 0) and every table below it, partitions and
/// inheritance children, with how far below.
pub const TABLE_TREE: &str = "WITH RECURSIVE tree(relid, level) AS (SELECT $1::pg_catalog.oid, 0 UNION ALL \
    SELECT i.inhrelid, t.level + 1 FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.relid)";

/// Loadable unless the table, or a table below it (partitions and inheritance children,
/// which the day's DELETE and the read-back count reach too), is foreign or not heap.
fn storage_kind(oid: pg_sys::Oid) -> SyncResult<TableKind> {
    let refused = |what: String, hint| Ok(TableKind::Refused { what, hint });
    let odd_storage = Spi::connect(|client| {
        let rows = client.select(
            &format!("{TABLE_TREE} SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), \
             CASE WHEN c.relkind = 'f' THEN NULL ELSE coalesce(a.amname::text, '') END, \
             CASE WHEN c.oid = $1 THEN 'table' WHEN c.relispartition THEN 'partition' ELSE 'child table' END \
             FROM pg_catalog.pg_class c JOIN tree t ON t.relid = c.oid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_am a ON a.oid = c.relam \
             WHERE c.relkind = 'f' OR (c.relkind = 'r' AND a.amname IS DISTINCT FROM 'heap') \
             ORDER BY t.level, c.relname LIMIT 1"),
            None,
            &[oid.into()],
        )?;
        rows.map(|row| {
            Ok::<_, SyncError>((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?,
                row.get::<String>(3)?.unwrap_or_default(),
            ))
        })
        .next()
        .transpose()
    })?;
    match odd_storage {
        None => Ok(TableKind::Loadable),
        Some((name, None, below)) => refused(
            format!("a table with the foreign {below} {name}"),
            FOREIGN_HINT,
        ),
        Some((_, Some(method), below)) if below == "table" => refused(
            format!("a table of the access method {method}"),
            ACCESS_METHOD_HINT,
        ),
        Some((name, Some(method), below)) => refused(
            format!("a table whose {below} {name} has the access method {method}"),
            ACCESS_METHOD_HINT,
        ),
    }
}

/// Marks a target column as the mirror of a source column.
/// Marks every source column the target has as its mirror, before a column is added (and
/// marked): in a table that marks none (made before 0.3.0, by hand, or by an engine that
/// dropped the comments, as Citus's local tables do), all columns count as mirrors until
/// one is marked, and the others would then count as the user's own.
fn mark_mirrors(oid: pg_sys::Oid, quoted: &str, schema: &SourceSchema) -> SyncResult<()> {
    for present in target_columns(oid)? {
        if let Some(column) = schema.column(&present.name).filter(|_| !present.mirrored) {
            comment_mirrored(quoted, column)?;
        }
    }
    Ok(())
}

fn comment_mirrored(quoted: &str, column: &Column) -> SyncResult<()> {
    Spi::run(&format!(
        "COMMENT ON COLUMN {quoted}.{} IS {}",
        column.postgres_name(),
        quote::pg_literal(&mirror_comment(column))
    ))
    .map_err(SyncError::from)
}

fn mirror_comment(column: &Column) -> String {
    format!("{MIRROR_COMMENT} {} ({})", column.name, column.pg_type())
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

/// The first of `columns` that the table `relation` lacks or holds in another type than
/// the source's, as `check_source_column` compares them; None if it holds them all.
pub fn first_column_not_as_checked(
    relation: pg_sys::Oid,
    columns: &[Column],
) -> SyncResult<Option<String>> {
    let present = target_columns(relation)?;
    Ok(columns
        .iter()
        .find(|column| {
            !present
                .iter()
                .any(|target| target.name == column.name && target.pg_type == column.pg_type())
        })
        .map(|column| column.name.clone()))
}

/// The target's columns, as PostgreSQL has them.
fn target_columns(oid: pg_sys::Oid) -> SyncResult<Vec<TargetColumn>> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT attname::text, pg_catalog.format_type(atttypid, atttypmod), attnotnull AND NOT atthasdef, \
                 coalesce(pg_catalog.starts_with(pg_catalog.col_description(attrelid, attnum), $2), false) \
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
    .map_err(SyncError::from)
}

/// Checks that every source column the target has is of the source's type, and that the
/// target neither requires nor mirrors a column the source no longer has; returns the
/// source columns the target holds NOT NULL, and the source columns it lacks.
fn check_columns<'s>(
    oid: pg_sys::Oid,
    quoted: &str,
    schema: &'s SourceSchema,
) -> SyncResult<(Vec<String>, Vec<&'s Column>)> {
    let present = target_columns(oid)?;
    let mut missing = Vec::new();
    // A table made by token_sync marks each column it mirrors; one made before 0.3.0 (or by
    // hand) marks none, and all its columns count as mirrors.
    let marks_mirrors = present.iter().any(|target| target.mirrored);
    for column in &schema.columns {
        if !check_source_column(column, &present, marks_mirrors, quoted)? {
            missing.push(column);
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
                quote::shown(&dropped.name)
            ),
            format!(
                "To drop it with the old days' values: ALTER TABLE {quoted} DROP COLUMN {0}; to keep them: \
                 COMMENT ON COLUMN {quoted}.{0} IS NULL (then new days leave it NULL).",
                quote::pg_ident(&dropped.name)
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
                quote::shown(&orphan.name)
            ),
            format!(
                "If the source dropped it, run ALTER TABLE {quoted} ALTER COLUMN {} DROP NOT NULL to keep the old days' values.",
                quote::pg_ident(&orphan.name)
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

/// Whether the target has the source's `column` (as a mirror, where the target marks its
/// mirrors), and of the source's type.
fn check_source_column(
    column: &Column,
    present: &[TargetColumn],
    marks_mirrors: bool,
    quoted: &str,
) -> SyncResult<bool> {
    let (name, expected) = (&column.name, column.pg_type());
    match present.iter().find(|present| present.name == *name) {
        Some(target) if marks_mirrors && !target.mirrored => Err(SyncError::new(
                PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN,
                format!(
                    "the source gained a column {}, and the target table {quoted} has a column of that name of its own",
                    quote::shown(name)
                ),
                format!(
                    "token_sync leaves columns it did not make alone. Rename yours (ALTER TABLE {quoted} RENAME COLUMN {0} TO ...) \
                     and the next sync adds the source's; or let token_sync fill yours from now on: \
                     COMMENT ON COLUMN {quoted}.{0} IS {1}.",
                    column.postgres_name(),
                    quote::pg_literal(&mirror_comment(column))
                ),
        )),
        Some(target) if target.pg_type == expected => Ok(true),
        Some(target) => Err(SyncError::new(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "column {} of the target table {quoted} is {}, but the source's is {expected}",
                    quote::shown(name),
                    target.pg_type
                ),
                format!(
                    "If the source changed the column's type, convert the target's: ALTER TABLE {quoted} \
                     ALTER COLUMN {} TYPE {expected} USING {}::{expected}; or mirror into a new table.",
                    column.postgres_name(),
                    column.postgres_name()
                ),
        )),
        None => Ok(false),
    }
}
