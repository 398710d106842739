//! What one sync mirrors: a BigQuery source table with its schema (read from BigQuery on
//! every call, so that the rest is generated from what the source is now), the column its
//! days are cut by, and the PostgreSQL table that receives the rows.

use crate::bigquery::context::BigQuery;
use crate::bigquery::schema;
use crate::error::SyncResult;
use crate::load::target::TargetTable;
use crate::source::{Source, TableRef};

pub struct Mirror {
    pub source: Source,
    pub target: TargetTable,
    /// `token_sync.read_api = auto` found that the Storage Read API cannot read the source
    /// (and said so): the next days of the call read through the query path.
    pub storage_refused: bool,
}

/// A mirror to be prepared within a day's attempt, so that a failure to read the source's
/// schema or to make the target fails that day (in the ledger too), not the whole call.
/// Prepared once and kept for the next days, it is prepared again after a day that failed:
/// that day's subtransaction took back whatever the preparation created.
pub struct MirrorPlan {
    table: TableRef,
    time_column: Option<String>,
    /// The target as `schema.table`, resolved with the caller's search_path before the
    /// sync pins it (see `crate::restricted`); the ledger names it so.
    pub ledger_name: String,
    prepared: Option<Mirror>,
}

impl MirrorPlan {
    /// Checks the target's name at once: a bad name fails the call before anything is asked
    /// of BigQuery.
    pub fn new(
        table: &TableRef,
        time_column: Option<&str>,
        target_table: &str,
    ) -> SyncResult<Self> {
        Ok(Self {
            table: table.clone(),
            time_column: time_column.map(str::to_string),
            ledger_name: TargetTable::ledger_name(target_table)?,
            prepared: None,
        })
    }

    /// The source's schema read and the target made and checked, the first time it is asked for.
    pub fn prepare(&mut self, bigquery: &BigQuery) -> SyncResult<&mut Mirror> {
        let mirror = match self.prepared.take() {
            Some(mirror) => mirror,
            None => {
                let source =
                    schema::read_source(bigquery, &self.table, self.time_column.as_deref())?;
                let target = TargetTable::prepare(&self.ledger_name, &source.schema, &source.time)?;
                Mirror {
                    source,
                    target,
                    storage_refused: false,
                }
            }
        };
        Ok(self.prepared.insert(mirror))
    }

    /// The column the days are cut by, if the registry names it (else the source's own).
    pub fn time_column(&self) -> Option<&str> {
        self.time_column.as_deref()
    }

    /// The source as users write it, `project.dataset.table`.
    pub fn source_name(&self) -> String {
        self.table.display()
    }

    pub fn forget(&mut self) {
        self.prepared = None;
    }
}
