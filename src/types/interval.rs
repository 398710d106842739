//! INTERVAL → interval. BigQuery's canonical text is `[-]Y-M [-]D [-]H:M:S[.F]`, a sign per
//! part (years and months, days, time); PostgreSQL gets the same parts spelled out, each
//! with its sign, so that no DateStyle or IntervalStyle reinterprets them.
//!
//! Both keep an interval as months, days and microseconds, each with its own sign; the
//! fingerprint spells it `months,days,microseconds` (`canonical`).

use super::{bad_value, InStruct, Spelling};
use crate::error::SyncResult;

/// Months, days, microseconds. EXTRACT's MICROSECOND is the fraction of the second in
/// BigQuery, and the seconds with it in DuckDB (the emulator): MOD takes either. Inside a
/// STRUCT the member holds BigQuery's text, spelled by token_sync.canonical_interval.
pub const SPELLING: Spelling = Spelling {
    bigquery: "CONCAT(CAST(EXTRACT(YEAR FROM {v}) * 12 + EXTRACT(MONTH FROM {v}) AS STRING), ',', \
               CAST(EXTRACT(DAY FROM {v}) AS STRING), ',', \
               CAST(((EXTRACT(HOUR FROM {v}) * 60 + EXTRACT(MINUTE FROM {v})) * 60 + EXTRACT(SECOND FROM {v})) \
               * 1000000 + MOD(EXTRACT(MICROSECOND FROM {v}), 1000000) AS STRING))",
    postgres: "(extract(year FROM {v}) * 12 + extract(month FROM {v}))::bigint || ',' || \
               extract(day FROM {v})::bigint || ',' || (extract(hour FROM {v}) * 3600000000 \
               + extract(minute FROM {v}) * 60000000 + extract(microseconds FROM {v}))::bigint",
    in_struct: InStruct::Own {
        bigquery: "{s}",
        postgres: "token_sync.canonical_interval(({m} #>> '{}'))",
    },
};

/// An interval's parts as BigQuery's text gives them, each sign applied to its part.
struct Parts<'t> {
    year_month_sign: &'static str,
    years: &'t str,
    months: &'t str,
    day_sign: &'static str,
    days: &'t str,
    time_sign: &'static str,
    hours: &'t str,
    minutes: &'t str,
    whole_seconds: &'t str,
    /// The digits after the point, possibly none.
    fraction: &'t str,
}

