"""pg_cron really runs the scheduled D-1 syncs, of tokens and of every registered table
(pg_cron schedules by the minute), through the emulator's Storage Read API."""

import datetime as dt

from helpers import UTC, token, wait_until


def test_scheduled_d1_jobs_run_through_pg_cron_and_load_yesterday(db, emulator, psql, cluster):
    from conftest import DATABASE, Source

    source = Source(emulator, db)
    yesterday = dt.datetime.now(UTC).date() - dt.timedelta(days=1)
    start = dt.datetime.combine(yesterday, dt.time(), UTC)
    source.insert([token(n, start + dt.timedelta(hours=n)) for n in range(1, 6)])
    db.execute(f"ALTER DATABASE {DATABASE} SET token_sync.source_table = '{source.name}'")
    db.execute(f"ALTER DATABASE {DATABASE} SET token_sync.storage_api_url = 'http://127.0.0.1:{emulator.grpc_port}'")
    db.execute("TRUNCATE token_sync.tables")
    db.execute("DROP TABLE IF EXISTS raw_registered")
    db.execute("SELECT * FROM token_sync.add_table(%s, 'raw_registered')", (source.name,))
    try:
        psql("pg_cron/schedule.sql", d1_schedule="* * * * *")
        psql("pg_cron/schedule_registered.sql", d1_schedule="* * * * *")
        jobs = db.execute("SELECT jobname, schedule FROM cron.job ORDER BY jobname").fetchall()
        assert jobs == [("token-sync-all-catch-up", "45 5 * * *"), ("token-sync-all-d1", "* * * * *"),
                        ("token-sync-all-d2", "45 4 * * *"), ("token-sync-catch-up", "30 5 * * *"),
                        ("token-sync-d1", "* * * * *"), ("token-sync-d2", "30 4 * * *")]

        def finished_runs():
            runs = db.execute(
                "SELECT j.jobname, d.status, d.return_message FROM cron.job_run_details d JOIN cron.job j "
                "USING (jobid) WHERE j.jobname LIKE '%d1' AND d.status IN ('succeeded', 'failed') "
                "ORDER BY j.jobname").fetchall()
            return runs if len(runs) == 2 else None
        runs = wait_until(finished_runs, timeout=75)
        assert [(name, status) for name, status, _ in runs or []] == [
            ("token-sync-all-d1", "succeeded"), ("token-sync-d1", "succeeded")], runs
        assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (5,)
        assert db.execute("SELECT count(*) FROM raw_registered").fetchone() == (5,)
        assert db.execute("SELECT target_table, day, status, rows_loaded, read_api FROM token_sync.runs "
                          "ORDER BY target_table").fetchall() == \
            [("public.raw_registered", yesterday, "succeeded", 5, "storage"),
             ("public.raw_tokens", yesterday, "succeeded", 5, "storage")]
    finally:
        psql("pg_cron/unschedule.sql")
        db.execute(f"ALTER DATABASE {DATABASE} RESET token_sync.source_table")
        db.execute(f"ALTER DATABASE {DATABASE} RESET token_sync.storage_api_url")
        db.execute("TRUNCATE token_sync.tables")
        db.execute("DROP TABLE IF EXISTS raw_registered")
    assert db.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
