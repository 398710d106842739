//! The functions users call: `token_sync_day`, `token_backfill`, `token_verify_day` and
//! `token_catch_up` for the table the settings name here, and in schema token_sync the same
//! for any registered table (`tables`). None is executable by PUBLIC:
//! a superuser grants EXECUTE (see the README's "Who may run it").

mod fingerprint;
mod parallel;
mod tables;

use crate::bigquery::context::BigQuery;
use crate::bigquery::schema;
use crate::catch_up;
use crate::day::SyncDay;
use crate::error::{OrRaise, SyncError};
use crate::ledger;
use crate::ledger::backfills::Backfill;
use crate::load::target::TargetTable;
use crate::mirror::MirrorPlan;
use crate::restricted::Restricted;
use crate::settings::Settings;
use crate::source::TableRef;
use crate::sync::{self, DayOutcome};
use crate::verify;
use pgrx::datum::{Date, TimestampWithTimeZone};
use pgrx::prelude::*;

/// Makes the target table hold exactly the source's rows of one UTC day.
#[pg_extern(volatile, parallel_unsafe)]
fn token_sync_day(
    day: Option<Date>,
) -> TableIterator<
    'static,
    (
        name!(day, Date),
        name!(rows_loaded, i64),
        name!(rows_reported, i64),
        name!(seconds, f64),
        name!(bytes_billed, Option<i64>),
        name!(job_id, String),
    ),
> {
    let bigquery = BigQuery::load().or_raise();
    let day = past_day(day, "day");
    TableIterator::once(sync_one_day(
        &bigquery,
        &mut settings_mirror(&bigquery.settings),
        day,
    ))
}

/// One day of a mirror, raising its failure: `token_sync_day`'s row.
pub(crate) fn sync_one_day(bigquery: &BigQuery, plan: &mut MirrorPlan, day: SyncDay) -> DayRow {
    let outcome = sync::sync_day(bigquery, plan, day).unwrap_or_else(|failure| failure.raise());
    if let Some(unchanged) = outcome.figures.unchanged {
        pgrx::notice!(
            "token_sync: {day} is unchanged in BigQuery ({} rows, {}); it was not rewritten",
            outcome.figures.rows_loaded,
            unchanged.reason()
        );
    }
    day_row(&outcome)
}

pub(crate) type DayRow = (Date, i64, i64, f64, Option<i64>, String);
pub(crate) type BackfillRow = (
    Date,
    String,
    Option<i64>,
    Option<i64>,
    f64,
    Option<i64>,
    Option<String>,
    Option<String>,
);
pub(crate) type VerifyRow = (
    Date,
    bool,
    i64,
    i64,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    i64,
    i64,
    String,
);

/// The mirror the `token_*` functions act on: `token_sync.source_table` into
/// `token_sync.target_table`, its days cut by the source's partitioning column.
fn settings_mirror(settings: &Settings) -> MirrorPlan {
    MirrorPlan::new(&settings.source_table, None, &settings.target_table).or_raise()
}

/// A day argument that must be given and must have begun (in UTC).
pub(crate) fn past_day(day: Option<Date>, argument: &str) -> SyncDay {
    SyncDay::from_pg(day, argument)
        .and_then(|d| d.not_in_future(argument))
        .or_raise()
}

fn day_row(outcome: &DayOutcome) -> DayRow {
    let figures = &outcome.figures;
    (
        outcome.day.to_pg(),
        figures.rows_loaded,
        figures.rows_reported,
        outcome.seconds,
        figures.bytes_billed,
        figures.job_id.clone(),
    )
}

/// Syncs every day of [from_day, to_day], oldest first, each in its own subtransaction:
/// a failing day is reported (here and in the ledger) and the others go on.
// pgrx reads the column names from the signature, so the row type cannot be an alias.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn token_backfill(
    from_day: Option<Date>,
    to_day: Option<Date>,
) -> TableIterator<
    'static,
    (
        name!(day, Date),
        name!(status, String),
        name!(rows_loaded, Option<i64>),
        name!(rows_reported, Option<i64>),
        name!(seconds, f64),
        name!(bytes_billed, Option<i64>),
        name!(job_id, Option<String>),
        name!(error, Option<String>),
    ),
> {
    let bigquery = BigQuery::load().or_raise();
    let (from, to) = backfill_range(
        &bigquery.settings,
        from_day,
        to_day,
        "token_backfill(from_day, to_day)",
    );
    TableIterator::new(backfill_days(
        &bigquery,
        &mut settings_mirror(&bigquery.settings),
        from,
        to,
    ))
}

