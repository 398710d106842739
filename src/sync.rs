//! One day, end to end: BigQuery's result pages stream into the day replace, and the
//! attempt goes into the ledger.

use crate::bigquery::context::BigQuery;
use crate::bigquery::copy_rows::RowEncoder;
use crate::bigquery::delivery::{Delivery, JobSummary, ReadPath, ResultStream};
use crate::bigquery::partitions;
use crate::bigquery::{errors::bad_response, query, rest, storage};
use crate::day::{SyncDay, HOURS};
use crate::day_digest::{hour_ranges, DayDigest};
use crate::error::{SyncError, SyncResult};
use crate::ledger::{self, Attempt, LastLoad, LoadFigures, Unchanged};
use crate::load::copy_from::format_for;
use crate::load::copy_from::ChunkSource;
use crate::load::day_replace::{
    lock_day, replace_day, replace_hours, rows_in_day, rows_may_go_astray, rows_seen_after_copy,
    Staging,
};
use crate::load::hour_files::HourFiles;
use crate::load::target::{Access, WritePath};
use crate::mirror::{Mirror, MirrorPlan};
use crate::restricted::Restricted;
use crate::settings::ReadApi;
use crate::subtransaction::{self, UnitFailure};
use crate::types::CopyFormat;
use crate::verify;
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;
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
            BeforeLoad::Write { billed, written } => {
                let mut figures = write_day(bigquery, mirror, day, written)?;
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
    Write {
        billed: Option<i64>,
        /// BigQuery wrote to the partition since the last load, and the day holds that
        /// load's rows, whose digests these are: only the hours that changed are rewritten.
        written: Option<WrittenSince>,
    },
}

/// What the last load left of a day whose partition BigQuery wrote to since.
struct WrittenSince {
    held: i64,
    hour_digests: Vec<i64>,
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
    let nothing_billed = BeforeLoad::Write {
        billed: None,
        written: None,
    };
    if !bigquery.settings.skip_unchanged {
        return Ok(nothing_billed);
    }
    let held = rows_in_day(&mirror.source, &mirror.target, day)?;
    if held == 0 {
        return Ok(nothing_billed);
    }
    let hour_digests = last_load
        .as_ref()
        .and_then(|last| last.hour_digests.clone());
    match since_last_load(bigquery, mirror, day, held, last_load) {
        SinceLastLoad::Unwritten(figures) => return Ok(BeforeLoad::Unchanged(figures)),
        SinceLastLoad::Written { billed } => {
            return Ok(BeforeLoad::Write {
                billed,
                written: hour_digests.map(|hour_digests| WrittenSince { held, hour_digests }),
            })
        }
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
            written: None,
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
        hour_digests: None,
    }))
}

/// What BigQuery's metadata says of the day's partition since the last load read it.
enum SinceLastLoad {
    /// Not written to, and as many rows as the load left: the day is unchanged.
    Unwritten(LoadFigures),
    /// Written to since, or holding another count: the day is read again and written
    /// without comparing summaries (a summary query billed like the load, and every local
    /// row hashed); where the last load's hour digests are known, only the hours that
    /// differ from them are.
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
    let Some((read_at, hour_digests)) = last_load
        .filter(|last| last.rows == held)
        .and_then(|last| Some((last.snapshot_micros?, last.hour_digests)))
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
        hour_digests,
    })
}

/// Where the rows of a day go.
enum DayWrite<'a> {
    /// In place of the day's rows, through the target's staging table where it has one.
    Whole(Option<&'a Staging>),
    /// Into temporary files by hour, the target left as it is, for `rewrite_changed_hours`.
    ByHour(Rc<RefCell<HourFiles>>),
}

/// Writes the day: whole, or where BigQuery wrote to its partition since the last load
/// and COPY loads the target directly, only the hours whose rows differ from what that
/// load wrote (the day is read into temporary files by hour, and compared as it passes).
fn write_day(
    bigquery: &BigQuery,
    mirror: &mut Mirror,
    day: SyncDay,
    written: Option<WrittenSince>,
) -> SyncResult<LoadFigures> {
    if let Some(written) = written {
        if mirror.target.write_path == WritePath::Copy
            && mirror.source.time.has_hours()
            && HourFiles::would_fit(&mirror.source, written.held)?
        {
            let _owner = Restricted::as_owner_of(mirror.target.oid)?;
            let files = Rc::new(RefCell::new(HourFiles::new()));
            let read = load_day(bigquery, mirror, day, DayWrite::ByHour(files.clone()))?;
            return rewrite_changed_hours(mirror, day, read, &written, &files);
        }
    }
    let staging = Staging::create(&mirror.source, &mirror.target)?;
    let read = {
        let _owner = Restricted::as_owner_of(mirror.target.oid)?;
        load_day(bigquery, mirror, day, DayWrite::Whole(staging.as_ref()))?
    };
    if let Some(staging) = staging {
        staging.drop()?;
    }
    Ok(read.figures)
}

