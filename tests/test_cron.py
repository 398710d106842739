"""pg_cron really runs the scheduled D-1 sync (pg_cron schedules by the minute)."""

import datetime as dt

from helpers import UTC, token, wait_until


def test_scheduled_d1_job_runs_through_pg_cron_and_loads_yesterday(db, emulator, psql, cluster):
    from conftest import DATABASE, Source

    source = Source(emulator, db)
    yesterday = dt.datetime.now(UTC).date() - dt.timedelta(days=1)
    start = dt.datetime.combine(yesterday, dt.time(), UTC)
    source.insert([token(n, start + dt.timedelta(hours=n)) for n in range(1, 6)])
    db.execute(f"ALTER DATABASE {DATABASE} SET token_sync.source_table = '{source.name}'")
    try:
        psql("pg_cron/schedule.sql", d1_schedule="* * * * *")
        jobs = db.execute("SELECT jobname, schedule FROM cron.job ORDER BY jobname").fetchall()
        assert jobs == [("token-sync-d1", "* * * * *"), ("token-sync-d2", "30 4 * * *")]

        def finished_run():
            return db.execute(
                "SELECT d.status, d.return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid) "
                "WHERE j.jobname = 'token-sync-d1' AND d.status IN ('succeeded', 'failed')").fetchone()
        status, message = wait_until(finished_run, timeout=75)
        assert status == "succeeded", message
        assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (5,)
        assert db.execute("SELECT day, status, rows_loaded FROM token_sync.runs").fetchall() == \
            [(yesterday, "succeeded", 5)]
    finally:
        psql("pg_cron/unschedule.sql")
        db.execute(f"ALTER DATABASE {DATABASE} RESET token_sync.source_table")
    assert db.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
