//! One day, end to end: BigQuery's result pages stream into the day replace, and the
//! attempt goes into the ledger.

use crate::bigquery::pages::{Delivery, ResultStream};
use crate::bigquery::{errors::bad_response, query};
use crate::day::{timestamptz_from_unix_micros, SyncDay};
use crate::error::{SyncError, SyncResult};
use crate::ledger::{self, Attempt, LoadFigures};
use crate::load::day_replace::DayWriter;
use crate::load::target::TargetTable;
use crate::settings::Settings;
use pgrx::datum::TimestampWithTimeZone;
use std::time::Instant;

pub struct DayOutcome {
    pub day: SyncDay,
    pub figures: LoadFigures,
    pub seconds: f64,
}

/// Loads the day and records the success in the ledger. A failure is returned untouched and
/// recorded by the caller, who decides what is rolled back.
pub fn sync_day(settings: &Settings, target: &TargetTable, day: SyncDay) -> SyncResult<DayOutcome> {
    let started = Instant::now();
    let started_at = now();
    let figures = load_day(settings, target, day)?;
    ledger::record(&Attempt {
        day,
        target_table: &target.qualified_name,
        started_at,
        outcome: Ok(figures.clone()),
    })?;
    Ok(DayOutcome {
        day,
        figures,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn load_day(settings: &Settings, target: &TargetTable, day: SyncDay) -> SyncResult<LoadFigures> {
    let mut stream = ResultStream::start(settings, query::day_rows(settings, day))?;
    let summary = match stream.next()? {
        Some(Delivery::Started(summary)) => summary,
        _ => return Err(bad_response("BigQuery's result ended before it began")),
    };
    let mut writer = DayWriter::replace_day(target, day)?;
    let mut nul_stripped = 0;
    while let Some(delivery) = stream.next()? {
        match delivery {
            Delivery::Page(page) => {
                nul_stripped += page.nul_stripped_rows;
                writer.write(page)?;
            }
            Delivery::Started(_) => return Err(bad_response("BigQuery's result began twice")),
        }
    }
    if writer.rows_written != summary.total_rows {
        return Err(SyncError::bad_source_data(
            format!(
                "BigQuery reported {} rows for {day} but {} arrived",
                summary.total_rows, writer.rows_written
            ),
            "Nothing was written for the day. Run it again; if it persists, the source is changing under the query.",
        )
        .with_detail(format!("job {}", summary.job_id)));
    }
    Ok(LoadFigures {
        rows_loaded: writer.rows_written as i64,
        rows_reported: summary.total_rows as i64,
        rows_nul_stripped: nul_stripped as i64,
        bytes_billed: summary.bytes_billed,
        job_id: summary.job_id,
    })
}

/// Records a failed attempt. Called after the attempt's own writes were rolled back.
pub fn record_failure(
    target: &TargetTable,
    day: SyncDay,
    started_at: TimestampWithTimeZone,
    error: &str,
) -> SyncResult<()> {
    ledger::record(&Attempt {
        day,
        target_table: &target.qualified_name,
        started_at,
        outcome: Err(error.to_string()),
    })
}

pub fn now() -> TimestampWithTimeZone {
    timestamptz_from_unix_micros(chrono::Utc::now().timestamp_micros())
}