/// A day read and written as `DayWrite` said: its figures, the digest of its rows, and
/// the format they were COPYed in.
struct DayRead {
    figures: LoadFigures,
    digest: DayDigest,
    format: CopyFormat,
}

/// With the day read into `files`, replaces the hours whose digest differs from the last
/// load's; none, and the day is unchanged. Where the other hours turn out not to hold
/// what the last load wrote (edited here since), they are replaced too.
fn rewrite_changed_hours(
    mirror: &Mirror,
    day: SyncDay,
    read: DayRead,
    written: &WrittenSince,
    files: &Rc<RefCell<HourFiles>>,
) -> SyncResult<LoadFigures> {
    let DayRead {
        mut figures,
        digest,
        format,
    } = read;
    let received = figures.rows_reported;
    let changed = digest.changed_hours(&written.hour_digests);
    if changed.is_empty() && received == written.held {
        figures.rows_loaded = written.held;
        figures.unchanged = Some(Unchanged::SameHours);
        figures.read_api = None;
        return Ok(figures);
    }
    let (source, target) = (&mirror.source, &mirror.target);
    let hours = HourRewrite {
        mirror,
        day,
        digest: &digest,
        format,
        files,
        read: read_of(figures.read_api, &figures.job_id),
    };
    let changed = if changed.is_empty() {
        (0..HOURS).collect()
    } else {
        changed
    };
    let (deleted, stored) = hours.replace(&changed)?;
    pgrx::notice!(
        "token_sync: {day} differs from what the last load wrote in {} of its {HOURS} hours ({}); only those were rewritten ({deleted} rows deleted, {stored} stored)",
        changed.len(),
        hour_ranges(&changed)
            .iter()
            .map(|(from, to)| format!("{from:02}:00-{to:02}:00"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut held = if rows_may_go_astray(target)? {
        rows_in_day(source, target, day)?
    } else {
        written.held - deleted as i64 + stored as i64
    };
    if held != received {
        let others: Vec<usize> = (0..HOURS).filter(|hour| !changed.contains(hour)).collect();
        hours.replace(&others)?;
        held = rows_in_day(source, target, day)?;
        pgrx::notice!(
            "token_sync: the other hours of {day} did not hold the rows the last load wrote (edited here since?); they were rewritten too"
        );
        if held != received {
            return Err(
                rows_kept_from_queries(mirror, day, received, received as u64, held)
                    .with_detail(hours.read),
            );
        }
    }
    figures.rows_loaded = held;
    Ok(figures)
}

/// Replacing hours of a day with their rows from the files it was read into.
struct HourRewrite<'a> {
    mirror: &'a Mirror,
    day: SyncDay,
    digest: &'a DayDigest,
    format: CopyFormat,
    files: &'a Rc<RefCell<HourFiles>>,
    /// The job or read session, for errors' detail.
    read: String,
}

impl HourRewrite<'_> {
    /// Deletes the rows of `hours` and COPYs theirs from the files; the rows deleted and
    /// stored. Refused if COPY did not store every row of those hours.
    fn replace(&self, hours: &[usize]) -> SyncResult<(u64, u64)> {
        let (source, target) = (&self.mirror.source, &self.mirror.target);
        let rows = HourFiles::rows_of(self.files.clone(), hours.to_vec());
        let (deleted, stored) = replace_hours(source, target, self.day, hours, self.format, rows)?;
        let staged = self.digest.rows_in(hours);
        if stored != staged {
            return Err(SyncError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "{staged} rows of {} arrived in the hours rewritten, but COPY stored {stored} of them in the target table {}",
                    self.day, target.qualified_name
                ),
                "Nothing was written for the day. Something on the target (a trigger that skips rows) keeps them \
                 from being stored; remove it, or mirror into a plain table.",
            )
            .with_detail(self.read.clone()));
        }
        Ok((deleted, stored))
    }
}

/// How errors name what a day was read by: `job ...` or `read session ...`.
fn read_of(read_api: Option<&str>, job_id: &str) -> String {
    match read_api {
        Some(api) if api == ReadPath::Storage.name() => format!("read session {job_id}"),
        _ => format!("job {job_id}"),
    }
}

/// Reads the day through the API `token_sync.read_api` chooses and replaces it.
fn load_day(
    bigquery: &BigQuery,
    mirror: &mut Mirror,
    day: SyncDay,
    write: DayWrite<'_>,
) -> SyncResult<DayRead> {
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
                return copy_day(mirror, day, write, format, summary, stream)
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
        Some(Delivery::Started(summary)) => copy_day(mirror, day, write, format, summary, stream),
        _ => Err(bad_response("BigQuery's result ended before it began")),
    }
}

