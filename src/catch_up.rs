//! The nightly catch-up: after the D-1 and D-2 jobs, every stale day of a window before
//! the night is tried again, oldest first, each in its own subtransaction, at most
//! `catch_up_max_days` of a table in one night. A day is stale when its last attempt failed
//! or was abandoned, or when it never loaded although days around it did
//! (`token_sync.day_status`). A day that keeps failing is tried 1, 2, 4, 8, ... nights
//! apart, and given up after `catch_up_tries` failed tries; `token_sync.catch_up` keeps
//! that state, `token_sync.stale_days` shows it.
//!
//! The night is an argument (the jobs pass today's UTC date), never the clock: the spacing
//! is counted in nights, so it holds whenever the job runs.

use crate::day::SyncDay;
use crate::error::{SyncError, SyncResult};
use crate::ledger::autonomous;
use crate::settings::CatchUpPolicy;
use pgrx::prelude::*;

pgrx::extension_sql_file!("catch_up.sql", name = "catch_up", requires = ["ledger"]);

/// The stale days of `target_table` the catch-up of `night` tries, oldest first; forgets
/// the tries of days no longer stale.
pub fn due_days(
    target_table: &str,
    night: SyncDay,
    policy: &CatchUpPolicy,
) -> SyncResult<Vec<SyncDay>> {
    Spi::run_with_args(
        "DELETE FROM token_sync.catch_up c WHERE c.target_table = $1 AND NOT EXISTS \
         (SELECT FROM token_sync.stale_days s WHERE s.target_table = c.target_table AND s.day = c.day)",
        &[target_table.into()],
    )?;
    let days = Spi::connect(|client| {
        client
            .select(
                "SELECT s.day FROM token_sync.stale_days s \
                 WHERE s.target_table = $1 AND s.day >= $2 - $3 AND s.day < $2 \
                 AND (s.last_tried_on IS NULL OR s.next_try_on <= $2) \
                 ORDER BY s.day LIMIT $4",
                None,
                &[
                    target_table.into(),
                    night.to_pg().into(),
                    policy.window_days.into(),
                    i64::from(policy.max_days).into(),
                ],
            )?
            .map(|row| row.get::<pgrx::datum::Date>(1))
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })?;
    days.into_iter()
        .map(|day| SyncDay::from_pg(day, "day"))
        .collect()
}

/// Counts a try of the catch-up of `night` before it is made, on its own (committed by the
/// ledger's worker), so that a try a cancel, a timeout or a killed backend ends counts too:
/// one more try, the next one 2^(tries - 1) nights on, or the day given up. Whether this
/// is the day's last try.
pub fn count_try(
    target_table: &str,
    day: SyncDay,
    night: SyncDay,
    policy: &CatchUpPolicy,
) -> SyncResult<bool> {
    let last = autonomous::run(
        "INSERT INTO token_sync.catch_up AS c (target_table, day, tries, last_tried_on, next_try_on, last_error) \
         VALUES ($1, $2::date, 1, $3::date, CASE WHEN $4::integer > 1 THEN $3::date + 1 END, $5) \
         ON CONFLICT (target_table, day) DO UPDATE SET tries = c.tries + 1, last_tried_on = $3::date, \
           next_try_on = CASE WHEN c.tries + 1 < $4::integer THEN $3::date + (2 ^ c.tries)::integer END, \
           last_error = $5 \
         RETURNING (next_try_on IS NULL)::integer::bigint",
        vec![
            Some(target_table.to_string()),
            Some(day.to_string()),
            Some(night.to_string()),
            Some(policy.tries.to_string()),
            Some("the try did not end (cancelled, timed out or killed)".to_string()),
        ],
    )?;
    Ok(last == Some(1))
}

/// Settles a counted try in the caller's transaction: a success forgets the day, a failure
/// keeps its error.
pub fn settle_try(target_table: &str, day: SyncDay, error: Option<&str>) -> SyncResult<()> {
    match error {
        None => Spi::run_with_args(
            "DELETE FROM token_sync.catch_up WHERE target_table = $1 AND day = $2",
            &[target_table.into(), day.to_pg().into()],
        ),
        Some(error) => Spi::run_with_args(
            "UPDATE token_sync.catch_up SET last_error = $3 WHERE target_table = $1 AND day = $2",
            &[target_table.into(), day.to_pg().into(), error.into()],
        ),
    }
    .map_err(SyncError::from)
}
