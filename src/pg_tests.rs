//! In-database tests: run inside a real backend by `cargo pgrx test`. The end-to-end
//! behaviour (BigQuery, pg_cron, sessions) is tested black-box under tests/.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use crate::day::SyncDay;
    use crate::error::SyncError;
    use crate::load::target::TargetTable;
    use crate::subtransaction;
    use pgrx::datum::Date;
    use pgrx::prelude::*;

    #[pg_test]
    fn functions_are_not_executable_by_public() {
        let public_can_run = Spi::get_one::<bool>(
            "SELECT bool_or(has_function_privilege('public', p.oid, 'EXECUTE')) \
             FROM pg_proc p WHERE p.proname IN ('token_sync_day', 'token_backfill', 'token_verify_day')",
        );
        assert_eq!(public_can_run, Ok(Some(false)));
    }

    #[pg_test]
    fn created_target_table_is_not_an_extension_member() {
        let target = TargetTable::prepare("public.members_check").expect("table is created");
        assert_eq!(target.qualified_name, "public.members_check");
        let member = Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_depend WHERE objid = 'public.members_check'::regclass AND deptype = 'e')",
        );
        assert_eq!(member, Ok(Some(false)));
        let indexed = Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE tablename = 'members_check' AND indexdef LIKE '%(block_timestamp)%')",
        );
        assert_eq!(indexed, Ok(Some(true)));
    }

    #[pg_test]
    fn target_with_wrong_column_type_is_refused() {
        Spi::run("CREATE TABLE wrong_shape (address text, symbol text, name text, decimals numeric, total_supply text, block_timestamp timestamptz, block_number bigint, block_hash text)")
            .expect("table created");
        let error = TargetTable::prepare("wrong_shape").expect_err("decimals is numeric");
        assert!(error.message.contains("decimals"), "{}", error.message);
    }

    #[pg_test]
    fn failed_subtransaction_rolls_back_only_its_own_writes() {
        Spi::run("CREATE TABLE units (n int)").expect("table created");
        let kept = subtransaction::run(|| {
            Spi::run("INSERT INTO units VALUES (1)").expect("insert");
            Ok(())
        });
        let returned_error = subtransaction::run(|| -> Result<(), SyncError> {
            Spi::run("INSERT INTO units VALUES (2)").expect("insert");
            Err(SyncError::invalid_argument("unit failed", "none"))
        });
        let raised_error = subtransaction::run(|| {
            Spi::run("INSERT INTO units VALUES (3)").expect("insert");
            Spi::run("SELECT 1 / 0").expect("raises before returning");
            Ok(())
        });
        assert!(kept.is_ok());
        let returned = returned_error
            .err()
            .map(|failure| (failure.message(), failure.ends_statement()));
        assert_eq!(returned, Some(("unit failed".to_string(), false)));
        let raised = raised_error
            .err()
            .map(|failure| (failure.message(), failure.ends_statement()));
        assert_eq!(raised, Some(("division by zero".to_string(), false)));
        assert_eq!(Spi::get_one::<i64>("SELECT sum(n) FROM units"), Ok(Some(1)));
    }

    #[pg_test]
    fn day_bounds_agree_with_postgres() {
        let date = Date::new(2026, 11, 20).expect("valid date");
        let day = SyncDay::from_pg(Some(date), "day").expect("finite day");
        assert_eq!(day.to_pg(), date);
        let same = Spi::get_one_with_args::<bool>(
            "SELECT $1 = '2026-11-20 00:00:00+00'::timestamptz AND $2 = '2026-11-21 00:00:00+00'::timestamptz",
            &[day.start().into(), day.end().into()],
        );
        assert_eq!(same, Ok(Some(true)));
    }
}
