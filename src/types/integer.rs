//! INT64 → bigint, checked to be one.

use super::bad_value;
use crate::error::SyncResult;

pub fn parse(text: &str, column: &str) -> SyncResult<i64> {
    text.parse().map_err(|_| bad_value(column, text, "INT64"))
}

/// The value's own text once it is known to be an INT64.
pub fn to_postgres<'v>(text: &'v str, column: &str) -> SyncResult<&'v str> {
    parse(text, column).map(|_| text)
}