/// `token_backfill` with up to `parallel` days at once, each in a background worker of its
/// own that commits the day (see `parallel`); `parallel => 1` is `token_backfill(from_day,
/// to_day)`, in the caller's transaction.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe, name = "token_backfill")]
fn token_backfill_in_parallel(
    from_day: Option<Date>,
    to_day: Option<Date>,
    parallel: Option<i32>,
) -> TableIterator<
    'static,
    (
        name!(day, Date),
        name!(status, String),
        name!(rows_loaded, Option<i64>),
        name!(rows_reported, Option<i64>),
        name!(seconds, f64),
        name!(bytes_billed, Option<i64>),
        name!(job_id, Option<String>),
        name!(error, Option<String>),
    ),
> {
    let parallel = parallel::checked_parallel(parallel);
    let bigquery = BigQuery::load().or_raise();
    let (from, to) = backfill_range(
        &bigquery.settings,
        from_day,
        to_day,
        "token_backfill(from_day, to_day, parallel)",
    );
    let mut plan = settings_mirror(&bigquery.settings);
    TableIterator::new(backfill_days_at_once(
        &bigquery, &mut plan, from, to, parallel,
    ))
}

/// The days [from, to] of a mirror, `parallel` at once in background workers, or one after
/// another in the caller's transaction when `parallel` is 1.
pub(crate) fn backfill_days_at_once(
    bigquery: &BigQuery,
    plan: &mut MirrorPlan,
    from: SyncDay,
    to: SyncDay,
    parallel: usize,
) -> Vec<BackfillRow> {
    let backfill = Backfill::start(&plan.ledger_name, &plan.source_name(), from, to, parallel);
    let rows = if parallel == 1 {
        backfill_days(bigquery, plan, from, to)
    } else {
        parallel::backfill_in_workers(plan, from, to, parallel)
    };
    backfill.finish();
    rows
}

/// The days [from_day, to_day], checked: given, in order, begun, and no more of them than
/// `token_sync.max_backfill_days`. `call` shows the function in the HINT.
pub(crate) fn backfill_range(
    settings: &Settings,
    from_day: Option<Date>,
    to_day: Option<Date>,
    call: &str,
) -> (SyncDay, SyncDay) {
    let from = SyncDay::from_pg(from_day, "from_day").or_raise();
    let to = past_day(to_day, "to_day");
    if from > to {
        SyncError::invalid_argument(
            format!("from_day {from} is after to_day {to}"),
            format!("Pass the older day first: {call}."),
        )
        .raise();
    }
    let span = from.days_until(to) + 1;
    if span > i64::from(settings.max_backfill_days) {
        SyncError::invalid_argument(
            format!(
                "the range {from}..{to} covers {span} days, more than token_sync.max_backfill_days ({})",
                settings.max_backfill_days
            ),
            "Split the backfill into smaller ranges, or raise token_sync.max_backfill_days.",
        )
        .raise();
    }
    (from, to)
}

/// Syncs every day of [from, to] of a mirror, oldest first, each in its own subtransaction;
/// a failing day is reported in its row, in a WARNING and in the ledger.
pub(crate) fn backfill_days(
    bigquery: &BigQuery,
    plan: &mut MirrorPlan,
    from: SyncDay,
    to: SyncDay,
) -> Vec<BackfillRow> {
    let mut rows = Vec::new();
    let mut day = Some(from);
    while let Some(current) = day.filter(|d| *d <= to) {
        rows.push(backfill_row(bigquery, plan, current, ""));
        day = current.next();
    }
    rows
}

/// Tries again the stale days of the settings' mirror in the window before `night` (the
/// nightly job passes today's UTC date), oldest first, each in its own subtransaction; see
/// `crate::catch_up`. One row per day tried, as `token_backfill`'s, with the status
/// `given_up` for a day that failed its last try.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn token_catch_up(
    night: Option<Date>,
) -> TableIterator<
    'static,
    (
        name!(day, Date),
        name!(status, String),
        name!(rows_loaded, Option<i64>),
        name!(rows_reported, Option<i64>),
        name!(seconds, f64),
        name!(bytes_billed, Option<i64>),
        name!(job_id, Option<String>),
        name!(error, Option<String>),
    ),
> {
    let bigquery = BigQuery::load().or_raise();
    let night = past_day(night, "night");
    TableIterator::new(catch_up_days(
        &bigquery,
        &mut settings_mirror(&bigquery.settings),
        night,
        "",
    ))
}

/// The catch-up of `night` for one mirror: its due days, each tried as a backfill's, and
/// each try recorded.
pub(crate) fn catch_up_days(
    bigquery: &BigQuery,
    plan: &mut MirrorPlan,
    night: SyncDay,
    context: &str,
) -> Vec<BackfillRow> {
    let _pinned = Restricted::search_path();
    let policy = bigquery.settings.catch_up();
    let due = {
        let _ledger = ledger::as_owner().or_raise();
        catch_up::due_days(&plan.ledger_name, night, &policy).or_raise()
    };
    due.into_iter()
        .map(|day| {
            let last_try = catch_up::count_try(&plan.ledger_name, day, night, &policy).or_raise();
            let mut row = backfill_row(bigquery, plan, day, context);
            let _ledger = ledger::as_owner().or_raise();
            catch_up::settle_try(&plan.ledger_name, day, row.7.as_deref()).or_raise();
            if last_try && row.7.is_some() {
                row.1 = "given_up".to_string();
            }
            row
        })
        .collect()
}

