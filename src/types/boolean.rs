//! BOOL → boolean.

use super::{bad_value, InStruct, Spelling};
use crate::error::SyncResult;

pub const SPELLING: Spelling = Spelling {
    bigquery: "CAST({v} AS STRING)",
    postgres: "{v}::text",
    in_struct: InStruct::Value("{t}::boolean"),
};

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

/// boolean's binary form: one byte, 1 or 0.
pub fn send(text: &str, column: &str, out: &mut Vec<u8>) -> SyncResult<()> {
    out.push(u8::from(parse(text, column)?));
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
                r##"(("r" -> 'f') #>> '{}')::boolean::text"##,
            ]
        );
    }
}