/// What the pages of a day brought so far.
#[derive(Default)]
struct Tally {
    rows: u64,
    nul_stripped: u64,
    reported: Option<u64>,
    digest: DayDigest,
}

/// The pages of `stream` as COPY's chunks, counted into `tally`, their rows also kept by
/// hour in `files` if given.
fn chunks(
    mut stream: ResultStream,
    tally: Rc<RefCell<Tally>>,
    files: Option<Rc<RefCell<HourFiles>>>,
) -> Box<ChunkSource<'static>> {
    Box::new(move || match stream.next()? {
        Some(Delivery::Page(page)) => {
            let mut tally = tally.borrow_mut();
            tally.rows += page.rows;
            tally.nul_stripped += page.nul_stripped_rows;
            tally.digest.merge(&page.digest);
            if let Some(files) = &files {
                let mut files = files.borrow_mut();
                let mut at = 0;
                for &(hour, bytes) in &page.hour_runs {
                    let run = page.bytes.get(at..at + bytes).ok_or_else(runs_astray)?;
                    files.append(hour, run);
                    at += bytes;
                }
                if at != page.bytes.len() {
                    return Err(runs_astray());
                }
            }
            Ok(Some(page.bytes))
        }
        Some(Delivery::Ended { rows_reported }) => {
            tally.borrow_mut().reported = Some(rows_reported);
            Ok(None)
        }
        Some(Delivery::Started(_)) => Err(bad_response("BigQuery's result began twice")),
        None => Ok(None),
    })
}

/// Writes the day as `write` says with the pages of `stream`, which has started as
/// `summary` says, and checks that every row the source reported arrived and was stored;
/// with the digest of the rows, hour by hour.
fn copy_day(
    mirror: &Mirror,
    day: SyncDay,
    write: DayWrite<'_>,
    format: CopyFormat,
    summary: JobSummary,
    stream: ResultStream,
) -> SyncResult<DayRead> {
    let tally = Rc::new(RefCell::new(Tally {
        reported: summary.total_rows,
        ..Tally::default()
    }));
    let (source, target) = (&mirror.source, &mirror.target);
    let by_hour = matches!(write, DayWrite::ByHour(_));
    let stored = match write {
        DayWrite::Whole(staging) => {
            let rows = chunks(stream, tally.clone(), None);
            replace_day(source, target, day, staging, format, rows)?
        }
        DayWrite::ByHour(files) => {
            let mut rows = chunks(stream, tally.clone(), Some(files));
            while rows()?.is_some() {}
            tally.borrow().rows
        }
    };
    let Tally {
        rows: received,
        nul_stripped,
        reported,
        digest,
    } = tally.take();
    let read = read_of(Some(summary.read_path.name()), &summary.job_id);
    if reported != Some(received) {
        let reported = reported.map_or("no count of".to_string(), |rows| rows.to_string());
        return Err(SyncError::bad_source_data(
            format!("BigQuery reported {reported} rows for {day} but {received} arrived"),
            "Nothing was written for the day. Run it again; if it persists, the source is changing under the query.",
        )
        .with_detail(format!("{read}, {stored} rows stored")));
    }
    let held = match by_hour {
        true => stored as i64,
        false => rows_seen_after_copy(source, target, day, stored, received)?,
    };
    if stored != received || held != received as i64 {
        return Err(
            rows_kept_from_queries(mirror, day, received as i64, stored, held).with_detail(read),
        );
    }
    let figures = LoadFigures {
        rows_loaded: held,
        rows_reported: received as i64,
        rows_nul_stripped: nul_stripped as i64,
        bytes_billed: summary.bytes_billed,
        job_id: summary.job_id,
        unchanged: None,
        schema_changes: None,
        read_api: Some(summary.read_path.name()),
        snapshot_micros: summary.snapshot_micros,
        hour_digests: source.time.has_hours().then(|| digest.to_ledger()),
    };
    Ok(DayRead {
        figures,
        digest,
        format,
    })
}

/// A page whose runs of hours do not cover its bytes exactly.
fn runs_astray() -> SyncError {
    bad_response("a page's runs of rows by hour do not add up to its bytes")
}

/// The rows that arrived were not all stored, or are not all where queries of the day
/// look for them.
fn rows_kept_from_queries(
    mirror: &Mirror,
    day: SyncDay,
    received: i64,
    stored: u64,
    held: i64,
) -> SyncError {
    SyncError::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "{received} rows of {day} arrived and COPY stored {stored}, but the target table {} holds {held} rows of the day",
            mirror.target.qualified_name
        ),
        "Nothing was written for the day. Something on the target (a trigger that skips or moves rows, or an \
         extension that routes COPY elsewhere) keeps the rows from where queries read them; remove it, or \
         mirror into a plain table.",
    )
}