/// One day as a backfill reports it; `context` goes before the day in the WARNING.
pub(crate) fn backfill_row(
    bigquery: &BigQuery,
    plan: &mut MirrorPlan,
    day: SyncDay,
    context: &str,
) -> BackfillRow {
    let started = std::time::Instant::now();
    match sync::sync_day(bigquery, plan, day) {
        Ok(outcome) => {
            let (day, rows_loaded, rows_reported, seconds, bytes_billed, job_id) =
                day_row(&outcome);
            (
                day,
                outcome.figures.status().to_string(),
                Some(rows_loaded),
                Some(rows_reported),
                seconds,
                bytes_billed,
                Some(job_id),
                None,
            )
        }
        Err(failure) if failure.ends_statement() => failure.raise(),
        Err(failure) => {
            let error = failure.message();
            pgrx::warning!("token_sync: {context}{day} failed: {error}");
            failed_row(day, started, error)
        }
    }
}

pub(crate) fn failed_row(day: SyncDay, started: std::time::Instant, error: String) -> BackfillRow {
    (
        day.to_pg(),
        "failed".to_string(),
        None,
        None,
        started.elapsed().as_secs_f64(),
        None,
        None,
        Some(error),
    )
}

/// Compares the day in BigQuery with the day in the target table.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn token_verify_day(
    day: Option<Date>,
) -> TableIterator<
    'static,
    (
        name!(day, Date),
        name!(matches, bool),
        name!(bigquery_rows, i64),
        name!(local_rows, i64),
        name!(bigquery_min_timestamp, Option<TimestampWithTimeZone>),
        name!(local_min_timestamp, Option<TimestampWithTimeZone>),
        name!(bigquery_max_timestamp, Option<TimestampWithTimeZone>),
        name!(local_max_timestamp, Option<TimestampWithTimeZone>),
        name!(bigquery_fingerprint, i64),
        name!(local_fingerprint, i64),
        name!(job_id, String),
    ),
> {
    let bigquery = BigQuery::load().or_raise();
    let day = past_day(day, "day");
    TableIterator::once(verify_one_day(
        &bigquery,
        &bigquery.settings.source_table,
        None,
        &bigquery.settings.target_table,
        day,
    ))
}

/// Compares a day of `source` (its days cut by `time_column`, or its partitioning column)
/// with the day in `target_table`: `token_verify_day`'s row.
pub(crate) fn verify_one_day(
    bigquery: &BigQuery,
    source: &TableRef,
    time_column: Option<&str>,
    target_table: &str,
    day: SyncDay,
) -> VerifyRow {
    let target_table = TargetTable::ledger_name(target_table).or_raise();
    let _pinned = Restricted::search_path();
    let source = schema::read_source(bigquery, source, time_column).or_raise();
    let comparison = verify::compare_day(bigquery, &source, &target_table, day).or_raise();
    let timestamp = |micros: Option<i64>| micros.map(crate::day::timestamptz_from_unix_micros);
    let (remote, local) = (&comparison.bigquery, &comparison.local);
    (
        day.to_pg(),
        comparison.matches(),
        remote.rows,
        local.rows,
        timestamp(remote.min_timestamp),
        timestamp(local.min_timestamp),
        timestamp(remote.max_timestamp),
        timestamp(local.max_timestamp),
        remote.fingerprint,
        local.fingerprint,
        comparison.job_id.clone(),
    )
}

// PUBLIC may execute none of the extension's functions but two: a new install revokes it
// from every function the catalog lists once the script has made them, so a new function
// is covered without a list of signatures to keep in step (an upgrade script still revokes
// its new functions itself; the upgrade test compares both installs' privileges).
pgrx::extension_sql!(
    r#"
DO $revoke$
DECLARE
    member pg_catalog.regprocedure;
BEGIN
    FOR member IN
        SELECT p.oid::pg_catalog.regprocedure
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
        JOIN pg_catalog.pg_proc p ON p.oid = d.objid
        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
          AND d.deptype = 'e' AND e.extname = 'token_sync'
          -- The fingerprint's two spellings: a target's owner, as whom a day is read, calls them.
          AND NOT (p.pronamespace = 'token_sync'::pg_catalog.regnamespace
                   AND p.proname IN ('canonical_json', 'canonical_interval'))
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', member);
    END LOOP;
END
$revoke$;
"#,
    name = "revoke_public_execute",
    finalize
);
