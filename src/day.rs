//! A UTC day, the unit of every sync: the rows whose time column (a TIMESTAMP, DATETIME or
//! DATE) falls in [day 00:00:00 UTC, day+1 00:00:00 UTC), whatever the session's TimeZone.

use crate::error::{SyncError, SyncResult};
use crate::quote;
use crate::types::value::Value;
use crate::types::{temporal, Column, Kind, Mode, SourceSchema};
use chrono::{Datelike, Days, NaiveDate, Utc};
use pgrx::datum::{Date, TimestampWithTimeZone};
use pgrx::PgSqlErrorCode;
use std::fmt;

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;
const MICROS_PER_HOUR: i64 = 3_600 * 1_000_000;
/// The hours of a day, by which a re-sync finds what changed (`crate::day_digest`).
pub const HOURS: usize = 24;
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

    /// The day `days` days later.
    pub fn after(self, days: u64) -> Option<Self> {
        self.0.checked_add_days(Days::new(days)).map(Self)
    }

    /// A day as `Display` writes it (YYYY-MM-DD).
    pub fn parse(text: &str) -> SyncResult<Self> {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Self)
            .map_err(|error| {
                SyncError::invalid_argument(
                    format!("\"{text}\" is not a day: {error}"),
                    "Give a day as YYYY-MM-DD.",
                )
            })
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

    /// The start of the day's `hour` (0 to 24, the last being the day's end), in UTC.
    pub fn hour_start(self, hour: usize) -> TimestampWithTimeZone {
        timestamptz_from_unix_micros(self.start_unix_micros() + hour as i64 * MICROS_PER_HOUR)
    }
}

impl fmt::Display for SyncDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// The column a table's days are cut by, and how each side selects a day with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeColumn {
    pub name: String,
    kind: TimeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeKind {
    Timestamp,
    Datetime,
    Date,
}

