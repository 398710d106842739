//! NUMERIC (38 digits, 9 after the point) and BIGNUMERIC (76 digits, 38 after the point)
//! → numeric, which holds both exactly. The value is written without trailing zeros after
//! the point: BigQuery sends `1.5`, the emulator pads it to `1.500000000`; both are the
//! same NUMERIC and load as the same numeric.

use super::{bad_value, InStruct, Spelling};
use crate::error::SyncResult;
use std::borrow::Cow;

/// Without trailing zeros after the point, as the value is loaded.
pub const SPELLING: Spelling = Spelling {
    bigquery: "IF(STRPOS(CAST({v} AS STRING), '.') > 0, RTRIM(RTRIM(CAST({v} AS STRING), '0'), '.'), CAST({v} AS STRING))",
    postgres: "trim_scale({v})::text",
    in_struct: InStruct::Value("{t}::numeric"),
};

/// The decimal's canonical text: sign, digits, and a fraction only if it is not zero. An
/// exponent (the emulator sends zero as `0E-9`) is applied by moving the point.
pub fn canonical<'v>(text: &'v str, column: &str) -> SyncResult<Cow<'v, str>> {
    let invalid = || bad_value(column, text, "NUMERIC");
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().map_err(|_| invalid())?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || exponent.unsigned_abs() > 1_000
    {
        return Err(invalid());
    }
    // All the digits, and where the point goes among them.
    let digits = format!("{whole}{fraction}");
    let point = whole.len() as i64 + i64::from(exponent);
    let (whole, fraction) = if point <= 0 {
        (
            String::new(),
            format!("{}{digits}", "0".repeat(point.unsigned_abs() as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        let (w, f) = digits.split_at(point as usize);
        (w.to_string(), f.to_string())
    };
    let fraction = fraction.trim_end_matches('0');
    let whole = match whole.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let zero = whole == "0" && fraction.is_empty();
    let sign = if negative && !zero { "-" } else { "" };
    let canonical = if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    };
    Ok(if canonical == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(canonical)
    })
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
                r##"IF(STRPOS(CAST(`c` AS STRING), '.') > 0, RTRIM(RTRIM(CAST(`c` AS STRING), '0'), '.'), CAST(`c` AS STRING))"##,
                r##"trim_scale("c")::text"##,
                r##"IF(STRPOS(CAST(`r`.`f` AS STRING), '.') > 0, RTRIM(RTRIM(CAST(`r`.`f` AS STRING), '0'), '.'), CAST(`r`.`f` AS STRING))"##,
                r##"trim_scale((("r" -> 'f') #>> '{}')::numeric)::text"##,
            ]
        );
    }

    #[test]
    fn trailing_zeros_go_and_every_digit_stays() {
        let largest = "99999999999999999999999999999.999999999";
        for (text, expected) in [
            ("1.500000000", "1.5"),
            ("1.5", "1.5"),
            ("-0.000000000", "0"),
            ("100", "100"),
            ("007.10", "7.1"),
            ("0E-9", "0"),
            ("1.5E2", "150"),
            ("15E-3", "0.015"),
            (largest, largest),
            (
                "-578960446186580977117854925043439539266.34992332820282019728792003956564819968",
                "-578960446186580977117854925043439539266.34992332820282019728792003956564819968",
            ),
        ] {
            assert_eq!(
                canonical(text, "n").ok().as_deref(),
                Some(expected),
                "{text}"
            );
        }
        for bad in ["", ".", "1e", "1.2.3", "NaN", "- 1", "1e99999"] {
            assert!(canonical(bad, "n").is_err(), "{bad}");
        }
    }
}
