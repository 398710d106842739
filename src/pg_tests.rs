//! In-database tests: run inside a real backend by `cargo pgrx test`. The end-to-end
//! behaviour (BigQuery, pg_cron, sessions) is tested black-box under tests/.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use crate::bigquery::copy_rows::RowEncoder;
    use crate::bigquery::wire::Body;
    use crate::day::SyncDay;
    use crate::error::SyncError;
    use crate::load::copy_from::{copy_into, format_for};
    use crate::load::target::TargetTable;
    use crate::source::Source;
    use crate::subtransaction;
    use crate::types::{CopyFormat, Mode};
    use pgrx::datum::Date;
    use pgrx::prelude::*;

    const TOKENS: &str = r#"[
        {"name": "address", "type": "STRING", "mode": "REQUIRED"},
        {"name": "symbol", "type": "STRING"},
        {"name": "name", "type": "STRING"},
        {"name": "decimals", "type": "STRING"},
        {"name": "total_supply", "type": "STRING"},
        {"name": "block_timestamp", "type": "TIMESTAMP", "mode": "REQUIRED"},
        {"name": "block_number", "type": "INTEGER", "mode": "REQUIRED"},
        {"name": "block_hash", "type": "STRING", "mode": "REQUIRED"}]"#;

    #[pg_test]
    fn functions_are_not_executable_by_public() {
        let runnable_by_public = Spi::get_one::<Vec<String>>(
            "SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text) \
             FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' \
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'token_sync' \
             WHERE has_function_privilege('public', p.oid, 'EXECUTE')",
        );
        assert_eq!(
            runnable_by_public,
            Ok(Some(vec![
                "token_sync.canonical_interval(text)".to_string(),
                "token_sync.canonical_json(jsonb)".to_string(),
            ]))
        );
        let revoked = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' \
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'token_sync' \
             WHERE p.proname IN ('token_sync_day', 'token_backfill', 'token_verify_day', 'token_catch_up', \
             'add_table', 'remove_table', 'sync_day', 'backfill', 'verify_day', 'sync_all', 'catch_up') \
             AND NOT has_function_privilege('public', p.oid, 'EXECUTE')",
        );
        // Eleven names; token_backfill and backfill have an overload each, with `parallel`.
        assert_eq!(
            revoked,
            Ok(Some(13)),
            "every function users call needs a grant"
        );
    }

    #[pg_test]
    fn created_target_table_is_not_an_extension_member() {
        let tokens = Source::described(TOKENS);
        let target = TargetTable::prepare("public.members_check", &tokens.schema, &tokens.time)
            .expect("table is created");
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
        let tokens = Source::described(TOKENS);
        let error = TargetTable::prepare("wrong_shape", &tokens.schema, &tokens.time)
            .expect_err("decimals is numeric");
        assert!(error.message.contains("decimals"), "{}", error.message);
    }

    /// A source of every type, each once and in this order, then arrays and a STRUCT.
    fn every_type() -> Source {
        Source::described(
            r#"[
            {"name": "block_timestamp", "type": "TIMESTAMP", "mode": "REQUIRED"},
            {"name": "s", "type": "STRING"}, {"name": "b", "type": "BYTES"},
            {"name": "i", "type": "INTEGER"}, {"name": "f", "type": "FLOAT"},
            {"name": "n", "type": "NUMERIC"}, {"name": "bn", "type": "BIGNUMERIC"},
            {"name": "ok", "type": "BOOLEAN"}, {"name": "d", "type": "DATE"},
            {"name": "dt", "type": "DATETIME"}, {"name": "t", "type": "TIME"},
            {"name": "j", "type": "JSON"}, {"name": "iv", "type": "INTERVAL"},
            {"name": "g", "type": "GEOGRAPHY"},
            {"name": "topics", "type": "STRING", "mode": "REPEATED"},
            {"name": "amounts", "type": "NUMERIC", "mode": "REPEATED"},
            {"name": "blobs", "type": "BYTES", "mode": "REPEATED"},
            {"name": "st", "type": "RECORD", "fields": [
                {"name": "x", "type": "INTEGER"}, {"name": "y", "type": "STRING", "mode": "REPEATED"}]}]"#,
        )
    }

    /// A table of every type, with two rows of BigQuery's REST values copied into it.
    fn load_every_type() {
        let every_type = every_type();
        let target =
            TargetTable::prepare("public.every_type", &every_type.schema, &every_type.time)
                .expect("table is created");
        let day = SyncDay::from_pg(Date::new(2026, 11, 20).ok(), "day").expect("day");
        let body = r#"{"totalRows": "2", "rows": [
          {"f": [{"v": "1795219199999999"}, {"v": "tab\there \"q\" \\ é"}, {"v": "AAH/"},
                 {"v": "-9223372036854775808"}, {"v": "nan"}, {"v": "-99999999999999999999999999999.999999999"},
                 {"v": "578960446186580977117854925043439539266.34992332820282019728792003956564819967"},
                 {"v": "true"}, {"v": "0001-01-01"}, {"v": "9999-12-31T23:59:59.999999"}, {"v": "23:59:59.999999"},
                 {"v": "{\"b\":{\"c\":[1,2.50]},\"a\":null}"}, {"v": "-1-2 3 -4:5:6.5"}, {"v": "POINT(1 2)"},
                 {"v": [{"v": "0xa"}, {"v": "with,comma \"and\" {braces}"}]}, {"v": [{"v": "1.500000000"}]},
                 {"v": [{"v": ""}]},
                 {"v": {"f": [{"v": "7"}, {"v": [{"v": "a"}]}]}}]},
          {"f": [{"v": "1795132800000000"}, {"v": null}, {"v": null}, {"v": null}, {"v": "-inf"},
                 {"v": null}, {"v": null}, {"v": null}, {"v": null}, {"v": null}, {"v": null},
                 {"v": null}, {"v": null}, {"v": null}, {"v": []}, {"v": []}, {"v": []}, {"v": null}]}]}"#;
        // jsonb, interval, arrays and a STRUCT have no binary form here: the day goes as text.
        let format = format_for(&every_type.schema);
        assert_eq!(format, CopyFormat::Text);
        assert_eq!(copy_body(&every_type, &target, day, format, body), 2);
    }

    /// COPYs the REST response `body` into `target`, encoded in `format` as a sync does.
    fn copy_body(
        source: &Source,
        target: &TargetTable,
        day: SyncDay,
        format: CopyFormat,
        body: &'static str,
    ) -> u64 {
        let body = Body {
            bytes: bytes::Bytes::from_static(body.as_bytes()),
            envelope: Default::default(),
        };
        let (_, page) = RowEncoder::new(source, &target.not_null, day, format)
            .encode_body(&body)
            .expect("rows encode");
        let mut chunk = Some(page.bytes);
        copy_into(
            target.oid,
            &target.qualified_name,
            &source.schema.columns,
            format,
            Box::new(move || Ok(chunk.take())),
        )
        .expect("COPY accepts the rows")
    }

    /// Every type with a binary form, at the edges of its range, stores the same values
    /// through COPY's binary format as through its text format.
    #[pg_test]
    fn binary_and_text_copy_store_the_same_values() {
        // Every type's columns but those with no binary form, in the same order.
        let mut scalars = every_type();
        scalars
            .schema
            .columns
            .retain(|column| column.mode != Mode::Repeated && column.kind.has_binary_form());
        assert_eq!(format_for(&scalars.schema), CopyFormat::Binary);
        let body = r#"{"totalRows": "5", "rows": [
          {"f": [{"v": "1795219199999999"}, {"v": "tab\there \"q\" \\ é\u0000 🚀"}, {"v": "AAH/"},
                 {"v": "-9223372036854775808"}, {"v": "nan"}, {"v": "-99999999999999999999999999999.999999999"},
                 {"v": "578960446186580977117854925043439539266.34992332820282019728792003956564819967"},
                 {"v": "true"}, {"v": "0001-01-01"}, {"v": "9999-12-31T23:59:59.999999"}, {"v": "23:59:59.999999"},
                 {"v": "POINT(1 2)"}]},
          {"f": [{"v": "1795132800000000"}, {"v": ""}, {"v": ""}, {"v": "9223372036854775807"}, {"v": "-inf"},
                 {"v": "0E-9"}, {"v": "1.500000000"}, {"v": "false"}, {"v": "9999-12-31"}, {"v": "0001-01-01 00:00:00"},
                 {"v": "00:00:00"}, {"v": ""}]},
          {"f": [{"v": "1.7951328E9"}, {"v": null}, {"v": null}, {"v": "0"}, {"v": "-0"},
                 {"v": "0.000000001"}, {"v": "1E+30"}, {"v": null}, {"v": "2000-01-01"}, {"v": "1999-12-31 23:59:59.5"},
                 {"v": "12:00:00.000001"}, {"v": null}]},
          {"f": [{"v": "1795132800000001"}, {"v": "x"}, {"v": "/w=="}, {"v": "42"}, {"v": "1e-320"},
                 {"v": "10000"}, {"v": "-0.00000000000000000000000000000000000001"}, {"v": "TRUE"}, {"v": "1999-12-31"},
                 {"v": "2026-11-20T01:02:03.0001255"}, {"v": "01:02:03.0001255"}, {"v": "LINESTRING(0 0, 1 1)"}]},
          {"f": [{"v": "1795132800000002"}, {"v": null}, {"v": null}, {"v": null}, {"v": "1.7976931348623157e308"},
                 {"v": null}, {"v": null}, {"v": null}, {"v": null}, {"v": null}, {"v": null}, {"v": null}]}]}"#;
        let day = SyncDay::from_pg(Date::new(2026, 11, 20).ok(), "day").expect("day");
        for (table, format) in [
            ("public.as_text", CopyFormat::Text),
            ("public.as_binary", CopyFormat::Binary),
        ] {
            let target = TargetTable::prepare(table, &scalars.schema, &scalars.time)
                .expect("table is created");
            assert_eq!(
                copy_body(&scalars, &target, day, format, body),
                5,
                "{table}"
            );
        }
        Spi::run("SET LOCAL DateStyle = 'ISO'; SET LOCAL extra_float_digits = 3").expect("set");
        // Each row as text, so that numeric's display scale and every float bit count.
        let differing = Spi::get_one::<i64>(
            "SELECT count(*) FROM ((SELECT text_row::text FROM as_text text_row \
             EXCEPT ALL SELECT binary_row::text FROM as_binary binary_row) \
             UNION ALL (SELECT binary_row::text FROM as_binary binary_row \
             EXCEPT ALL SELECT text_row::text FROM as_text text_row)) AS differing",
        );
        assert_eq!(differing, Ok(Some(0)));
        let spelled = Spi::get_one::<String>(
            "SELECT concat_ws(' | ', s, n, bn, dt, t) FROM as_binary WHERE i = 0",
        );
        assert_eq!(
            spelled,
            Ok(Some(
                "0.000000001 | 1000000000000000000000000000000 | 1999-12-31 23:59:59.5 | 12:00:00.000001"
                    .to_string()
            ))
        );
        let stripped =
            Spi::get_one::<String>("SELECT s FROM as_binary WHERE i = -9223372036854775808");
        assert_eq!(stripped, Ok(Some("tab\there \"q\" \\ é 🚀".to_string())));
    }

    /// Every BigQuery type, as the REST API sends it, through the COPY text into the table
    /// created from the schema, and read back by PostgreSQL.
    #[pg_test]
    fn every_type_loads_exactly() {
        load_every_type();
        Spi::run("SET LOCAL DateStyle = 'ISO'; SET LOCAL IntervalStyle = 'postgres'").expect("set");
        let full_row = [
            (
                "block_timestamp AT TIME ZONE 'UTC'",
                "2026-11-20 23:59:59.999999",
            ),
            ("s", "tab\there \"q\" \\ é"),
            ("b", "\\x0001ff"),
            ("i", "-9223372036854775808"),
            ("f", "NaN"),
            ("n", "-99999999999999999999999999999.999999999"),
            (
                "bn",
                "578960446186580977117854925043439539266.34992332820282019728792003956564819967",
            ),
            ("ok", "true"),
            ("d", "0001-01-01"),
            ("dt", "9999-12-31 23:59:59.999999"),
            ("t", "23:59:59.999999"),
            ("j", r#"{"a": null, "b": {"c": [1, 2.50]}}"#),
            ("iv", "-1 years -2 mons +3 days -04:05:06.5"),
            ("g", "POINT(1 2)"),
            ("topics", r#"{0xa,"with,comma \"and\" {braces}"}"#),
            ("amounts", "{1.5}"),
            ("blobs", r#"{"\\x"}"#),
            ("st", r#"{"x": 7, "y": ["a"]}"#),
        ];
        for (expression, expected) in full_row {
            let loaded = Spi::get_one::<String>(&format!(
                "SELECT ({expression})::text FROM every_type WHERE i IS NOT NULL"
            ));
            assert_eq!(loaded, Ok(Some(expected.to_string())), "{expression}");
        }
        let empty = Spi::get_one::<String>(
            "SELECT concat_ws(' | ', f, topics, amounts, blobs, s IS NULL, st IS NULL) FROM every_type WHERE i IS NULL",
        );
        assert_eq!(
            empty,
            Ok(Some("-Infinity | {} | {} | {} | t | t".to_string()))
        );
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
