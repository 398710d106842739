//! One day, end to end: BigQuery's result pages stream into the day replace, and the
//! attempt goes into the ledger.

use crate::bigquery::context::BigQuery;
use crate::bigquery::copy_rows::RowEncoder;
use crate::bigquery::delivery::{Delivery, JobSummary, ReadPath, ResultStream};
use crate::bigquery::partitions;
use crate::bigquery::{errors::bad_response, query, rest, storage};
use crate::day::SyncDay;
use crate::error::{SyncError, SyncResult};
use crate::ledger::{self, Attempt, LastLoad, LoadFigures, Unchanged};
use crate::load::copy_from::format_for;
use crate::load::day_replace::{lock_day, replace_day, rows_in_day, rows_seen_after_copy, Staging};
use crate::load::target::Access;
use crate::mirror::{Mirror, MirrorPlan};
use crate::restricted::Restricted;
use crate::settings::ReadApi;
use crate::subtransaction::{self, UnitFailure};
use crate::types::CopyFormat;
use crate::verify;
use pgrx::PgSqlErrorCode;
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
    bigquery: &BigQuery,
    plan: &mut MirrorPlan,
    day: SyncDay,
) -> Result<DayOutcome, UnitFailure> {
    let started = Instant::now();
    let _pinned = Restricted::search_path();
    let attempt = Attempt::open(day, &plan.ledger_name, &plan.source_name());
    let (ledger_name, source_name) = (plan.ledger_name.clone(), plan.source_name());
    let loaded = subtransaction::run(|| {
        let mirror = plan.prepare(bigquery)?;
        let added = std::mem::take(&mut mirror.target.added_columns);
        lock_day(&mirror.target, day)?;
        mirror.target.check_caller_may(Access::Replace)?;
        // A target that just gained columns holds none of their values: compare the day.
        let last_load = if bigquery.settings.skip_unchanged && added.is_empty() {
            ledger::last_load(&ledger_name, &source_name, day)?
        } else {
            None
        };
        let before_load = {
            let _owner = Restricted::as_owner_of(mirror.target.oid)?;
            before_load(bigquery, mirror, day, last_load)?
        };
        let mut figures = match before_load {
            BeforeLoad::Unchanged(figures) => figures,
            BeforeLoad::Write { billed } => {
                let staging = Staging::create(&mirror.source, &mirror.target)?;
                let mut figures = {
                    let _owner = Restricted::as_owner_of(mirror.target.oid)?;
                    load_day(bigquery, mirror, day, staging.as_ref())?
                };
                if let Some(staging) = staging {
                    staging.drop()?;
                }
                figures.bytes_billed = match (figures.bytes_billed, billed) {
                    (None, None) => None,
                    (load, before) => Some(load.unwrap_or(0) + before.unwrap_or(0)),
                };
                figures
            }
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

/// What a re-sync finds before it loads anything.
enum BeforeLoad {
    /// The day already holds exactly BigQuery's rows: rewriting it would change nothing, yet
    /// leave a dead tuple and WAL behind for every row.
    Unchanged(LoadFigures),
    /// The day is to be written; what finding so billed (a metadata or summary query).
    Write { billed: Option<i64> },
}

/// A day that holds no rows is a first load, with nothing to compare. Else first BigQuery's
/// metadata (`since_last_load`); where it cannot tell, the comparison of
/// `token_verify_day`, both sides at once.
fn before_load(
    bigquery: &BigQuery,
    mirror: &Mirror,
    day: SyncDay,
    last_load: Option<LastLoad>,
) -> SyncResult<BeforeLoad> {
    let nothing_billed = BeforeLoad::Write { billed: None };
    if !bigquery.settings.skip_unchanged {
        return Ok(nothing_billed);
    }
    let held = rows_in_day(&mirror.source, &mirror.target, day)?;
    if held == 0 {
        return Ok(nothing_billed);
    }
    match since_last_load(bigquery, mirror, day, held, last_load) {
        SinceLastLoad::Unwritten(figures) => return Ok(BeforeLoad::Unchanged(figures)),
        SinceLastLoad::Written { billed } => return Ok(BeforeLoad::Write { billed }),
        SinceLastLoad::Unknown => {}
    }
    let fingerprint = verify::Fingerprint::of(&mirror.source);
    let remote = verify::PendingSummary::start(bigquery, &mirror.source, &fingerprint, day)?;
    let local =
        verify::local_summary_before_load(&mirror.source, &fingerprint, &mirror.target, day)?;
    let (remote, job) = remote.wait()?;
    if remote != local {
        return Ok(BeforeLoad::Write {
            billed: job.bytes_billed,
        });
    }
    Ok(BeforeLoad::Unchanged(LoadFigures {
        rows_loaded: local.rows,
        rows_reported: remote.rows,
        rows_nul_stripped: 0,
        bytes_billed: job.bytes_billed,
        job_id: job.job_id,
        unchanged: Some(Unchanged::SameFingerprint),
        schema_changes: None,
        read_api: None,
        snapshot_micros: job.created_micros,
    }))
}

/// What BigQuery's metadata says of the day's partition since the last load read it.
enum SinceLastLoad {
    /// Not written to, and as many rows as the load left: the day is unchanged.
    Unwritten(LoadFigures),
    /// Written to since, or holding another count: the day is rewritten without comparing,
    /// which costs less than the comparison would (a summary query billed like the load,
    /// and every local row hashed) even when the write changed nothing.
    Written { billed: Option<i64> },
    /// The metadata cannot tell: the day is compared.
    Unknown,
}

/// One metadata query, no scan on either side. It can tell where each day of the source is a
/// partition, the last load said as of when it read the day and the day still holds that
/// load's rows. A row changed in the target without changing the count is not noticed
/// (`token_verify_day` compares everything). Metadata that cannot be read is Unknown, with
/// a NOTICE.
fn since_last_load(
    bigquery: &BigQuery,
    mirror: &Mirror,
    day: SyncDay,
    held: i64,
    last_load: Option<LastLoad>,
) -> SinceLastLoad {
    let Some(read_at) = last_load
        .filter(|last| last.rows == held)
        .and_then(|last| last.snapshot_micros)
    else {
        return SinceLastLoad::Unknown;
    };
    if !mirror.source.day_is_a_partition() {
        return SinceLastLoad::Unknown;
    }
    let (partition, job) = match partitions::read(bigquery, &mirror.source, day) {
        Ok(read) => read,
        Err(error) => {
            pgrx::notice!(
                "token_sync: BigQuery's metadata of the partition {day} of {} cannot be read ({}); comparing the day instead",
                mirror.source.table.display(),
                error.message
            );
            return SinceLastLoad::Unknown;
        }
    };
    // Strictly before: the read's time is cut to BigQuery's milliseconds.
    let unwritten = partition
        .modified_micros
        .is_some_and(|written| written < read_at);
    if !unwritten || partition.rows != held {
        return SinceLastLoad::Written {
            billed: job.bytes_billed,
        };
    }
    SinceLastLoad::Unwritten(LoadFigures {
        rows_loaded: held,
        rows_reported: partition.rows,
        rows_nul_stripped: 0,
        bytes_billed: job.bytes_billed,
        job_id: job.job_id,
        unchanged: Some(Unchanged::PartitionUnwritten),
        schema_changes: None,
        read_api: None,
        snapshot_micros: Some(read_at),
    })
}

/// Reads the day through the API `token_sync.read_api` chooses and replaces it.
fn load_day(
    bigquery: &BigQuery,
    mirror: &mut Mirror,
    day: SyncDay,
    staging: Option<&Staging>,
) -> SyncResult<LoadFigures> {
    let settings = &bigquery.settings;
    let through_storage = match settings.read_api {
        ReadApi::Storage => true,
        ReadApi::Auto => !mirror.storage_refused && settings.storage_api_url.is_some(),
        ReadApi::Query => false,
    };
    let format = format_for(&mirror.source.schema);
    let encoder =
        |mirror: &Mirror| RowEncoder::new(&mirror.source, &mirror.target.not_null, day, format);
    if through_storage {
        let mut stream = storage::start(bigquery, &mirror.source, day, encoder(mirror))?;
        match stream.next() {
            Ok(Some(Delivery::Started(summary))) => {
                return copy_day(mirror, day, staging, format, summary, stream)
            }
            Err(error) if settings.read_api == ReadApi::Auto && storage::falls_back(&error) => {
                pgrx::notice!(
                    "token_sync: BigQuery's Storage Read API cannot read {} ({}); reading through a query job instead",
                    mirror.source.table.display(),
                    error.message
                );
                mirror.storage_refused = true;
            }
            Err(error) => return Err(error),
            Ok(_) => {
                return Err(bad_response(
                    "BigQuery's read session ended before it began",
                ))
            }
        }
    }
    let mut stream = rest::pages::start(
        bigquery,
        query::day_rows(settings, &mirror.source, day),
        encoder(mirror),
    )?;
    match stream.next()? {
        Some(Delivery::Started(summary)) => copy_day(mirror, day, staging, format, summary, stream),
        _ => Err(bad_response("BigQuery's result ended before it began")),
    }
}

/// Replaces the day with the pages of `stream`, which has started as `summary` says, and
/// checks that every row the source reported arrived and was stored.
fn copy_day(
    mirror: &Mirror,
    day: SyncDay,
    staging: Option<&Staging>,
    format: CopyFormat,
    summary: JobSummary,
    mut stream: ResultStream,
) -> SyncResult<LoadFigures> {
    let counts = Rc::new(Cell::new((0u64, 0u64, summary.total_rows)));
    let pages = counts.clone();
    let stored = replace_day(
        &mirror.source,
        &mirror.target,
        day,
        staging,
        format,
        Box::new(move || match stream.next()? {
            Some(Delivery::Page(page)) => {
                let (rows, nul_stripped, reported) = pages.get();
                pages.set((
                    rows + page.rows,
                    nul_stripped + page.nul_stripped_rows,
                    reported,
                ));
                Ok(Some(page.bytes))
            }
            Some(Delivery::Ended { rows_reported }) => {
                let (rows, nul_stripped, _) = pages.get();
                pages.set((rows, nul_stripped, Some(rows_reported)));
                Ok(None)
            }
            Some(Delivery::Started(_)) => Err(bad_response("BigQuery's result began twice")),
            None => Ok(None),
        }),
    )?;
    let (received, nul_stripped, reported) = counts.get();
    let read = format!(
        "{} {}",
        match summary.read_path {
            ReadPath::Query => "job",
            ReadPath::Storage => "read session",
        },
        summary.job_id
    );
    if reported != Some(received) {
        let reported = reported.map_or("no count of".to_string(), |rows| rows.to_string());
        return Err(SyncError::bad_source_data(
            format!("BigQuery reported {reported} rows for {day} but {received} arrived"),
            "Nothing was written for the day. Run it again; if it persists, the source is changing under the query.",
        )
        .with_detail(format!("{read}, {stored} rows stored")));
    }
    let held = rows_seen_after_copy(&mirror.source, &mirror.target, day, stored, received)?;
    if stored != received || held != received as i64 {
        return Err(SyncError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "{received} rows of {day} arrived and COPY stored {stored}, but the target table {} holds {held} rows of the day",
                mirror.target.qualified_name
            ),
            "Nothing was written for the day. Something on the target (a trigger that skips or moves rows, or an \
             extension that routes COPY elsewhere) keeps the rows from where queries read them; remove it, or \
             mirror into a plain table.",
        )
        .with_detail(read));
    }
    Ok(LoadFigures {
        rows_loaded: held,
        rows_reported: received as i64,
        rows_nul_stripped: nul_stripped as i64,
        bytes_billed: summary.bytes_billed,
        job_id: summary.job_id,
        unchanged: None,
        schema_changes: None,
        read_api: Some(summary.read_path.name()),
        snapshot_micros: summary.snapshot_micros,
    })
}
