//! STRING and GEOGRAPHY (as WKT) → text. PostgreSQL's text cannot hold the NUL character,
//! so it is removed and the row counted (`rows_nul_stripped` in the ledger); the
//! fingerprint strips it on BigQuery's side too.

use super::{InStruct, Spelling};
use std::borrow::Cow;

/// NUL is stripped on load, so BigQuery's side strips it too.
pub const SPELLING: Spelling = Spelling {
    bigquery: "REPLACE({v}, @nul, '')",
    postgres: "{v}",
    in_struct: InStruct::Value("{t}"),
};

/// The text without NUL characters; `stripped` is set when there were any.
pub fn without_nul<'v>(text: &'v str, stripped: &mut bool) -> Cow<'v, str> {
    if text.contains('\0') {
        *stripped = true;
        Cow::Owned(text.replace('\0', ""))
    } else {
        Cow::Borrowed(text)
    }
}

/// Appends `value` as a field of COPY's text format: backslash, newline, carriage return
/// and tab escaped, everything else as it is (the COPY runs with encoding UTF8).
pub fn copy_escape(value: &str, out: &mut Vec<u8>) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..index]);
        out.extend_from_slice(escaped);
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// COPY's NULL.
pub fn copy_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\\N");
}

/// text's binary form: its bytes, without NUL (the COPY runs only where the session reads
/// them as UTF-8, see `crate::load::copy_from::format_for`).
pub fn send(text: &str, out: &mut Vec<u8>, stripped: &mut bool) {
    out.extend_from_slice(without_nul(text, stripped).as_bytes());
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
                r##"REPLACE(`c`, @nul, '')"##,
                r##""c""##,
                r##"REPLACE(`r`.`f`, @nul, '')"##,
                r##"(("r" -> 'f') #>> '{}')"##,
            ]
        );
    }

    #[test]
    fn escapes_copy_specials_only() {
        let mut out = Vec::new();
        copy_escape("a\tb\nc\\d\re é", &mut out);
        assert_eq!(out, "a\\tb\\nc\\\\d\\re é".as_bytes());
    }

    #[test]
    fn strips_nul_and_says_so() {
        let mut stripped = false;
        assert_eq!(without_nul("plain", &mut stripped), "plain");
        assert!(!stripped);
        assert_eq!(without_nul("A\0B", &mut stripped), "AB");
        assert!(stripped);
    }
}