fn parse<'t>(text: &'t str, column: &str) -> SyncResult<Parts<'t>> {
    let invalid = || bad_value(column, text, "INTERVAL");
    let mut parts = text.split(' ');
    let (Some(year_month), Some(days), Some(time), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let (ym_sign, year_month) = signed(year_month);
    let (years, months) = year_month.split_once('-').ok_or_else(invalid)?;
    let (day_sign, days) = signed(days);
    let (time_sign, time) = signed(time);
    let mut clock = time.splitn(3, ':');
    let (Some(hours), Some(minutes), Some(seconds)) = (clock.next(), clock.next(), clock.next())
    else {
        return Err(invalid());
    };
    let (whole_seconds, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let numbers = [years, months, days, hours, minutes, whole_seconds];
    if numbers
        .iter()
        .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    Ok(Parts {
        year_month_sign: ym_sign,
        years,
        months,
        day_sign,
        days,
        time_sign,
        hours,
        minutes,
        whole_seconds,
        fraction,
    })
}

pub fn to_postgres(text: &str, column: &str) -> SyncResult<String> {
    let p = parse(text, column)?;
    let (ym, d, t) = (p.year_month_sign, p.day_sign, p.time_sign);
    // Without trailing zeros: the Storage Read API's 6.500000 and a query's 6.5 become the
    // same COPY bytes, which the hour digests of a re-sync compare (`crate::day_digest`).
    let fraction = match p.fraction.trim_end_matches('0') {
        "" => String::new(),
        digits => format!(".{digits}"),
    };
    Ok(format!(
        "{ym}{} years {ym}{} months {d}{} days {t}{} hours {t}{} minutes {t}{}{fraction} seconds",
        p.years, p.months, p.days, p.hours, p.minutes, p.whole_seconds
    ))
}

/// The fingerprint's text of an interval given as BigQuery's text: `months,days,microseconds`.
pub fn canonical(text: &str, column: &str) -> SyncResult<String> {
    let p = parse(text, column)?;
    let too_long = || bad_value(column, text, "INTERVAL");
    let number = |digits: &str| digits.parse::<i128>().map_err(|_| too_long());
    let signed = |sign: &str, value: i128| if sign == "-" { -value } else { value };
    if p.fraction.len() > 6 {
        return Err(too_long());
    }
    let micros_of_fraction = number(&format!("{:0<6}", p.fraction))?;
    let months = number(p.years)? * 12 + number(p.months)?;
    let micros = ((number(p.hours)? * 60 + number(p.minutes)?) * 60 + number(p.whole_seconds)?)
        * 1_000_000
        + micros_of_fraction;
    Ok(format!(
        "{},{},{}",
        signed(p.year_month_sign, months),
        signed(p.day_sign, number(p.days)?),
        signed(p.time_sign, micros)
    ))
}

fn signed(part: &str) -> (&'static str, &str) {
    match part.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", part),
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
                r##"CONCAT(CAST(EXTRACT(YEAR FROM `c`) * 12 + EXTRACT(MONTH FROM `c`) AS STRING), ',', CAST(EXTRACT(DAY FROM `c`) AS STRING), ',', CAST(((EXTRACT(HOUR FROM `c`) * 60 + EXTRACT(MINUTE FROM `c`)) * 60 + EXTRACT(SECOND FROM `c`)) * 1000000 + MOD(EXTRACT(MICROSECOND FROM `c`), 1000000) AS STRING))"##,
                r##"(extract(year FROM "c") * 12 + extract(month FROM "c"))::bigint || ',' || extract(day FROM "c")::bigint || ',' || (extract(hour FROM "c") * 3600000000 + extract(minute FROM "c") * 60000000 + extract(microseconds FROM "c"))::bigint"##,
                r##"CONCAT(CAST(EXTRACT(YEAR FROM `r`.`f`) * 12 + EXTRACT(MONTH FROM `r`.`f`) AS STRING), ',', CAST(EXTRACT(DAY FROM `r`.`f`) AS STRING), ',', CAST(((EXTRACT(HOUR FROM `r`.`f`) * 60 + EXTRACT(MINUTE FROM `r`.`f`)) * 60 + EXTRACT(SECOND FROM `r`.`f`)) * 1000000 + MOD(EXTRACT(MICROSECOND FROM `r`.`f`), 1000000) AS STRING))"##,
                r##"token_sync.canonical_interval((("r" -> 'f') #>> '{}'))"##,
            ]
        );
    }

    #[test]
    fn every_part_keeps_its_sign() {
        assert_eq!(
            to_postgres("1-2 3 4:5:6.789", "i").ok().as_deref(),
            Some("1 years 2 months 3 days 4 hours 5 minutes 6.789 seconds")
        );
        assert_eq!(
            to_postgres("-1-2 -3 -4:5:6", "i").ok().as_deref(),
            Some("-1 years -2 months -3 days -4 hours -5 minutes -6 seconds")
        );
        assert_eq!(
            to_postgres("0-0 0 87840000:0:0", "i").ok().as_deref(),
            Some("0 years 0 months 0 days 87840000 hours 0 minutes 0 seconds")
        );
        assert_eq!(
            to_postgres("1-2 3 4:5:6.500000", "i").ok(),
            to_postgres("1-2 3 4:5:6.5", "i").ok()
        );
        assert_eq!(
            to_postgres("0-0 0 0:0:7.000000", "i").ok().as_deref(),
            Some("0 years 0 months 0 days 0 hours 0 minutes 7 seconds")
        );
        assert!(to_postgres("P1Y", "i").is_err());
        assert!(canonical("1-2 3", "i").is_err());
        assert!(to_postgres("1-2 3 4:5", "i").is_err());
    }

    #[test]
    fn the_canonical_text_counts_months_days_and_microseconds() {
        let canonical = |text| canonical(text, "i").ok();
        assert_eq!(
            canonical("1-2 3 4:5:6.789").as_deref(),
            Some("14,3,14706789000")
        );
        assert_eq!(
            canonical("-1-2 -3 -4:5:6").as_deref(),
            Some("-14,-3,-14706000000")
        );
        assert_eq!(canonical("0-0 0 0:0:0.000001").as_deref(), Some("0,0,1"));
        assert_eq!(
            canonical("-10000-0 -3660000 -87840000:0:0").as_deref(),
            Some("-120000,-3660000,-316224000000000000")
        );
        assert_eq!(canonical("0-0 0 0:0:0.1234567"), None);
    }
}
