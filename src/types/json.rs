//! JSON → jsonb. BigQuery sends a JSON value as its text. jsonb refuses the escape `\u0000`
//! (PostgreSQL's text cannot hold NUL), so, as for STRING, the NUL characters are removed
//! from the strings inside and the row is counted.

use std::borrow::Cow;

pub fn to_postgres<'v>(text: &'v str, stripped: &mut bool) -> Cow<'v, str> {
    if !text.contains("\\u0000") {
        return Cow::Borrowed(text);
    }
    // Escapes are read in pairs, so `\\u0000` (a backslash, then "u0000") stays as it is.
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at..];
        if let Some(after) = escape.strip_prefix("\\u0000") {
            *stripped = true;
            rest = after;
        } else {
            let length = 1 + escape[1..].chars().next().map_or(0, char::len_utf8);
            out.push_str(&escape[..length]);
            rest = &escape[length..];
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Appends `text` as a JSON string.
pub fn string(text: &str, out: &mut String) {
    // Serialising a str cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_passes_through_unless_it_holds_nul() {
        let mut stripped = false;
        let plain = r#"{"b":[1,{"c":"x"}],"a":null}"#;
        assert_eq!(to_postgres(plain, &mut stripped), plain);
        assert!(!stripped);
        let with_nul = r#"{"a":"x\u0000y","n":1.50,"k":"\\u0000"}"#;
        assert_eq!(
            to_postgres(with_nul, &mut stripped),
            r#"{"a":"xy","n":1.50,"k":"\\u0000"}"#
        );
        assert!(stripped);
    }
}
