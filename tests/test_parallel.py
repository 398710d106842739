"""A backfill's days at once: `token_backfill(from_day, to_day, parallel)` and
`token_sync.backfill(source_table, from_day, to_day, parallel)` sync each day in a
background worker of their own, each day still its own unit with its ledger row."""

import datetime as dt
import threading
import time

import psycopg
import pytest

from helpers import UTC, notices, to_fake, token, wait_until

FIRST = dt.datetime(2026, 11, 10, tzinfo=UTC)
WORKERS = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'token_sync backfill'"


def wait_for_free_slots(db):
    """Until no worker of an earlier call (a backfill's, a ledger writer, a parallel query's)
    holds a slot, so that the slots a test counts are the server's. A worker leaves
    pg_stat_activity before the postmaster frees its slot, which no view shows: the
    postmaster gets a moment once none is left."""
    others = ("SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type LIKE 'token_sync %' "
              "OR backend_type = 'parallel worker'")
    assert wait_until(lambda: db.execute(others).fetchone() == (0,), timeout=10, interval=0.05)
    time.sleep(1)


def rows_on(day_index, count, first_number):
    day = FIRST + dt.timedelta(days=day_index)
    return [token(first_number + n, day + dt.timedelta(minutes=n + 1)) for n in range(count)]


def test_days_at_once_are_each_synced_once_by_a_worker(source, db):
    """Against the emulator: six days, three at once; the session's own SET of the source
    table reaches the workers."""
    rows = [r for index in range(6) for r in rows_on(index, index + 1, 100 * index)]
    source.insert(rows)
    db.execute("SELECT token_sync_day('2026-11-09')")  # the target exists before the workers start
    seen = notices(db)
    result = db.execute("SELECT day::text, status, rows_loaded, rows_reported, error "
                        "FROM token_backfill('2026-11-10', '2026-11-15', 3)").fetchall()
    assert result == [(f"2026-11-{10 + i}", "succeeded", i + 1, i + 1, None) for i in range(6)]
    assert seen == []
    assert db.execute("SELECT count(*), count(DISTINCT block_number) FROM raw_tokens").fetchone() == (21, 21)
    ledger = db.execute("SELECT day::text, status, rows_loaded, backend_pid <> pg_backend_pid() "
                        "FROM token_sync.attempts WHERE day >= '2026-11-10' ORDER BY day").fetchall()
    assert ledger == [(f"2026-11-{10 + i}", "succeeded", i + 1, True) for i in range(6)]
    assert len({pid for pid, in db.execute(
        "SELECT backend_pid FROM token_sync.runs WHERE day >= '2026-11-10'").fetchall()}) == 3
    for i in range(6):
        assert db.execute(f"SELECT matches FROM token_verify_day('2026-11-{10 + i}')").fetchone() == (True,)
    assert wait_until(lambda: db.execute(WORKERS).fetchone() == (0,), timeout=5, interval=0.1)

    # Again: every day unchanged, as one after another would find it.
    assert db.execute("SELECT array_agg(DISTINCT status) FROM token_backfill('2026-11-10', '2026-11-15', 4)"
                      ).fetchone() == (["unchanged"],)


def test_a_failing_day_is_reported_and_the_others_load(db, fake_google):
    fake_google.rows = [to_fake(r) for index in range(4) for r in rows_on(index, 2, 10 * index)]
    fake_google.rows[5]["symbol"] = "BAD"  # the third day's second row
    db.execute("SELECT token_sync_day('2026-11-09')")
    db.execute("ALTER TABLE raw_tokens ADD CONSTRAINT no_bad_symbol CHECK (symbol <> 'BAD')")
    seen = notices(db)
    result = db.execute("SELECT day::text, status, rows_loaded, error IS NULL "
                        "FROM token_backfill('2026-11-10', '2026-11-13', 2)").fetchall()
    assert result == [("2026-11-10", "succeeded", 2, True), ("2026-11-11", "succeeded", 2, True),
                      ("2026-11-12", "failed", None, False), ("2026-11-13", "succeeded", 2, True)]
    (error,), = db.execute("SELECT error FROM token_backfill('2026-11-12', '2026-11-12', 2)").fetchall()
    assert 'violates check constraint "no_bad_symbol"' in error
    assert ("WARNING", f"token_sync: 2026-11-12 failed: {error}") in seen
    assert db.execute("SELECT (block_timestamp AT TIME ZONE 'UTC')::date::text, count(*) FROM raw_tokens "
                      "GROUP BY 1 ORDER BY 1").fetchall() == [
        ("2026-11-10", 2), ("2026-11-11", 2), ("2026-11-13", 2)]
    assert db.execute("SELECT status, count(*) FROM token_sync.runs WHERE day = '2026-11-12' GROUP BY 1"
                      ).fetchall() == [("failed", 2)]


