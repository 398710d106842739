//! One day, end to end: BigQuery's result pages stream into the day replace, and the
//! attempt goes into the ledger.

use crate::bigquery::pages::{Delivery, ResultStream};
use crate::bigquery::{errors::bad_response, query};
use crate::day::SyncDay;
use crate::error::{SyncError, SyncResult};
use crate::ledger::{Attempt, LoadFigures};
use crate::load::copy_text::RowEncoder;
use crate::load::day_replace::{lock_day, replace_day};
use crate::mirror::{Mirror, MirrorPlan};
use crate::settings::Settings;
use crate::subtransaction::{self, UnitFailure};
use crate::verify;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

pub struct DayOutcome {
    pub day: SyncDay,
    pub figures: LoadFigures,
    pub seconds: f64,
}

/// One attempt at a day, in its own subtransaction: the source's schema and the target
/// (the first time), the lock, the load, and the ledger. On failure the day is as it was,
/// the failure is in the ledger, and the caller decides whether to raise it.
pub fn sync_day(
    settings: &Settings,
    plan: &mut MirrorPlan,
    day: SyncDay,
) -> Result<DayOutcome, UnitFailure> {
    let started = Instant::now();
    let attempt = Attempt::open(day, &plan.ledger_name, &plan.source_name());
    let loaded = subtransaction::run(|| {
        let mirror = plan.prepare(settings)?;
        let added = std::mem::take(&mut mirror.target.added_columns);
        lock_day(mirror, day)?;
        let mut figures = match unchanged_day(settings, mirror, day)? {
            Some(figures) => figures,
            None => load_day(settings, mirror, day)?,
        };
        if !added.is_empty() {
            let added = added.join(", ");
            pgrx::notice!(
                "token_sync: the source {} gained columns; added to {}: {added}",
                mirror.source.table.display(),
                mirror.target.qualified_name
            );
            figures.schema_changes = Some(format!("added {added}"));
        }
        attempt.record_success(&figures)?;
        Ok(figures)
    });
    match loaded {
        Ok(figures) => Ok(DayOutcome {
            day,
            figures,
            seconds: started.elapsed().as_secs_f64(),
        }),
        Err(failure) => {
            plan.forget();
            attempt.record_failure(&failure.message());
            Err(failure)
        }
    }
}

/// The day's figures if it already holds exactly BigQuery's rows (the comparison of
/// `token_verify_day`): rewriting it would change nothing, yet leave a dead tuple and WAL
/// behind for every row. A day that holds no rows is a first load, with nothing to compare;
/// a table whose columns cannot all be fingerprinted is always rewritten.
fn unchanged_day(
    settings: &Settings,
    mirror: &Mirror,
    day: SyncDay,
) -> SyncResult<Option<LoadFigures>> {
    if !settings.skip_unchanged {
        return Ok(None);
    }
    let fingerprint = verify::Fingerprint::of(&mirror.source);
    let local = verify::local_summary(&mirror.source, &fingerprint, &mirror.target, day)?;
    if local.rows == 0 {
        return Ok(None);
    }
    let (remote, job) = verify::bigquery_summary(settings, &mirror.source, &fingerprint, day)?;
    Ok((remote == local).then_some(LoadFigures {
        rows_loaded: local.rows,
        rows_reported: remote.rows,
        rows_nul_stripped: 0,
        bytes_billed: job.bytes_billed,
        job_id: job.job_id,
        unchanged: true,
        schema_changes: None,
    }))
}

fn load_day(settings: &Settings, mirror: &Mirror, day: SyncDay) -> SyncResult<LoadFigures> {
    let mut stream = ResultStream::start(
        settings,
        query::day_rows(settings, &mirror.source, day),
        RowEncoder::new(&mirror.source, &mirror.target.not_null, day),
    )?;
    let summary = match stream.next()? {
        Some(Delivery::Started(summary)) => summary,
        _ => return Err(bad_response("BigQuery's result ended before it began")),
    };
    let counts = Rc::new(Cell::new((0u64, 0u64)));
    let pages = counts.clone();
    let stored = replace_day(
        mirror,
        day,
        Box::new(move || match stream.next()? {
            Some(Delivery::Page(page)) => {
                let (rows, nul_stripped) = pages.get();
                pages.set((rows + page.rows, nul_stripped + page.nul_stripped_rows));
                Ok(Some(page.bytes))
            }
            Some(Delivery::Started(_)) => Err(bad_response("BigQuery's result began twice")),
            None => Ok(None),
        }),
    )?;
    let (received, nul_stripped) = counts.get();
    if received != summary.total_rows || stored != received {
        return Err(SyncError::bad_source_data(
            format!(
                "BigQuery reported {} rows for {day} but {received} arrived",
                summary.total_rows
            ),
            "Nothing was written for the day. Run it again; if it persists, the source is changing under the query.",
        )
        .with_detail(format!("job {}, {stored} rows stored", summary.job_id)));
    }
    Ok(LoadFigures {
        rows_loaded: stored as i64,
        rows_reported: summary.total_rows as i64,
        rows_nul_stripped: nul_stripped as i64,
        bytes_billed: summary.bytes_billed,
        job_id: summary.job_id,
        unchanged: false,
        schema_changes: None,
    })
}