impl TimeColumn {
    /// `name`, or else the table's partitioning column: it must be a TIMESTAMP, DATETIME or
    /// DATE column that is not an array.
    pub fn choose(schema: &SourceSchema, name: Option<&str>, table: &str) -> SyncResult<Self> {
        let name = name.or(schema.partitioning_column.as_deref()).ok_or_else(|| {
            SyncError::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("the source table {table} is not partitioned by a column, and no time column was given"),
                "Register the table with the column its days are cut by: token_sync.add_table(source_table, time_column => 'block_timestamp').",
            )
        })?;
        let column = schema.column(name).ok_or_else(|| {
            SyncError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("the source table {table} has no column \"{name}\""),
                "Name a TIMESTAMP, DATETIME or DATE column of the table as its time column.",
            )
        })?;
        Self::of(column).ok_or_else(|| {
            SyncError::new(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "the column \"{name}\" of {table} is {}, not a TIMESTAMP, DATETIME or DATE",
                    column.pg_type()
                ),
                "Name a TIMESTAMP, DATETIME or DATE column of the table as its time column.",
            )
        })
    }

    fn of(column: &Column) -> Option<Self> {
        let kind = match (&column.kind, column.mode) {
            (_, Mode::Repeated) => return None,
            (Kind::Timestamp, _) => TimeKind::Timestamp,
            (Kind::Datetime, _) => TimeKind::Datetime,
            (Kind::Date, _) => TimeKind::Date,
            _ => return None,
        };
        Some(Self {
            name: column.name.clone(),
            kind,
        })
    }

    /// GoogleSQL selecting the day given as the DATE parameter `@day`; a range on the
    /// column, so that BigQuery prunes to the day's partition.
    pub fn bigquery_filter(&self) -> String {
        let column = quote::bigquery_ident(&self.name);
        match self.kind {
            TimeKind::Timestamp => format!(
                "{column} >= TIMESTAMP(@day) AND {column} < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))"
            ),
            TimeKind::Datetime => format!(
                "{column} >= DATETIME(@day) AND {column} < DATETIME(DATE_ADD(@day, INTERVAL 1 DAY))"
            ),
            TimeKind::Date => format!("{column} = @day"),
        }
    }

    /// The same range as a read session's row restriction, which takes no parameters:
    /// literals only, the day's own text (a validated date) spliced in.
    pub fn bigquery_restriction(&self, day: SyncDay) -> String {
        let column = quote::bigquery_ident(&self.name);
        let next = day.next().unwrap_or(day);
        match self.kind {
            TimeKind::Timestamp => format!(
                "{column} >= TIMESTAMP '{day} 00:00:00+00' AND {column} < TIMESTAMP '{next} 00:00:00+00'"
            ),
            TimeKind::Datetime => format!(
                "{column} >= DATETIME '{day} 00:00:00' AND {column} < DATETIME '{next} 00:00:00'"
            ),
            TimeKind::Date => format!("{column} = DATE '{day}'"),
        }
    }

    /// The column's value as microseconds since the Unix epoch, in GoogleSQL.
    pub fn bigquery_unix_micros(&self) -> String {
        let expression = quote::bigquery_ident(&self.name);
        match self.kind {
            TimeKind::Timestamp => format!("UNIX_MICROS({expression})"),
            TimeKind::Datetime | TimeKind::Date => format!("UNIX_MICROS(TIMESTAMP({expression}))"),
        }
    }

    /// The column's name quoted for PostgreSQL.
    pub fn postgres_name(&self) -> String {
        quote::pg_ident(&self.name)
    }

    /// PostgreSQL selecting the day between the timestamptz parameters `$first` (the day's
    /// start, `SyncDay::start`) and the next one (its end).
    pub fn postgres_filter(&self, first: usize) -> String {
        let quoted = self.postgres_name();
        let (start, end) = (format!("${first}"), format!("${}", first + 1));
        let bound = |parameter: &str| match self.kind {
            TimeKind::Timestamp => parameter.to_string(),
            TimeKind::Datetime => format!("({parameter} AT TIME ZONE 'UTC')"),
            TimeKind::Date => format!("({parameter} AT TIME ZONE 'UTC')::date"),
        };
        format!(
            "{quoted} >= {} AND {quoted} < {}",
            bound(&start),
            bound(&end)
        )
    }

    /// The hour of the day (0 to 23, UTC) a value BigQuery sent for this column falls in;
    /// None if it is outside the day. A DATE has no hours: hour 0.
    pub fn hour_within(&self, value: &Value<'_>, day: SyncDay) -> SyncResult<Option<usize>> {
        let Some(text) = value.as_text() else {
            return Ok(None);
        };
        let micros_into_day = match self.kind {
            TimeKind::Timestamp => {
                temporal::timestamp_micros(text, &self.name)? - day.start_unix_micros()
            }
            TimeKind::Datetime => {
                let moment = temporal::parse_datetime(text, &self.name)?;
                if moment.date() != day.0 {
                    return Ok(None);
                }
                i64::from(chrono::Timelike::hour(&moment)) * MICROS_PER_HOUR
            }
            TimeKind::Date => {
                return Ok((temporal::parse_date(text, &self.name)? == day.0).then_some(0))
            }
        };
        Ok((0..MICROS_PER_DAY)
            .contains(&micros_into_day)
            .then_some((micros_into_day / MICROS_PER_HOUR) as usize))
    }

    /// Whether a day of this column is cut into hours that `postgres_filter` can select.
    pub fn has_hours(&self) -> bool {
        self.kind != TimeKind::Date
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

    #[test]
    fn a_value_falls_in_its_utc_hour_of_the_day_or_in_none() {
        let day = day(2026, 11, 20);
        let column = |kind| TimeColumn {
            name: "t".into(),
            kind,
        };
        let hour = |kind, text: &str| {
            column(kind)
                .hour_within(&Value::Text(text.to_string().into()), day)
                .expect("parses")
        };
        // TIMESTAMPs come as Unix microseconds (or float seconds).
        let at = |micros: i64| (day.start_unix_micros() + micros).to_string();
        assert_eq!(hour(TimeKind::Timestamp, &at(0)), Some(0));
        assert_eq!(
            hour(TimeKind::Timestamp, &at(14 * MICROS_PER_HOUR - 1)),
            Some(13)
        );
        assert_eq!(hour(TimeKind::Timestamp, &at(MICROS_PER_DAY - 1)), Some(23));
        assert_eq!(hour(TimeKind::Timestamp, &at(MICROS_PER_DAY)), None);
        assert_eq!(hour(TimeKind::Timestamp, &at(-1)), None);
        assert_eq!(hour(TimeKind::Timestamp, "1.7951796E9"), Some(13));
        assert_eq!(hour(TimeKind::Datetime, "2026-11-20T07:30:00"), Some(7));
        assert_eq!(hour(TimeKind::Datetime, "2026-11-21T00:00:00"), None);
        assert_eq!(hour(TimeKind::Date, "2026-11-20"), Some(0));
        assert_eq!(hour(TimeKind::Date, "2026-11-21"), None);
        assert_eq!(
            column(TimeKind::Timestamp)
                .hour_within(&Value::Null, day)
                .ok(),
            Some(None)
        );
        assert!(column(TimeKind::Datetime).has_hours() && !column(TimeKind::Date).has_hours());
    }
}