def test_a_cancel_stops_every_worker_within_a_second(db, fake_google, cluster):
    fake_google.rows = [to_fake(r) for index in range(6) for r in rows_on(index, 1, index)]
    db.execute("SELECT token_sync_day('2026-11-09')")
    before = fake_google.count("query")
    # Every query hangs 30 s: the workers are all waiting on BigQuery when the cancel comes.
    fake_google.fault = lambda kind, n: {"delay": 30} if kind == "query" else None
    pid = db.info.backend_pid

    def cancel_once_working():
        with cluster.connect() as other:
            wait_until(lambda: other.execute(WORKERS).fetchone() == (3,), timeout=10, interval=0.05)
            wait_until(lambda: fake_google.count("query") >= before + 3, timeout=10, interval=0.05)
            time.sleep(0.3)
            other.execute("SELECT pg_cancel_backend(%s)", (pid,))
    canceller = threading.Thread(target=cancel_once_working, daemon=True)
    canceller.start()
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.execute("SELECT * FROM token_backfill('2026-11-10', '2026-11-15', 3)")
    cancelled_at = time.monotonic()
    canceller.join()
    assert cancelled_at - started < 10
    gone = wait_until(lambda: db.execute(WORKERS).fetchone() == (0,), timeout=1, interval=0.05)
    assert gone, "a worker outlived the cancel by more than a second"
    # The days in flight were rolled back: nothing of them, and their attempts abandoned.
    assert db.execute("SELECT count(*) FROM raw_tokens WHERE block_timestamp >= '2026-11-10'").fetchone() == (0,)
    outcomes = db.execute("SELECT outcome, count(*) FROM token_sync.attempts WHERE day >= '2026-11-10' "
                          "GROUP BY 1").fetchall()
    assert outcomes == [("abandoned", 3)]
    assert fake_google.count("query") == before + 3, "no day was started after the cancel"


@pytest.mark.parametrize("parallel", ["NULL", "0", "-1", "33"])
def test_parallel_out_of_range_is_refused(db, parallel):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        db.execute(f"SELECT * FROM token_backfill('2026-11-10', '2026-11-11', {parallel})")
    shown = "NULL" if parallel == "NULL" else parallel
    assert refused.value.diag.message_primary == f"parallel must be between 1 and 32, not {shown}"
    assert "max_worker_processes" in refused.value.diag.message_hint


def test_more_workers_than_the_server_allows_go_on_with_those_it_starts(source, db, cluster):
    source.insert([r for index in range(10) for r in rows_on(index, 1, index)])
    db.execute("SELECT token_sync_day('2026-11-09')")
    wait_for_free_slots(db)
    log_before = cluster.log.stat().st_size
    seen = notices(db)
    result = db.execute("SELECT status FROM token_backfill('2026-11-10', '2026-11-19', 32)").fetchall()
    assert result == [("succeeded",)] * 10
    # Of max_worker_processes = 8, pg_cron's launcher holds one, and one is kept free.
    assert seen == [("NOTICE", "token_sync: 5 of 10 background workers work on the backfill: the server has no "
                               "slot for more (max_worker_processes), and keeps one for the ledger's writes")]
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (10,)
    assert db.execute("SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM token_sync.runs "
                      "WHERE day >= '2026-11-10'").fetchone() == (10, 10)
    # Every ledger write found a slot (each waits up to 5 s for one).
    with open(cluster.log, "rb") as log:
        log.seek(log_before)
        assert b"could not write to the token_sync ledger" not in log.read()
    assert len({pid for pid, in db.execute(
        "SELECT backend_pid FROM token_sync.runs WHERE day >= '2026-11-10'").fetchall()}) <= 6


