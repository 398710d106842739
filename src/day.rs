//! A UTC day, the unit of every sync: the rows with `block_timestamp` in
//! [day 00:00:00 UTC, day+1 00:00:00 UTC), whatever the session's TimeZone.

use crate::error::{SyncError, SyncResult};
use chrono::{Datelike, Days, NaiveDate, Utc};
use pgrx::datum::{Date, TimestampWithTimeZone};
use std::fmt;

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;
/// Microseconds from 1970-01-01 (Unix) to 2000-01-01 (PostgreSQL's epoch).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800 * 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyncDay(NaiveDate);

impl SyncDay {
    pub fn from_pg(date: Option<Date>, argument: &str) -> SyncResult<Self> {
        let date = date.ok_or_else(|| {
            SyncError::invalid_argument(
                format!("{argument} must not be NULL"),
                "Pass a date, e.g. current_date - 1.",
            )
        })?;
        if !date.is_finite() {
            return Err(SyncError::invalid_argument(
                format!("{argument} must be a finite date"),
                "Pass a calendar day, e.g. '2026-11-14'.",
            ));
        }
        let unix_days = i64::from(date.to_unix_epoch_days());
        NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(unix_days)))
            .filter(|day| (1..=9999).contains(&day.year()))
            .map(Self)
            .ok_or_else(|| {
                SyncError::invalid_argument(
                    format!("{argument} is outside BigQuery's range of days"),
                    "BigQuery's DATE and TIMESTAMP hold days from 0001-01-01 to 9999-12-31; pass a day in that range.",
                )
            })
    }

    /// Refuses days that have not begun yet in UTC; today (a partial day) is allowed.
    pub fn not_in_future(self, argument: &str) -> SyncResult<Self> {
        let today = Utc::now().date_naive();
        if self.0 > today {
            return Err(SyncError::invalid_argument(
                format!("{argument} {self} is in the future (today is {today} UTC)"),
                "Sync days up to today; the nightly job syncs current_date - 1.",
            ));
        }
        Ok(self)
    }

    pub fn next(self) -> Option<Self> {
        self.0.checked_add_days(Days::new(1)).map(Self)
    }

    pub fn days_until(self, later: Self) -> i64 {
        (later.0 - self.0).num_days()
    }

    pub fn start_unix_micros(self) -> i64 {
        self.0
            .signed_duration_since(NaiveDate::default())
            .num_days()
            * MICROS_PER_DAY
    }

    pub fn end_unix_micros(self) -> i64 {
        self.start_unix_micros() + MICROS_PER_DAY
    }

    pub fn to_pg(self) -> Date {
        let days = self
            .0
            .signed_duration_since(NaiveDate::default())
            .num_days();
        Date::saturating_from_raw((days - PG_EPOCH_OFFSET_MICROS / MICROS_PER_DAY) as i32)
    }

    pub fn start(self) -> TimestampWithTimeZone {
        timestamptz_from_unix_micros(self.start_unix_micros())
    }

    pub fn end(self) -> TimestampWithTimeZone {
        timestamptz_from_unix_micros(self.end_unix_micros())
    }
}

impl fmt::Display for SyncDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

pub fn timestamptz_from_unix_micros(micros: i64) -> TimestampWithTimeZone {
    let pg_micros = micros - PG_EPOCH_OFFSET_MICROS;
    TimestampWithTimeZone::try_from(pg_micros).unwrap_or_else(|_| {
        if pg_micros < 0 {
            TimestampWithTimeZone::negative_infinity()
        } else {
            TimestampWithTimeZone::positive_infinity()
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn day(year: i32, month: u32, day: u32) -> SyncDay {
        SyncDay(NaiveDate::from_ymd_opt(year, month, day).expect("valid date"))
    }

    #[test]
    fn bounds_are_utc_midnights() {
        let day = day(2026, 11, 20);
        assert_eq!(day.start_unix_micros(), 1_795_132_800_000_000);
        assert_eq!(
            day.end_unix_micros() - day.start_unix_micros(),
            MICROS_PER_DAY
        );
        assert_eq!(day.to_string(), "2026-11-20");
    }
}
