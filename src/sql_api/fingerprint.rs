//! Schema token_sync: the two spellings `token_verify_day`'s fingerprint needs on
//! PostgreSQL's side that SQL alone cannot give (`crate::verify`): a jsonb as BigQuery's
//! TO_JSON_STRING spells it, and an INTERVAL kept as BigQuery's text inside a STRUCT's
//! jsonb, as months, days and microseconds. Pure functions: anyone may call them.

use pgrx::prelude::*;

#[pg_schema]
mod token_sync {
    use crate::error::OrRaise;
    use crate::types::{interval, json};
    use pgrx::prelude::*;
    use pgrx::JsonB;

    #[pg_extern(immutable, strict, parallel_safe)]
    fn canonical_json(value: JsonB) -> String {
        json::canonical(&value.0)
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn canonical_interval(bigquery_text: &str) -> String {
        interval::canonical(bigquery_text, "interval").or_raise()
    }
}
