//! token_sync: mirrors day-partitioned BigQuery tables (first `crypto_ethereum.tokens`) into
//! PostgreSQL one UTC day at a time.
//!
//! The path of a day's data, module by module:
//! `settings` → `bigquery` (auth, schema, query, pages) → `types` (each BigQuery type to
//! its PostgreSQL type) → `mirror` (source, time column, target) → `load` (target table,
//! COPY rows, write path, day replace) → `ledger` and `verify` → `sql_api`, the functions
//! users call.

use pgrx::prelude::*;

mod bigquery;
mod catch_up;
mod day;
mod day_digest;
mod error;
mod ledger;
mod load;
mod mirror;
mod quote;
mod registry;
mod restricted;
mod runtime;
mod settings;
mod source;
mod sql_api;
mod subtransaction;
mod sync;
mod types;
mod verify;

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

::pgrx::pg_module_magic!(name, version);

/// Registers the settings. token_sync belongs in `shared_preload_libraries`: only then do
/// its settings exist in every session before anyone sets them, so that PostgreSQL refuses
/// them to ordinary users instead of keeping an unchecked placeholder.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::register();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'token_sync'"]
    }
}
