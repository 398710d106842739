//! INT64 → bigint, checked to be one.

use super::{bad_value, InStruct, Spelling};
use crate::error::SyncResult;

pub const SPELLING: Spelling = Spelling {
    bigquery: "CAST({v} AS STRING)",
    postgres: "{v}::text",
    in_struct: InStruct::Value("{t}::bigint"),
};

pub fn parse(text: &str, column: &str) -> SyncResult<i64> {
    text.parse().map_err(|_| bad_value(column, text, "INT64"))
}

/// The value's own text once it is known to be an INT64.
pub fn to_postgres<'v>(text: &'v str, column: &str) -> SyncResult<&'v str> {
    parse(text, column).map(|_| text)
}

/// bigint's binary form: eight bytes, big-endian.
pub fn send(text: &str, column: &str, out: &mut Vec<u8>) -> SyncResult<()> {
    out.extend_from_slice(&parse(text, column)?.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::tests::spelled_both_ways;

    #[test]
    fn fingerprint_spelling() {
        assert_eq!(
            spelled_both_ways(&SPELLING),
            [
                r##"CAST(`c` AS STRING)"##,
                r##""c"::text"##,
                r##"CAST(`r`.`f` AS STRING)"##,
                r##"(("r" -> 'f') #>> '{}')::bigint::text"##,
            ]
        );
    }
}