def test_a_running_backfill_shows_its_progress_to_other_sessions(db, fake_google, cluster):
    fake_google.rows = [to_fake(r) for index in range(4) for r in rows_on(index, 2, 10 * index)]
    db.execute("SELECT token_sync_day('2026-11-09')")
    db.execute("TRUNCATE token_sync.backfills")
    # Each day's query takes a second: two days at once, four days, about two seconds.
    fake_google.fault = lambda kind, n: {"delay": 1} if kind == "query" else None
    progress = ("SELECT source_table, target_table, from_day::text, to_day::text, parallel, days, days_done, "
                "days_failed, days_running, rows_loaded, state, eta IS NOT NULL FROM token_sync.backfill_progress")
    midway = []

    def watch():
        with cluster.connect() as other:
            midway.append(wait_until(lambda: [r for r in other.execute(progress).fetchall() if r[6] == 2],
                                     timeout=10, interval=0.05))
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    db.execute("SELECT * FROM token_backfill('2026-11-10', '2026-11-13', 2)")
    watcher.join()
    source = "bigquery-public-data.crypto_ethereum.tokens"
    (row,), = midway
    assert row[:7] == (source, "public.raw_tokens", "2026-11-10", "2026-11-13", 2, 4, 2)
    assert row[7] == 0 and row[8] in (0, 1, 2) and row[9] == 4
    assert row[10:] == ("running", True)
    assert db.execute(progress).fetchall() == [
        (source, "public.raw_tokens", "2026-11-10", "2026-11-13", 2, 4, 4, 0, 0, 8, "finished", False)]


def test_inside_a_transaction_block_it_is_refused_and_parallel_1_runs_there(db, fake_google):
    fake_google.rows = [to_fake(r) for index in range(2) for r in rows_on(index, 1, index)]
    db.execute("SELECT token_sync_day('2026-11-09')")
    db.execute("BEGIN")
    db.execute("SELECT token_sync_day('2026-11-10')")  # holds the day's lock a worker would wait on
    with pytest.raises(psycopg.errors.ActiveSqlTransaction) as refused:
        db.execute("SELECT * FROM token_backfill('2026-11-10', '2026-11-11', 2)")
    assert refused.value.diag.message_primary == "a backfill with parallel cannot run inside a transaction block"
    assert "parallel => 1" in refused.value.diag.message_hint
    db.execute("ROLLBACK")
    db.execute("BEGIN")
    assert db.execute("SELECT count(*) FROM token_backfill('2026-11-10', '2026-11-11', 1)").fetchone() == (2,)
    db.execute("COMMIT")
    # Not a transaction block, but one statement that synced a day first: its worker would
    # wait for the day's lock for ever; the call fails instead, within about a second.
    started = time.monotonic()
    with pytest.raises(psycopg.errors.DeadlockDetected) as blocked:
        db.execute("DO $$BEGIN PERFORM token_sync_day('2026-11-10'); "
                   "PERFORM * FROM token_backfill('2026-11-10', '2026-11-11', 2); END$$")
    assert blocked.value.diag.message_primary == "a backfill worker waits for a lock that this call's own statement holds"
    assert time.monotonic() - started < 5
    assert wait_until(lambda: db.execute(WORKERS).fetchone() == (0,), timeout=1, interval=0.05)


