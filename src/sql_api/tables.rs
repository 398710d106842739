//! Schema token_sync: registering BigQuery tables (`add_table`, `remove_table`) and the
//! `token_*` functions' counterparts for any registered table (`sync_day`, `backfill`,
//! `verify_day`), plus `sync_all` for every registered table at once.

use pgrx::prelude::*;

#[pg_schema]
mod token_sync {
    use crate::bigquery::context::BigQuery;
    use crate::bigquery::schema;
    use crate::day::SyncDay;
    use crate::error::{OrRaise, SyncError};
    use crate::load::target::{NewColumns, TargetTable};
    use crate::mirror::MirrorPlan;
    use crate::quote;
    use crate::registry::{self, Registered};
    use crate::restricted::Restricted;
    use crate::source::TableRef;
    use crate::sql_api::{
        backfill_days, backfill_days_at_once, backfill_range, backfill_row, catch_up_days,
        failed_row, past_day, sync_one_day, verify_one_day,
    };
    use pgrx::datum::{Date, TimestampWithTimeZone};
    use pgrx::prelude::*;

    fn given<'a>(value: Option<&'a str>, argument: &str) -> &'a str {
        value.unwrap_or_else(|| {
            SyncError::invalid_argument(
                format!("{argument} must not be NULL"),
                "Pass the BigQuery table as project.dataset.table.",
            )
            .raise()
        })
    }

    /// Registers a BigQuery table (or updates its registration): checks that BigQuery
    /// serves its schema, that its time column (default: its partitioning column) is a
    /// TIMESTAMP, DATETIME or DATE, and that an existing target fits it.
    #[allow(clippy::type_complexity)]
    #[pg_extern(volatile, parallel_unsafe)]
    fn add_table(
        source_table: Option<&str>,
        target_table: default!(Option<&str>, "NULL"),
        time_column: default!(Option<&str>, "NULL"),
    ) -> TableIterator<
        'static,
        (
            name!(source_table, String),
            name!(target_table, String),
            name!(time_column, String),
            name!(added_at, TimestampWithTimeZone),
            name!(updated_at, TimestampWithTimeZone),
        ),
    > {
        let bigquery = BigQuery::load().or_raise();
        let table =
            TableRef::parse_as(given(source_table, "source_table"), "source_table").or_raise();
        let target = match target_table {
            Some(target) => target.to_string(),
            None => format!(
                "public.{}",
                quote::pg_ident(&format!("raw_{}", table.table))
            ),
        };
        let target = TargetTable::ledger_name(&target).or_raise();
        let _pinned = Restricted::search_path();
        registry::check_one_source_per_target(&table, &target).or_raise();
        let source = schema::read_source(&bigquery, &table, time_column).or_raise();
        if let Some(existing) =
            TargetTable::find(&target, &source.schema, NewColumns::Allow).or_raise()
        {
            existing.check_loadable().or_raise();
        }
        let row = registry::upsert(&Registered {
            source: table,
            target_table: target,
            time_column: source.time.name.clone(),
        })
        .or_raise();
        TableIterator::once(row)
    }

    /// Unregisters a table; its target table and the rows in it stay. Whether it was
    /// registered (a NOTICE says so when it was not).
    #[pg_extern(volatile, parallel_unsafe)]
    fn remove_table(source_table: Option<&str>) -> bool {
        let _pinned = Restricted::search_path();
        let table =
            TableRef::parse_as(given(source_table, "source_table"), "source_table").or_raise();
        let removed = registry::remove(&table).or_raise();
        if !removed {
            pgrx::notice!("token_sync: {} was not registered", table.display());
        }
        removed
    }

    fn plan(registered: &Registered) -> crate::error::SyncResult<MirrorPlan> {
        MirrorPlan::new(
            &registered.source,
            Some(&registered.time_column),
            &registered.target_table,
        )
    }

    /// `token_sync_day` for a registered table.
    #[pg_extern(volatile, parallel_unsafe)]
    fn sync_day(
        source_table: Option<&str>,
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
        // Registered targets are stored schema-qualified: nothing needs the caller's path.
        let _pinned = Restricted::search_path();
        let registered = registry::find(given(source_table, "source_table")).or_raise();
        let day = past_day(day, "day");
        let mut plan = plan(&registered).or_raise();
        TableIterator::once(sync_one_day(&bigquery, &mut plan, day))
    }

    /// `token_backfill` for a registered table.
    #[allow(clippy::type_complexity)]
    #[pg_extern(volatile, parallel_unsafe)]
    fn backfill(
        source_table: Option<&str>,
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
        // Registered targets are stored schema-qualified: nothing needs the caller's path.
        let _pinned = Restricted::search_path();
        let registered = registry::find(given(source_table, "source_table")).or_raise();
        let (from, to) = backfill_range(
            &bigquery.settings,
            from_day,
            to_day,
            "token_sync.backfill(source_table, from_day, to_day)",
        );
        let mut plan = plan(&registered).or_raise();
        TableIterator::new(backfill_days(&bigquery, &mut plan, from, to))
    }

    /// `token_backfill(from_day, to_day, parallel)` for a registered table.
    #[allow(clippy::type_complexity)]
    #[pg_extern(volatile, parallel_unsafe, name = "backfill")]
    fn backfill_in_parallel(
        source_table: Option<&str>,
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
        let parallel = crate::sql_api::parallel::checked_parallel(parallel);
        let bigquery = BigQuery::load().or_raise();
        let _pinned = Restricted::search_path();
        let registered = registry::find(given(source_table, "source_table")).or_raise();
        let (from, to) = backfill_range(
            &bigquery.settings,
            from_day,
            to_day,
            "token_sync.backfill(source_table, from_day, to_day, parallel)",
        );
        let mut plan = plan(&registered).or_raise();
        TableIterator::new(backfill_days_at_once(
            &bigquery, &mut plan, from, to, parallel,
        ))
    }

    /// `token_verify_day` for a registered table.
    #[allow(clippy::type_complexity)]
    #[pg_extern(volatile, parallel_unsafe)]
    fn verify_day(
        source_table: Option<&str>,
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
        // Registered targets are stored schema-qualified: nothing needs the caller's path.
        let _pinned = Restricted::search_path();
        let registered = registry::find(given(source_table, "source_table")).or_raise();
        let day = past_day(day, "day");
        TableIterator::once(verify_one_day(
            &bigquery,
            &registered.source,
            Some(&registered.time_column),
            &registered.target_table,
            day,
        ))
    }

    /// The day for every registered table, each table-day in its own subtransaction: a
    /// failing table is reported in its row, a WARNING and the ledger, and the others go on.
    #[allow(clippy::type_complexity)]
    #[pg_extern(volatile, parallel_unsafe)]
    fn sync_all(
        day: Option<Date>,
    ) -> TableIterator<
        'static,
        (
            name!(source_table, String),
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
        // Registered targets are stored schema-qualified: nothing needs the caller's path.
        let _pinned = Restricted::search_path();
        let day: SyncDay = past_day(day, "day");
        let registered = registry::all().or_raise();
        if registered.is_empty() {
            pgrx::notice!(
                "token_sync: no table is registered; register one with token_sync.add_table"
            );
        }
        let rows: Vec<_> = registered
            .iter()
            .map(|table| {
                let name = table.source.display();
                let started = std::time::Instant::now();
                let (day, status, loaded, reported, seconds, billed, job, error) = match plan(table)
                {
                    Ok(mut plan) => backfill_row(&bigquery, &mut plan, day, &format!("{name} ")),
                    Err(failure) => {
                        pgrx::warning!("token_sync: {name} {day} failed: {}", failure.message);
                        failed_row(day, started, failure.message)
                    }
                };
                (
                    name, day, status, loaded, reported, seconds, billed, job, error,
                )
            })
            .collect();
        TableIterator::new(rows)
    }

    /// `token_catch_up` for every registered table, in name order: one row per day tried.
    #[allow(clippy::type_complexity)]
    #[pg_extern(volatile, parallel_unsafe)]
    fn catch_up(
        night: Option<Date>,
    ) -> TableIterator<
        'static,
        (
            name!(source_table, String),
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
        // Registered targets are stored schema-qualified: nothing needs the caller's path.
        let _pinned = Restricted::search_path();
        let night = past_day(night, "night");
        let mut rows = Vec::new();
        for table in registry::all().or_raise() {
            let name = table.source.display();
            match plan(&table) {
                Ok(mut plan) => rows.extend(
                    catch_up_days(&bigquery, &mut plan, night, &format!("{name} "))
                        .into_iter()
                        .map(
                            |(day, status, loaded, reported, seconds, billed, job, error)| {
                                let name = name.clone();
                                (
                                    name, day, status, loaded, reported, seconds, billed, job,
                                    error,
                                )
                            },
                        ),
                ),
                Err(failure) => {
                    pgrx::warning!("token_sync: {name} catch-up failed: {}", failure.message)
                }
            }
        }
        TableIterator::new(rows)
    }
}
