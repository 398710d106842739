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

/// numeric's binary form (PostgreSQL's `numeric_send`): the count of base-10000 digits, the
/// weight of the first (in powers of 10000), the sign, the count of decimal digits after the
/// point (the canonical text's, as `numeric_in` would count them), then the digits, each
/// an int16, without leading or trailing zero digits.
pub fn send(text: &str, column: &str, out: &mut Vec<u8>) -> SyncResult<()> {
    let canonical = canonical(text, column)?;
    let (negative, unsigned) = match canonical.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, &*canonical),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let whole = whole.trim_start_matches('0');
    let lead = (4 - whole.len() % 4) % 4;
    let trail = (4 - fraction.len() % 4) % 4;
    let padded: Vec<u8> = std::iter::repeat_n(b'0', lead)
        .chain(whole.bytes())
        .chain(fraction.bytes())
        .chain(std::iter::repeat_n(b'0', trail))
        .collect();
    let mut digits: Vec<i16> = padded
        .chunks(4)
        .map(|group| {
            group
                .iter()
                .fold(0i16, |value, digit| value * 10 + i16::from(digit - b'0'))
        })
        .collect();
    let mut weight = ((lead + whole.len()) / 4) as i64 - 1;
    let leading_zeros = digits.iter().take_while(|digit| **digit == 0).count();
    digits.drain(..leading_zeros);
    weight -= leading_zeros as i64;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let too_large = || bad_value(column, text, "NUMERIC PostgreSQL can hold");
    let count = i16::try_from(digits.len()).map_err(|_| too_large())?;
    let weight = i16::try_from(weight).map_err(|_| too_large())?;
    // numeric's largest display scale (NUMERIC_DSCALE_MASK).
    let scale = i16::try_from(fraction.len())
        .ok()
        .filter(|scale| *scale <= 0x3FFF)
        .ok_or_else(too_large)?;
    let sign: u16 = if negative { 0x4000 } else { 0 };
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&scale.to_be_bytes());
    for digit in digits {
        out.extend_from_slice(&digit.to_be_bytes());
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

    fn sent(text: &str) -> Vec<i16> {
        let mut out = Vec::new();
        send(text, "n", &mut out).expect("sends");
        out.chunks(2)
            .map(|pair| i16::from_be_bytes([pair[0], pair[1]]))
            .collect()
    }

    #[test]
    fn binary_form_is_numeric_sends() {
        // ndigits, weight, sign, dscale, digits: as `SELECT numeric_send(...)` gives them.
        assert_eq!(sent("0"), [0, 0, 0, 0]);
        assert_eq!(sent("-0.000000000"), [0, 0, 0, 0]);
        assert_eq!(sent("1.500000000"), [2, 0, 0, 1, 1, 5000]);
        assert_eq!(sent("12345.678"), [3, 1, 0, 3, 1, 2345, 6780]);
        assert_eq!(sent("-0.015"), [1, -1, 0x4000, 3, 150]);
        assert_eq!(sent("100000000"), [1, 2, 0, 0, 1]);
        assert_eq!(sent("0.00000001"), [1, -2, 0, 8, 1]);
        assert_eq!(
            sent("-99999999999999999999999999999.999999999"),
            [11, 7, 0x4000, 9, 9, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9000]
        );
        let mut out = Vec::new();
        assert!(send("1.2.3", "n", &mut out).is_err());
        assert!(send(&format!("1{}", "0".repeat(200_000)), "n", &mut out).is_err());
    }
}