def test_the_end_of_the_caller_stops_every_worker_within_a_second(db, fake_google, cluster):
    fake_google.rows = [to_fake(r) for index in range(6) for r in rows_on(index, 1, index)]
    db.execute("SELECT token_sync_day('2026-11-09')")
    before = fake_google.count("query")
    fake_google.fault = lambda kind, n: {"delay": 30} if kind == "query" else None
    caller = cluster.connect()
    caller.execute(f"SET token_sync.api_url = '{fake_google.base_url}'")
    caller.execute("SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
    pid = caller.info.backend_pid
    running = threading.Thread(target=lambda: pytest.raises(
        psycopg.OperationalError, caller.execute, "SELECT * FROM token_backfill('2026-11-10', '2026-11-15', 2)"),
        daemon=True)
    running.start()
    assert wait_until(lambda: fake_google.count("query") >= before + 2, timeout=10, interval=0.05)
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    terminated = time.monotonic()
    assert wait_until(lambda: db.execute(WORKERS).fetchone() == (0,), timeout=1.5, interval=0.05), \
        "a worker outlived its caller by more than a second"
    assert time.monotonic() - terminated < 1.5
    running.join()
    assert db.execute("SELECT count(*) FROM raw_tokens WHERE block_timestamp >= '2026-11-10'").fetchone() == (0,)
    assert fake_google.count("query") == before + 2, "no day was started after the caller ended"


def test_workers_take_the_callers_settings_and_role_whatever_their_source(db, fake_google, cluster):
    """Settings given as connection options, and a SET ROLE to a role that cannot log in:
    the workers connect as the login and act as the role, with the caller's settings."""
    fake_google.rows = [to_fake(r) for index in range(2) for r in rows_on(index, 1, index)]
    db.execute("SELECT token_sync_day('2026-11-09')")
    db.execute("DROP ROLE IF EXISTS chain_runner")
    db.execute("CREATE ROLE chain_runner NOLOGIN")
    db.execute("GRANT EXECUTE ON FUNCTION token_backfill(date, date, integer) TO chain_runner")
    db.execute("GRANT SELECT, DELETE ON public.raw_tokens TO chain_runner")  # not INSERT
    options = (f"-c token_sync.api_url={fake_google.base_url} "
               "-c token_sync.source_table=bigquery-public-data.crypto_ethereum.tokens")
    try:
        with cluster.connect(options=options) as caller:
            assert caller.execute("SELECT status FROM token_backfill('2026-11-10', '2026-11-11', 2)").fetchall() == [
                ("succeeded",), ("succeeded",)]
            caller.execute("SET ROLE chain_runner")
            rows = caller.execute("SELECT status, error FROM token_backfill('2026-11-10', '2026-11-11', 2)").fetchall()
            assert rows == [("failed", "permission denied to insert into public.raw_tokens")] * 2
            caller.execute("RESET ROLE")
    finally:
        db.execute("DROP OWNED BY chain_runner")
        db.execute("DROP ROLE chain_runner")


def test_with_every_slot_taken_one_is_kept_for_the_ledger(source, db, cluster):
    """max_worker_processes = 8: pg_cron's launcher and the logical replication launcher hold
    two, so six workers would fit and leave none for the ledger's writes."""
    source.insert([r for index in range(12) for r in rows_on(index, 1, index)])
    db.execute("SELECT token_sync_day('2026-11-09')")
    wait_for_free_slots(db)
    log_before = cluster.log.stat().st_size
    seen = notices(db)
    started = time.monotonic()
    assert db.execute("SELECT count(*) FROM token_backfill('2026-11-10', '2026-11-21', 6) "
                      "WHERE status = 'succeeded'").fetchone() == (12,)
    assert time.monotonic() - started < 30, "the ledger's writes waited for slots"
    assert seen == [("NOTICE", "token_sync: 5 of 6 background workers work on the backfill: the server has no slot "
                               "for more (max_worker_processes), and keeps one for the ledger's writes")]
    with open(cluster.log, "rb") as log:
        log.seek(log_before)
        assert b"could not write to the token_sync ledger" not in log.read()


def test_a_long_error_is_cut_to_fit_and_a_column_is_added_once(db, fake_google):
    fake_google.rows = [to_fake(r) for index in range(4) for r in rows_on(index, 1, index)]
    db.execute("SELECT token_sync_day('2026-11-09')")
    fake_google.schema = fake_google.schema + [("gas_price", "INTEGER")]
    fake_google.rows = [dict(r, gas_price=7) for r in fake_google.rows]
    statuses = db.execute("SELECT status FROM token_backfill('2026-11-10', '2026-11-13', 4)").fetchall()
    assert statuses == [("succeeded",)] * 4
    assert db.execute("SELECT schema_changes FROM token_sync.runs WHERE schema_changes IS NOT NULL").fetchall() == [
        ("added gas_price (bigint)",)]
    assert db.execute("SELECT count(*) FROM raw_tokens WHERE gas_price = 7").fetchone() == (4,)

    quoted = '"\u0001' * 1500
    fake_google.fault = lambda kind, n: {"status": 400, "body": {"error": {
        "code": 400, "message": quoted, "errors": [{"reason": "invalidQuery", "message": quoted}]}}} \
        if kind == "query" else None
    db.execute("TRUNCATE raw_tokens")
    rows = db.execute("SELECT status, error FROM token_backfill('2026-11-10', '2026-11-11', 2)").fetchall()
    for status, error in rows:
        assert status == "failed" and error.endswith("…") and '"\u0001"' in error, error[:200]
