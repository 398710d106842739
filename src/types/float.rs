//! FLOAT64 → double precision, every bit of it. BigQuery spells the special values `NaN`,
//! `Infinity` and `-Infinity` (the emulator `nan`, `inf`, `-inf`); finite values are
//! parsed to the nearest double, which is the one BigQuery holds, and written in the
//! shortest text that reads back as the same double.

use super::{bad_value, InStruct, Spelling};
use crate::error::SyncResult;

/// Seventeen significant digits tell every double apart; both sides print them with C's %e
/// (BigQuery's FORMAT, PostgreSQL's to_char with EEEE). Adding zero makes -0 +0.
pub const SPELLING: Spelling = Spelling {
    bigquery: "CASE WHEN IS_NAN({v}) THEN 'NaN' WHEN IS_INF({v}) THEN IF({v} > 0, 'Infinity', '-Infinity') \
               ELSE FORMAT('%.16e', {v} + 0.0) END",
    postgres: "CASE WHEN {v} = 'NaN'::float8 THEN 'NaN' WHEN {v} = 'Infinity'::float8 THEN 'Infinity' \
               WHEN {v} = '-Infinity'::float8 THEN '-Infinity' ELSE ltrim(to_char({v} + 0, '9.9999999999999999EEEE')) END",
    in_struct: InStruct::Value("{t}::float8"),
};

pub fn parse(text: &str, column: &str) -> SyncResult<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let special = if unsigned.eq_ignore_ascii_case("nan") {
        Some(f64::NAN)
    } else if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        Some(f64::INFINITY)
    } else {
        None
    };
    match special {
        Some(value) if text.starts_with('-') => Ok(-value),
        Some(value) => Ok(value),
        None => text.parse().map_err(|_| bad_value(column, text, "FLOAT64")),
    }
}

/// PostgreSQL's input text for the double: `NaN`, `Infinity`, `-Infinity`, or the shortest
/// round-trip digits in exponent form (`1e-1`, `-0e0`).
pub fn format(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{value:e}")
    }
}

pub fn to_postgres(text: &str, column: &str) -> SyncResult<String> {
    parse(text, column).map(format)
}

/// double precision's binary form: the double's eight bytes, big-endian; every NaN as the
/// one NaN the text form (`NaN`) loads as.
pub fn send(text: &str, column: &str, out: &mut Vec<u8>) -> SyncResult<()> {
    let value = parse(text, column)?;
    let value = if value.is_nan() { f64::NAN } else { value };
    out.extend_from_slice(&value.to_bits().to_be_bytes());
    Ok(())
}

/// The double as a JSON value (inside a STRUCT): a number when finite, else a string.
pub fn to_json(text: &str, column: &str, out: &mut String) -> SyncResult<()> {
    let value = parse(text, column)?;
    if value.is_finite() {
        out.push_str(&format(value));
    } else {
        out.push('"');
        out.push_str(&format(value));
        out.push('"');
    }
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
                r##"CASE WHEN IS_NAN(`c`) THEN 'NaN' WHEN IS_INF(`c`) THEN IF(`c` > 0, 'Infinity', '-Infinity') ELSE FORMAT('%.16e', `c` + 0.0) END"##,
                r##"CASE WHEN "c" = 'NaN'::float8 THEN 'NaN' WHEN "c" = 'Infinity'::float8 THEN 'Infinity' WHEN "c" = '-Infinity'::float8 THEN '-Infinity' ELSE ltrim(to_char("c" + 0, '9.9999999999999999EEEE')) END"##,
                r##"CASE WHEN IS_NAN(`r`.`f`) THEN 'NaN' WHEN IS_INF(`r`.`f`) THEN IF(`r`.`f` > 0, 'Infinity', '-Infinity') ELSE FORMAT('%.16e', `r`.`f` + 0.0) END"##,
                r##"CASE WHEN (("r" -> 'f') #>> '{}')::float8 = 'NaN'::float8 THEN 'NaN' WHEN (("r" -> 'f') #>> '{}')::float8 = 'Infinity'::float8 THEN 'Infinity' WHEN (("r" -> 'f') #>> '{}')::float8 = '-Infinity'::float8 THEN '-Infinity' ELSE ltrim(to_char((("r" -> 'f') #>> '{}')::float8 + 0, '9.9999999999999999EEEE')) END"##,
            ]
        );
    }

    #[test]
    fn both_spellings_of_the_specials() {
        for (text, expected) in [
            ("NaN", "NaN"),
            ("nan", "NaN"),
            ("Infinity", "Infinity"),
            ("inf", "Infinity"),
            ("-Infinity", "-Infinity"),
            ("-inf", "-Infinity"),
        ] {
            assert_eq!(to_postgres(text, "f").ok().as_deref(), Some(expected));
        }
    }

    #[test]
    fn finite_values_keep_every_bit() {
        for value in [
            0.1,
            -0.0,
            1.0 / 3.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            1.5e300,
        ] {
            let text = to_postgres(&format!("{value:?}"), "f").expect("parses");
            let back: f64 = text.parse().expect("reads back");
            assert_eq!(back.to_bits(), value.to_bits(), "{text}");
        }
        assert_eq!(to_postgres("1.0E-5", "f").ok().as_deref(), Some("1e-5"));
        assert!(to_postgres("1,5", "f").is_err());
    }
}
