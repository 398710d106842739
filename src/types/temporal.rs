//! DATE → date, DATETIME → timestamp, TIME → time, TIMESTAMP → timestamptz, all to the
//! microsecond. DATE, DATETIME and TIME arrive as ISO text, which PostgreSQL reads as it is
//! whatever its DateStyle; a TIMESTAMP arrives as microseconds since the Unix epoch (asked
//! for with `useInt64Timestamp`) or else as float seconds, and is written as UTC text with
//! an explicit offset, so the session's TimeZone cannot move it.

use super::{bad_value, InStruct, Spelling};
use crate::error::SyncResult;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use std::fmt::Write;
use std::str::FromStr;

/// Microseconds since the Unix epoch.
pub const TIMESTAMP_SPELLING: Spelling = Spelling {
    bigquery: "CAST(UNIX_MICROS({v}) AS STRING)",
    postgres: "((extract(epoch FROM {v}) * 1000000)::bigint)::text",
    in_struct: InStruct::Value("{t}::timestamptz"),
};

/// Microseconds since the Unix epoch, read as UTC.
pub const DATETIME_SPELLING: Spelling = Spelling {
    bigquery: "CAST(UNIX_MICROS(TIMESTAMP({v})) AS STRING)",
    postgres: "((extract(epoch FROM {v}) * 1000000)::bigint)::text",
    in_struct: InStruct::Value("{t}::timestamp"),
};

/// Days since the Unix epoch.
pub const DATE_SPELLING: Spelling = Spelling {
    bigquery: "CAST(UNIX_DATE({v}) AS STRING)",
    postgres: "({v} - DATE '1970-01-01')::text",
    in_struct: InStruct::Value("{t}::date"),
};

/// Microseconds since midnight.
pub const TIME_SPELLING: Spelling = Spelling {
    bigquery: "CAST(TIME_DIFF({v}, TIME '00:00:00', MICROSECOND) AS STRING)",
    postgres: "((extract(epoch FROM {v}) * 1000000)::bigint)::text",
    in_struct: InStruct::Value("{t}::time"),
};

pub fn date<'v>(text: &'v str, column: &str) -> SyncResult<&'v str> {
    parse_date(text, column).map(|_| text)
}

pub fn parse_date(text: &str, column: &str) -> SyncResult<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| bad_value(column, text, "DATE"))
}

pub fn datetime<'v>(text: &'v str, column: &str) -> SyncResult<&'v str> {
    parse_datetime(text, column).map(|_| text)
}

/// A DATETIME as BigQuery spells it, with a `T` or a space between date and time.
pub fn parse_datetime(text: &str, column: &str) -> SyncResult<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .map_err(|_| bad_value(column, text, "DATETIME"))
}

pub fn time<'v>(text: &'v str, column: &str) -> SyncResult<&'v str> {
    NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .map(|_| text)
        .map_err(|_| bad_value(column, text, "TIME"))
}

/// A BigQuery TIMESTAMP as microseconds since the Unix epoch, exactly: int64 microseconds,
/// or float seconds such as `1.6409952E9` parsed as a decimal, never through a binary float.
pub fn timestamp_micros(text: &str, column: &str) -> SyncResult<i64> {
    if let Ok(micros) = text.parse::<i64>() {
        return Ok(micros);
    }
    let invalid = || bad_value(column, text, "TIMESTAMP");
    let seconds = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str(text)
    }
    .map_err(|_| invalid())?;
    seconds
        .checked_mul(Decimal::from(1_000_000))
        .map(|micros| micros.round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven))
        .and_then(|micros| micros.to_i64())
        .ok_or_else(invalid)
}

