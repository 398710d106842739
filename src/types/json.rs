//! JSON → jsonb. BigQuery sends a JSON value as its text. jsonb refuses the escape `\u0000`
//! (PostgreSQL's text cannot hold NUL), so, as for STRING, the NUL characters are removed
//! from the strings inside and the row is counted.
//!
//! BigQuery keeps a JSON number as an INT64, a UINT64 or a FLOAT64 and spells a whole
//! FLOAT64 from 1e16 up as `1e+16`, which jsonb would read back as an integer. Such a number
//! is loaded as `10000000000000000.0`: the same value, still told apart from the integer,
//! so that `canonical` can spell it as BigQuery does.

use super::{InStruct, Spelling};
use std::borrow::Cow;
use std::fmt::Write;

/// TO_JSON_STRING's spelling (`canonical`, as token_sync.canonical_json); the escaped NULs
/// it keeps are removed as on load, escaped backslashes set aside first (a raw \x01 cannot
/// occur in its output). A JSON null in a STRUCT is loaded as the STRUCT's null, so there it
/// counts as NULL.
pub const SPELLING: Spelling = Spelling {
    bigquery: r"REPLACE(REPLACE(REPLACE(TO_JSON_STRING({v}), '\\\\', '\x01'), '\\u0000', ''), '\x01', '\\\\')",
    postgres: "token_sync.canonical_json({v})",
    in_struct: InStruct::Own {
        bigquery: "NULLIF({s}, 'null')",
        postgres: "token_sync.canonical_json(nullif({m}, 'null'::jsonb))",
    },
};

pub fn to_postgres<'v>(text: &'v str, stripped: &mut bool) -> Cow<'v, str> {
    if !text.contains("\\u0000") && !text.contains("e+") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || (!in_string && c == 'e')) {
        let found = rest.as_bytes()[at];
        if found == b'e' {
            // The number around this exponent, or a bare `e` of `true`/`false`.
            let start = rest[..at]
                .rfind(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .map_or(0, |i| i + 1);
            let end = rest[at..]
                .find(|c: char| !(c.is_ascii_digit() || c == '+' || c == '-' || c == 'e'))
                .map_or(rest.len(), |i| at + i);
            out.push_str(&rest[..start]);
            let number = &rest[start..end];
            match whole_float_in_full(number) {
                Some(full) => out.push_str(&full),
                None => out.push_str(number),
            }
            rest = &rest[end..];
            continue;
        }
        out.push_str(&rest[..at]);
        let escape = &rest[at..];
        if found == b'"' {
            in_string = !in_string;
            out.push('"');
            rest = &escape[1..];
        } else if let Some(after) = escape.strip_prefix("\\u0000") {
            // Escapes are read in pairs, so `\\u0000` (a backslash, then "u0000") stays.
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

/// `1.5e+16` as `15000000000000000.0`, for a number of at most 20 digits before its point
/// (a larger one cannot be an integer in BigQuery's JSON); `None` for any other number.
fn whole_float_in_full(number: &str) -> Option<String> {
    let (mantissa, exponent) = number.split_once("e+")?;
    let exponent: usize = exponent.parse().ok()?;
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(unsigned) => ("-", unsigned),
        None => ("", mantissa),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let point = whole.len() + exponent;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || point < digits.len() {
        return None;
    }
    (point <= 20).then(|| format!("{sign}{digits:0<point$}.0"))
}

/// Appends `text` as a JSON string.
pub fn string(text: &str, out: &mut String) {
    // Serialising a str cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

/// A JSON value as BigQuery's TO_JSON_STRING spells it: no spaces, every object's keys in
/// byte order, integers as they are, other numbers as the shortest text that reads back as
/// the same FLOAT64, in BigQuery's (nlohmann's) layout: `2.0`, `0.0001`, `1e-05`, `1e+16`.
pub fn canonical(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(unsigned), _, _) => {
                let _ = write!(out, "{unsigned}");
            }
            (None, Some(signed), _) => {
                let _ = write!(out, "{signed}");
            }
            (None, None, Some(float)) => write_float(float, out),
            (None, None, None) => out.push_str("null"),
        },
        Value::String(text) => string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut members: Vec<_> = members.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, member)) in members.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                string(key, out);
                out.push(':');
                write_canonical(member, out);
            }
            out.push('}');
        }
    }
}

