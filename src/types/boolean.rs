//! BOOL → boolean.

use super::bad_value;
use crate::error::SyncResult;

pub fn parse(text: &str, column: &str) -> SyncResult<bool> {
    if text.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if text.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(bad_value(column, text, "BOOL"))
    }
}

pub fn to_postgres(text: &str, column: &str) -> SyncResult<&'static str> {
    parse(text, column).map(|value| if value { "true" } else { "false" })
}