fn moment(unix_micros: i64, text: &str, column: &str) -> SyncResult<DateTime<chrono::Utc>> {
    DateTime::from_timestamp_micros(unix_micros).ok_or_else(|| bad_value(column, text, "TIMESTAMP"))
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00`.
pub fn timestamp_text(unix_micros: i64, out: &mut String) {
    let moment = DateTime::from_timestamp_micros(unix_micros).unwrap_or_default();
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
        moment.year(),
        moment.month(),
        moment.day(),
        moment.hour(),
        moment.minute(),
        moment.second(),
        moment.timestamp_subsec_micros()
    );
}

pub fn timestamp(text: &str, column: &str) -> SyncResult<String> {
    let micros = timestamp_micros(text, column)?;
    moment(micros, text, column)?;
    let mut out = String::with_capacity(32);
    timestamp_text(micros, &mut out);
    Ok(out)
}

/// Inside a STRUCT: the RFC 3339 text BigQuery's TO_JSON gives, `2026-11-20T10:00:00.000001Z`.
pub fn timestamp_json(text: &str, column: &str, out: &mut String) -> SyncResult<()> {
    let moment = moment(timestamp_micros(text, column)?, text, column)?;
    out.push('"');
    out.push_str(&moment.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    out.push('"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::tests::spelled_both_ways;

    #[test]
    fn fingerprint_spelling_of_timestamp() {
        assert_eq!(
            spelled_both_ways(&TIMESTAMP_SPELLING),
            [
                r##"CAST(UNIX_MICROS(`c`) AS STRING)"##,
                r##"((extract(epoch FROM "c") * 1000000)::bigint)::text"##,
                r##"CAST(UNIX_MICROS(`r`.`f`) AS STRING)"##,
                r##"((extract(epoch FROM (("r" -> 'f') #>> '{}')::timestamptz) * 1000000)::bigint)::text"##,
            ]
        );
    }

    #[test]
    fn fingerprint_spelling_of_datetime() {
        assert_eq!(
            spelled_both_ways(&DATETIME_SPELLING),
            [
                r##"CAST(UNIX_MICROS(TIMESTAMP(`c`)) AS STRING)"##,
                r##"((extract(epoch FROM "c") * 1000000)::bigint)::text"##,
                r##"CAST(UNIX_MICROS(TIMESTAMP(`r`.`f`)) AS STRING)"##,
                r##"((extract(epoch FROM (("r" -> 'f') #>> '{}')::timestamp) * 1000000)::bigint)::text"##,
            ]
        );
    }

    #[test]
    fn fingerprint_spelling_of_date() {
        assert_eq!(
            spelled_both_ways(&DATE_SPELLING),
            [
                r##"CAST(UNIX_DATE(`c`) AS STRING)"##,
                r##"("c" - DATE '1970-01-01')::text"##,
                r##"CAST(UNIX_DATE(`r`.`f`) AS STRING)"##,
                r##"((("r" -> 'f') #>> '{}')::date - DATE '1970-01-01')::text"##,
            ]
        );
    }

    #[test]
    fn fingerprint_spelling_of_time() {
        assert_eq!(
            spelled_both_ways(&TIME_SPELLING),
            [
                r##"CAST(TIME_DIFF(`c`, TIME '00:00:00', MICROSECOND) AS STRING)"##,
                r##"((extract(epoch FROM "c") * 1000000)::bigint)::text"##,
                r##"CAST(TIME_DIFF(`r`.`f`, TIME '00:00:00', MICROSECOND) AS STRING)"##,
                r##"((extract(epoch FROM (("r" -> 'f') #>> '{}')::time) * 1000000)::bigint)::text"##,
            ]
        );
    }

    #[test]
    fn timestamps_decode_exactly() {
        let micros = |text| timestamp_micros(text, "t").ok();
        assert_eq!(micros("1640995200000000"), Some(1_640_995_200_000_000));
        assert_eq!(micros("1.6409952E9"), Some(1_640_995_200_000_000));
        assert_eq!(micros("1.640995200123456E9"), Some(1_640_995_200_123_456));
        assert_eq!(micros("1640995200.000001"), Some(1_640_995_200_000_001));
        assert_eq!(micros("-1.0E0"), Some(-1_000_000));
        assert_eq!(micros("yesterday"), None);
        assert_eq!(micros("1e400"), None);
    }

    #[test]
    fn timestamps_are_written_in_utc() {
        assert_eq!(
            timestamp("1795132800000001", "t").ok().as_deref(),
            Some("2026-11-20 00:00:00.000001+00")
        );
        assert_eq!(
            timestamp("-62135596800000000", "t").ok().as_deref(),
            Some("0001-01-01 00:00:00.000000+00")
        );
        let mut json = String::new();
        timestamp_json("1795132800000001", "t", &mut json).expect("valid");
        assert_eq!(json, "\"2026-11-20T00:00:00.000001Z\"");
    }

    #[test]
    fn calendar_values_are_checked() {
        assert!(date("2026-11-20", "d").is_ok());
        assert!(date("2026-02-30", "d").is_err());
        assert!(datetime("2026-11-20T23:59:59.999999", "d").is_ok());
        assert!(datetime("2026-11-20 00:00:00", "d").is_ok());
        assert!(time("23:59:59.999999", "t").is_ok());
        assert!(time("24:00:01", "t").is_err());
    }
}
