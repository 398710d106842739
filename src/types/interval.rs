//! INTERVAL → interval. BigQuery's canonical text is `[-]Y-M [-]D [-]H:M:S[.F]`, a sign per
//! part (years and months, days, time); PostgreSQL gets the same parts spelled out, each
//! with its sign, so that no DateStyle or IntervalStyle reinterprets them.

use super::bad_value;
use crate::error::SyncResult;

pub fn to_postgres(text: &str, column: &str) -> SyncResult<String> {
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
    let fraction = if fraction.is_empty() {
        String::new()
    } else {
        format!(".{fraction}")
    };
    Ok(format!(
        "{ym_sign}{years} years {ym_sign}{months} months {day_sign}{days} days \
         {time_sign}{hours} hours {time_sign}{minutes} minutes {time_sign}{whole_seconds}{fraction} seconds"
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
        assert!(to_postgres("P1Y", "i").is_err());
        assert!(to_postgres("1-2 3 4:5", "i").is_err());
    }
}
