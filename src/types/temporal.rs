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

/// PostgreSQL counts dates and times from 2000-01-01 (its binary forms are days or
/// microseconds since then).
const POSTGRES_EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(day) => day,
    None => panic!("2000-01-01 is a date"),
};
const POSTGRES_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// The microseconds of the text's fraction of a second (the digits after its last point),
/// rounded as PostgreSQL's input functions round them: `rint(strtod(".F") * 1000000)`.
fn fraction_micros(text: &str) -> i64 {
    match text.rsplit_once('.') {
        Some((_, digits)) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            let fraction: f64 = format!("0.{digits}").parse().unwrap_or(0.0);
            (fraction * 1_000_000.0).round_ties_even() as i64
        }
        _ => 0,
    }
}

/// BigQuery's dates start at year 1; PostgreSQL's text input refuses year 0 and before,
/// which chrono reads.
fn check_year(date: NaiveDate, text: &str, column: &str, kind: &str) -> SyncResult<()> {
    if date.year() < 1 {
        return Err(bad_value(column, text, kind));
    }
    Ok(())
}

/// timestamp with time zone's binary form: microseconds since 2000-01-01 00:00 UTC.
pub fn timestamp_send(text: &str, column: &str, out: &mut Vec<u8>) -> SyncResult<()> {
    let micros = timestamp_micros(text, column)?;
    moment(micros, text, column)?;
    out.extend_from_slice(&(micros - POSTGRES_EPOCH_UNIX_MICROS).to_be_bytes());
    Ok(())
}

/// timestamp without time zone's binary form: microseconds since 2000-01-01 00:00.
pub fn datetime_send(text: &str, column: &str, out: &mut Vec<u8>) -> SyncResult<()> {
    let moment = parse_datetime(text, column)?;
    check_year(moment.date(), text, column, "DATETIME")?;
    let since = moment
        .date()
        .signed_duration_since(POSTGRES_EPOCH)
        .num_days()
        * 86_400_000_000
        + i64::from(moment.num_seconds_from_midnight()) * 1_000_000
        + fraction_micros(text);
    out.extend_from_slice(&since.to_be_bytes());
    Ok(())
}

/// date's binary form: days since 2000-01-01.
pub fn date_send(text: &str, column: &str, out: &mut Vec<u8>) -> SyncResult<()> {
    let date = parse_date(text, column)?;
    check_year(date, text, column, "DATE")?;
    let days = date.signed_duration_since(POSTGRES_EPOCH).num_days();
    let days = i32::try_from(days).map_err(|_| bad_value(column, text, "DATE"))?;
    out.extend_from_slice(&days.to_be_bytes());
    Ok(())
}

/// time without time zone's binary form: microseconds since midnight.
pub fn time_send(text: &str, column: &str, out: &mut Vec<u8>) -> SyncResult<()> {
    let time = NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .map_err(|_| bad_value(column, text, "TIME"))?;
    let micros = i64::from(time.num_seconds_from_midnight()) * 1_000_000 + fraction_micros(text);
    out.extend_from_slice(&micros.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::tests::spelled_both_ways;

    fn sent(send: fn(&str, &str, &mut Vec<u8>) -> SyncResult<()>, text: &str) -> i64 {
        let mut out = Vec::new();
        send(text, "c", &mut out).expect("sends");
        match out.len() {
            4 => i64::from(i32::from_be_bytes([out[0], out[1], out[2], out[3]])),
            _ => i64::from_be_bytes(out.try_into().expect("eight bytes")),
        }
    }

    #[test]
    fn binary_forms_count_from_2000() {
        // As PostgreSQL's timestamptz_send, timestamp_send, date_send and time_send give them.
        assert_eq!(sent(timestamp_send, "946684800000000"), 0);
        assert_eq!(
            sent(timestamp_send, "1795132800000001"),
            848_448_000_000_001
        );
        assert_eq!(
            sent(timestamp_send, "-62135596800000000"),
            -63_082_281_600_000_000
        );
        assert_eq!(sent(datetime_send, "2000-01-01T00:00:00"), 0);
        assert_eq!(
            sent(datetime_send, "9999-12-31T23:59:59.999999"),
            252_455_615_999_999_999
        );
        assert_eq!(
            sent(datetime_send, "1999-12-31 23:59:59.0000005"),
            -1_000_000
        );
        assert_eq!(sent(datetime_send, "1999-12-31 23:59:59.0000015"), -999_998);
        // As PostgreSQL rounds the fraction's double: .0001255 is 125 microseconds there.
        assert_eq!(sent(datetime_send, "2000-01-01 00:00:00.0001255"), 125);
        assert_eq!(sent(time_send, "00:00:00.0001255"), 125);
        assert_eq!(sent(time_send, "00:00:00.123456789"), 123_457);
        assert_eq!(sent(date_send, "0001-01-01"), -730_119);
        assert_eq!(sent(date_send, "2026-11-20"), 9_820);
        assert_eq!(sent(time_send, "23:59:59.999999"), 86_399_999_999);
        assert_eq!(sent(time_send, "00:00:00"), 0);
        let mut out = Vec::new();
        assert!(date_send("2026-13-01", "c", &mut out).is_err());
        assert!(date_send("0000-01-01", "c", &mut out).is_err());
        assert!(datetime_send("0000-12-31T00:00:00", "c", &mut out).is_err());
        assert!(timestamp_send("not a time", "c", &mut out).is_err());
    }

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