/// A finite double in nlohmann's layout: its shortest digits `d1..dk` with the point after
/// `n` of them; fixed notation for -4 < n <= 15, else `d.ddde±XX`.
fn write_float(float: f64, out: &mut String) {
    let scientific = format!("{float:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(unsigned) => ("-", unsigned),
        None => ("", mantissa),
    };
    let digits = mantissa.replace('.', "");
    let k = digits.len() as i32;
    let n = exponent + 1;
    out.push_str(sign);
    if k <= n && n <= 15 {
        let _ = write!(out, "{digits:0<width$}.0", width = n as usize);
    } else if 0 < n && n <= 15 {
        let (whole, fraction) = digits.split_at(n as usize);
        let _ = write!(out, "{whole}.{fraction}");
    } else if -4 < n && n <= 0 {
        let _ = write!(out, "0.{}{digits}", "0".repeat((-n) as usize));
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            let _ = write!(out, ".{rest}");
        }
        let e = n - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
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
                r##"REPLACE(REPLACE(REPLACE(TO_JSON_STRING(`c`), '\\\\', '\x01'), '\\u0000', ''), '\x01', '\\\\')"##,
                r##"token_sync.canonical_json("c")"##,
                r##"NULLIF(REPLACE(REPLACE(REPLACE(TO_JSON_STRING(`r`.`f`), '\\\\', '\x01'), '\\u0000', ''), '\x01', '\\\\'), 'null')"##,
                r##"token_sync.canonical_json(nullif(("r" -> 'f'), 'null'::jsonb))"##,
            ]
        );
    }

    #[test]
    fn json_passes_through_unless_it_holds_nul_or_a_whole_float() {
        let mut stripped = false;
        let plain = r#"{"b":[1,{"c":"x"}],"a":null,"t":true,"e":1.5e-07}"#;
        assert_eq!(to_postgres(plain, &mut stripped), plain);
        assert!(!stripped);
        let with_nul = r#"{"a":"x\u0000y","n":1.50,"k":"\\u0000"}"#;
        assert_eq!(
            to_postgres(with_nul, &mut stripped),
            r#"{"a":"xy","n":1.50,"k":"\\u0000"}"#
        );
        assert!(stripped);
        let mut stripped = false;
        let floats = r#"{"a":[1e+16,-1.5e+17,1.2345e+2,1e+300],"s":"1e+16 \"e+\" true","t":true}"#;
        assert_eq!(
            to_postgres(floats, &mut stripped),
            r#"{"a":[10000000000000000.0,-150000000000000000.0,1.2345e+2,1e+300],"s":"1e+16 \"e+\" true","t":true}"#
        );
        assert!(!stripped);
    }

    fn canonical_of(text: &str) -> String {
        canonical(&serde_json::from_str(text).expect("valid JSON"))
    }

    #[test]
    fn canonical_json_is_bigquerys_spelling() {
        assert_eq!(
            canonical_of(r#"{"b": {"z": 1, "a": [true, null]}, "a": "é\n\u0001", "B": 0}"#),
            r#"{"B":0,"a":"é\n\u0001","b":{"a":[true,null],"z":1}}"#
        );
        assert_eq!(
            canonical_of("[18446744073709551615, -9223372036854775808, 18446744073709551616]"),
            "[18446744073709551615,-9223372036854775808,1.8446744073709552e+19]"
        );
        let floats = [
            ("2.50", "2.5"),
            ("100.0", "100.0"),
            ("0.0", "0.0"),
            ("-0.0", "-0.0"),
            ("123456789012345.6", "123456789012345.6"),
            ("100000000000000.0", "100000000000000.0"),
            ("1000000000000000.0", "1e+15"),
            ("10000000000000000.0", "1e+16"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("-0.00012345", "-0.00012345"),
            ("0.1", "0.1"),
            ("1e300", "1e+300"),
            ("-2.5e-308", "-2.5e-308"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ];
        for (given, spelled) in floats {
            assert_eq!(canonical_of(given), spelled, "{given}");
        }
    }
}
