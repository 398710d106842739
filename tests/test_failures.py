"""Failure semantics: transient errors are retried, permanent ones are not; a killed
backend, a cancel or a failure leaves the day as it was and the ledger says what happened;
two sessions on one day give one copy; secrets never leak; hostile input is refused."""

import datetime as dt
import json
import os
import signal
import threading
import time
import urllib.parse

import psycopg
import pytest

from helpers import UTC, cancel_later, notices, to_fake, token, wait_until

MIDNIGHT = dt.datetime(2026, 11, 20, tzinfo=UTC)


def day_rows(count, day=MIDNIGHT):
    return [to_fake(token(n, day + dt.timedelta(minutes=n))) for n in range(1, count + 1)]


def bigquery_error(status, reason):
    return {"status": status, "body": {"error": {"code": status, "message": f"simulated {reason}",
                                                 "errors": [{"reason": reason, "message": f"simulated {reason}"}]}}}


@pytest.mark.parametrize("status, reason", [
    (429, "rateLimitExceeded"), (403, "rateLimitExceeded"), (500, "backendError"), (500, "internalError"),
    (502, "badGateway"), (503, "backendError"), (504, "timeout"), (400, "jobRateLimitExceeded"),
])
def test_transient_errors_are_retried_with_the_same_request_id(db, fake_google, status, reason):
    fake_google.rows = day_rows(4)
    fake_google.fault = lambda kind, n: bigquery_error(status, reason) if kind == "query" and n < 2 else None
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (4,)
    queries = [json.loads(body) for kind, _, _, body in fake_google.requests if kind == "query"]
    assert len(queries) == 3
    assert len({q["requestId"] for q in queries}) == 1, "a retry must not start a second job"
    assert db.execute("SELECT status FROM token_sync.runs").fetchall() == [("succeeded",)]


@pytest.mark.parametrize("fault", [bigquery_error(503, "backendError"), {"cut": True}])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_failed_page_is_fetched_again_at_the_same_position(db, fake_google, fault, concurrency):
    fake_google.rows = day_rows(10)
    db.execute("SET token_sync.page_rows = 3")
    db.execute(f"SET token_sync.fetch_concurrency = {concurrency}")
    fake_google.fault = lambda kind, n: fault if kind == "results" and n == 1 else None
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (10,)
    asked = [urllib.parse.parse_qs(query) for (kind, *_), query in zip(fake_google.requests, fake_google.queries)
             if kind == "results"]
    key = "pageToken" if concurrency == 1 else "startIndex"
    positions = [int(a[key][0]) for a in asked]
    failed = positions[1]
    assert sorted(positions) == sorted([3, 6, 9, failed]), "the failed page is asked for again, nothing else"
    assert positions.count(failed) == 2
    assert fake_google.count("query") == 1
    assert db.execute("SELECT block_number FROM raw_tokens ORDER BY 1").fetchall() == [(n,) for n in range(1, 11)]


def page_with_errors(reason):
    return {"status": 200, "body": {"kind": "bigquery#getQueryResultsResponse", "jobComplete": True,
                                    "totalRows": "9", "rows": [],
                                    "errors": [{"reason": reason, "message": f"simulated {reason} in a page"}]}}


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_page_that_reports_errors_fails_the_day(db, fake_google, concurrency):
    """A page of rows is read in one pass; errors BigQuery reports in it (a 200 answer) are
    read in that pass too, and fail the day with their message."""
    fake_google.rows = day_rows(6)
    db.execute("SELECT token_sync_day('2026-11-20')")
    fake_google.rows = day_rows(9)
    db.execute("SET token_sync.page_rows = 3")
    db.execute(f"SET token_sync.fetch_concurrency = {concurrency}")
    fake_google.fault = lambda kind, n: page_with_errors("invalid") if kind == "results" and n == 1 else None
    with pytest.raises(psycopg.Error) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert "simulated invalid in a page" in error.value.diag.message_primary
    assert fake_google.count("results") == 2, "the pages at rows 3 and 6; the failed one not asked for again"
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (6,)
    assert db.execute("SELECT status FROM token_sync.runs ORDER BY run_id").fetchall() == [("succeeded",), ("failed",)]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_page_that_reports_a_transient_error_is_asked_for_again(db, fake_google, concurrency):
    fake_google.rows = day_rows(9)
    db.execute("SET token_sync.page_rows = 3")
    db.execute(f"SET token_sync.fetch_concurrency = {concurrency}")
    fake_google.fault = lambda kind, n: page_with_errors("backendError") if kind == "results" and n == 1 else None
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (9,)
    assert fake_google.count("results") == 3, "the pages at rows 3 and 6, and the failed one once more"
    assert db.execute("SELECT block_number FROM raw_tokens ORDER BY 1").fetchall() == [(n,) for n in range(1, 10)]


def test_a_connection_cut_every_time_fails_the_day_after_the_retries(db, fake_google):
    fake_google.rows = day_rows(6)
    db.execute("SELECT token_sync_day('2026-11-20')")
    fake_google.rows = day_rows(9)
    db.execute("SET token_sync.page_rows = 3")
    db.execute("SET token_sync.max_retries = 3")
    db.execute("SET token_sync.fetch_concurrency = 1")  # one page at a time: a countable number of tries
    fake_google.fault = lambda kind, n: {"cut": True} if kind == "results" else None
    with pytest.raises(psycopg.errors.ConnectionFailure) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert "gave up after 3 retries" in error.value.diag.message_detail
    assert fake_google.count("results") == 4
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (6,)
    assert db.execute("SELECT status FROM token_sync.runs ORDER BY run_id").fetchall() == [("succeeded",), ("failed",)]


@pytest.mark.parametrize("status, reason", [(400, "invalidQuery"), (401, "authError"), (403, "accessDenied"),
                                            (404, "notFound"), (403, "quotaExceeded"),
                                            (400, "bytesBilledLimitExceeded")])
def test_permanent_errors_fail_at_once(db, fake_google, status, reason):
    fake_google.rows = day_rows(2)
    fake_google.fault = lambda kind, n: bigquery_error(status, reason) if kind == "query" else None
    with pytest.raises(psycopg.Error) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert fake_google.count("query") == 1
    assert error.value.diag.message_hint
    failed, = db.execute("SELECT status, error FROM token_sync.runs").fetchall()
    assert failed[0] == "failed" and f"simulated {reason}" in failed[1]


def test_cancel_during_a_retry_backoff_stops_within_a_second(db, fake_google, cluster):
    fake_google.rows = day_rows(2)
    db.execute("SELECT token_sync_day('2026-11-20')")
    db.execute("SET token_sync.retry_delay = '30s'")
    fake_google.rows = day_rows(3)  # the day changed, so the re-sync queries its rows
    fake_google.fault = lambda kind, n: bigquery_error(503, "backendError") if kind == "query" else None

    def second_query_then_half_a_second():
        wait_until(lambda: fake_google.count("query") >= 2, timeout=10, interval=0.05)
        time.sleep(0.5)
    cancel_later(cluster, db.info.backend_pid, second_query_then_half_a_second)
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert time.monotonic() - started < 0.5 + 1.0 + 0.5
    assert fake_google.count("query") == 2, "no retry after the cancel"
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (2,)
    assert db.execute("SELECT outcome, error FROM token_sync.attempts ORDER BY run_id").fetchall() == [
        ("succeeded", None), ("failed", "canceling statement due to user request")]


def test_backfill_stops_at_a_cancel_instead_of_skipping_the_day(db, fake_google):
    fake_google.rows = day_rows(1, MIDNIGHT) + day_rows(1, MIDNIGHT + dt.timedelta(days=1))
    db.execute("SELECT token_sync_day('2026-11-19')")  # the table outlives the cancelled call
    fake_google.fault = lambda kind, n: {"delay": 5, "status": 500} if kind == "query" and n == 2 else None
    db.execute("SET statement_timeout = '1500ms'")
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.execute("SELECT * FROM token_backfill('2026-11-20', '2026-11-22')")
    db.execute("RESET statement_timeout")
    assert fake_google.count("query") == 3, "the third day was not attempted"
    # The 20th was loaded, then rolled back with the cancelled statement: abandoned, not succeeded.
    assert db.execute("SELECT day, outcome FROM token_sync.attempts ORDER BY run_id").fetchall() == [
        (dt.date(2026, 11, 19), "succeeded"), (dt.date(2026, 11, 20), "abandoned"),
        (dt.date(2026, 11, 21), "failed")]
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (0,)


def test_sigkill_mid_load_keeps_the_day_and_the_ledger_shows_abandoned(db, fake_google, cluster):
    fake_google.rows = day_rows(3)
    db.execute("SELECT token_sync_day('2026-11-20')")
    fake_google.rows = day_rows(8)
    db.execute("SET token_sync.page_rows = 2")
    fake_google.fault = lambda kind, n: {"delay": 30, "status": 500} if kind == "results" and n == 2 else None
    victim = db.info.backend_pid
    failure = []

    def run():
        try:
            db.execute("SELECT token_sync_day('2026-11-20')")
        except psycopg.Error as error:
            failure.append(error)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    with cluster.connect() as observer:
        running = wait_until(lambda: observer.execute(
            "SELECT run_id FROM token_sync.attempts WHERE outcome = 'running'").fetchone(), timeout=20, interval=0.1)
        assert running, "the attempt is visible as running while it runs"
        wait_until(lambda: fake_google.count("results") >= 3, timeout=20, interval=0.1)
    log_before = cluster.log.stat().st_size
    os.kill(victim, signal.SIGKILL)
    worker.join(timeout=20)
    assert failure, "the killed session's call must not succeed"

    def recovered():
        # A connection made before the postmaster has seen its child die is ended with the
        # others when it reinitializes: wait for it to be ready again.
        log = cluster.log.read_bytes()[log_before:].decode(errors="replace")
        restart = log.find("reinitializing")
        return restart >= 0 and log.find("ready to accept connections", restart) >= 0
    assert wait_until(recovered, timeout=30, interval=0.2), "the server restarts after a backend is killed"

    def reconnect():
        try:
            return cluster.connect()
        except psycopg.OperationalError:
            return None
    conn = wait_until(reconnect, timeout=30, interval=0.5)
    with conn:
        assert conn.execute("SELECT block_number FROM raw_tokens ORDER BY 1").fetchall() == [(1,), (2,), (3,)]
        assert conn.execute("SELECT status, outcome FROM token_sync.attempts ORDER BY run_id").fetchall() == [
            ("succeeded", "succeeded"), ("running", "abandoned")]
        assert conn.execute("SELECT last_attempt_status, missing FROM token_sync.day_status").fetchall() == [
            ("abandoned", False)]


def test_two_sessions_on_one_day_give_one_copy(db, fake_google, cluster):
    fake_google.rows = day_rows(5)
    fake_google.fault = lambda kind, n: {"delay": 1.0} if kind == "query" else None
    results, errors = [], []

    def sync():
        try:
            with cluster.connect() as conn:
                conn.execute(f"SET token_sync.api_url = '{fake_google.base_url}'")
                conn.execute("SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
                conn.execute("SELECT token_sync_day('2026-11-19')")  # the table exists before the race
                started = time.monotonic()
                conn.execute("SELECT token_sync_day('2026-11-20')")
                results.append((started, time.monotonic()))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
    threads = [threading.Thread(target=sync) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(results) == 2
    assert db.execute("SELECT count(*), count(DISTINCT block_number) FROM raw_tokens "
                      "WHERE block_timestamp >= '2026-11-20 00:00+00'").fetchone() == (5, 5)
    # The second finds the day as the first left it, the same as BigQuery's: unchanged.
    assert db.execute("SELECT status FROM token_sync.runs WHERE day = '2026-11-20' ORDER BY finished_at"
                      ).fetchall() == [("succeeded",), ("unchanged",)]
    assert db.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'raw_tokens'").fetchone() == (1,)


def test_different_days_run_at_once(db, fake_google, cluster):
    fake_google.rows = day_rows(2, MIDNIGHT) + day_rows(2, MIDNIGHT + dt.timedelta(days=1))
    db.execute("SELECT token_sync_day('2026-11-18')")  # creates the table
    fake_google.fault = lambda kind, n: {"delay": 2.0} if kind == "results" else None
    db.execute("SET token_sync.page_rows = 1")
    spans = []

    def sync(day):
        with cluster.connect() as conn:
            conn.execute(f"SET token_sync.api_url = '{fake_google.base_url}'")
            conn.execute("SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
            conn.execute("SET token_sync.page_rows = 1")
            started = time.monotonic()
            conn.execute(f"SELECT token_sync_day('{day}')")
            spans.append((started, time.monotonic()))
    threads = [threading.Thread(target=sync, args=(d,)) for d in ("2026-11-20", "2026-11-21")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(spans) == 2
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert b_start < a_end, "the second day did not wait for the first"
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (4,)


def test_a_server_echoing_the_bearer_token_cannot_leak_it(db, fake_google, key_file, cluster):
    path, _, _ = key_file
    token = fake_google.access_token
    echo = {"status": 403, "body": {"error": {"code": 403, "message": f"denied for Bearer {token}",
                                              "errors": [{"reason": "accessDenied", "message": f"denied for {token}"}]}}}
    fake_google.fault = lambda kind, n: echo if kind == "query" else None
    db.execute(f"SET token_sync.credentials = '{path}'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    diag = error.value.diag
    text = " ".join(filter(None, [diag.message_primary, diag.message_detail, diag.message_hint]))
    assert "[redacted]" in text and token not in text
    ledger = db.execute("SELECT string_agg(coalesce(error, ''), ' ') FROM token_sync.runs").fetchone()[0]
    assert "[redacted]" in ledger and token not in ledger
    assert token not in cluster.log.read_text(errors="replace")


def test_an_unreadable_key_file_is_refused_before_any_call(db, fake_google, key_file):
    path, _, _ = key_file
    os.chmod(path, 0o000)
    db.execute(f"SET token_sync.credentials = '{path}'")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert "cannot be read" in error.value.diag.message_primary
    assert fake_google.requests == []


@pytest.mark.parametrize("change, error, words", [
    # A column the target mirrors is gone from the source, or renamed.
    (lambda s: [c for c in s if c[0] != "block_hash"], psycopg.errors.UndefinedColumn,
     "the source no longer has the column block_hash, which the target table public.raw_tokens mirrors"),
    (lambda s: [("hash" if n == "block_hash" else n, t) for n, t in s], psycopg.errors.UndefinedColumn,
     "the source no longer has the column block_hash"),
    (lambda s: [(n, "FLOAT" if n == "block_number" else t) for n, t in s], psycopg.errors.DatatypeMismatch,
     "column block_number of the target table public.raw_tokens is bigint, but the source's is double precision"),
])
def test_a_source_of_another_schema_fails_the_day_without_writing(db, fake_google, change, error, words):
    fake_google.rows = day_rows(3)
    db.execute("SELECT token_sync_day('2026-11-20')")
    db.execute("SET token_sync.skip_unchanged = off")
    fake_google.schema = change(fake_google.schema)
    with pytest.raises(error) as raised:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert words in raised.value.diag.message_primary
    assert "ALTER TABLE public.raw_tokens" in raised.value.diag.message_hint
    assert fake_google.count("query") == 1, "refused before the day's rows were asked for"
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (3,)
    columns = db.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'raw_tokens'::regclass AND attnum > 0"
                         ).fetchone()
    assert columns == (8,), "nothing was added"


def test_a_column_the_source_gains_is_added_recorded_and_loaded(db, fake_google):
    fake_google.rows = day_rows(3)
    db.execute("SELECT token_sync_day('2026-11-20')")
    fake_google.schema = fake_google.schema + [("gas_price", "INTEGER"), ("topics", "STRING")]
    fake_google.rows = [dict(r, gas_price=n * 100) for n, r in enumerate(fake_google.rows)]
    seen = notices(db)
    db.execute("SET token_sync.skip_unchanged = off")
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)
    assert seen == [("NOTICE", "token_sync: the source bigquery-public-data.crypto_ethereum.tokens gained columns; "
                               "added to public.raw_tokens: gas_price (bigint), topics (text)")]
    assert db.execute("SELECT gas_price FROM raw_tokens ORDER BY gas_price").fetchall() == [(0,), (100,), (200,)]
    assert db.execute("SELECT schema_changes FROM token_sync.runs ORDER BY run_id").fetchall() == [
        (None,), ("added gas_price (bigint), topics (text)",)]
    db.execute("SET token_sync.skip_unchanged = on")
    assert db.execute("SELECT matches FROM token_verify_day('2026-11-20')").fetchone() == (True,)
    seen.clear()
    db.execute("SELECT token_sync_day('2026-11-20')")
    assert seen == [("NOTICE", "token_sync: 2026-11-20 is unchanged in BigQuery (3 rows, same fingerprint); "
                               "it was not rewritten")]


def test_a_target_that_marks_no_mirrors_keeps_loading_after_the_source_gains_a_column(db, fake_google):
    """A table made by hand (or before 0.3.0, or whose comments an engine dropped) marks no
    column as a mirror: all count as mirrors. Adding the source's new column marks them all,
    so the next day does not take them for the user's own."""
    fake_google.rows = day_rows(2)
    db.execute("SELECT token_sync_day('2026-11-20')")
    db.execute("DO $$DECLARE c text; BEGIN FOR c IN SELECT quote_ident(attname) FROM pg_attribute "
               "WHERE attrelid = 'public.raw_tokens'::regclass AND attnum > 0 AND NOT attisdropped LOOP "
               "EXECUTE format('COMMENT ON COLUMN public.raw_tokens.%s IS NULL', c); END LOOP; END$$")
    fake_google.schema = fake_google.schema + [("gas_price", "INTEGER")]
    fake_google.rows = [to_fake(token(7, dt.datetime(2026, 11, 21, 3, tzinfo=UTC), gas_price=5))]
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-21')").fetchone() == (1,)
    fake_google.rows = [to_fake(token(8, dt.datetime(2026, 11, 22, 3, tzinfo=UTC), gas_price=6))]
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-22')").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.raw_tokens'::regclass "
                      "AND attnum > 0 AND col_description(attrelid, attnum) LIKE 'token_sync: mirrors%'"
                      ).fetchone() == (9,)


def test_a_column_the_source_drops_fails_until_the_target_says_what_to_keep(db, fake_google):
    fake_google.rows = day_rows(2)
    db.execute("SELECT token_sync_day('2026-11-20')")
    fake_google.schema = [c for c in fake_google.schema if c[0] != "symbol"]
    with pytest.raises(psycopg.errors.UndefinedColumn) as raised:
        db.execute("SELECT token_sync_day('2026-11-21')")
    assert raised.value.diag.message_primary == \
        "the source no longer has the column symbol, which the target table public.raw_tokens mirrors"
    assert 'COMMENT ON COLUMN public.raw_tokens."symbol" IS NULL' in raised.value.diag.message_hint
    assert db.execute("SELECT status, error FROM token_sync.runs WHERE day = '2026-11-21'").fetchone() == (
        "failed", raised.value.diag.message_primary)
    db.execute('COMMENT ON COLUMN public.raw_tokens."symbol" IS NULL')
    fake_google.rows = [to_fake(token(7, dt.datetime(2026, 11, 21, 3, tzinfo=UTC)))]
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-21')").fetchone() == (1,)
    assert db.execute("SELECT symbol FROM raw_tokens WHERE block_number = 7").fetchone() == (None,)
    assert db.execute("SELECT count(symbol) FROM raw_tokens").fetchone() == (2,), "the old days keep theirs"


def test_a_result_of_other_columns_than_asked_fails_the_day(db, fake_google):
    fake_google.rows = day_rows(3)
    real_page = fake_google._page

    def page_without_block_hash(job_id, start, size):
        answer = real_page(job_id, start, size)
        answer["schema"]["fields"] = answer["schema"]["fields"][:-1]
        answer["rows"] = [{"f": row["f"][:-1]} for row in answer["rows"]]
        return answer
    fake_google._page = page_without_block_hash
    with pytest.raises(psycopg.errors.DataException) as raised:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert "the source result has the columns" in raised.value.diag.message_primary
    assert db.execute("SELECT to_regclass('raw_tokens')").fetchone() == (None,)


def test_a_body_that_is_not_json_fails_the_day(db, fake_google):
    fake_google.fault = lambda kind, n: {"status": 200, "raw": b"<html>proxy error</html>"} if kind == "query" else None
    with pytest.raises(psycopg.errors.DataException) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert "not a query response" in error.value.diag.message_primary


@pytest.mark.parametrize("target", ["public.x; DROP TABLE token_sync.runs", "a.b.c.d", "\"unclosed"])
def test_a_hostile_target_table_setting_reaches_no_sql(db, fake_google, target):
    db.execute(psycopg.sql.SQL("SET token_sync.target_table = {}").format(psycopg.sql.Literal(target)))
    with pytest.raises(psycopg.Error):
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert db.execute("SELECT to_regclass('token_sync.runs') IS NOT NULL").fetchone() == (True,)
    assert fake_google.requests == []


def test_http_timeout_bounds_a_hanging_request_and_it_is_retried(db, fake_google):
    fake_google.rows = day_rows(2)
    db.execute("SET token_sync.http_timeout = '1s'")
    db.execute("SET token_sync.max_retries = 1")
    fake_google.fault = lambda kind, n: {"delay": 3} if kind == "query" else None
    started = time.monotonic()
    with pytest.raises(psycopg.errors.ConnectionFailure) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert "timed out" in error.value.diag.message_primary
    assert "token_sync.http_timeout" in error.value.diag.message_hint
    assert fake_google.count("query") == 2
    assert time.monotonic() - started < 2 * 1.0 + 1.5


def test_a_row_outside_the_day_fails_the_day_without_writing(db, fake_google):
    fake_google.rows = day_rows(2) + day_rows(1, MIDNIGHT + dt.timedelta(days=1))
    db.execute("SELECT token_sync_day('2026-11-20')")
    fake_google.ignore_day_filter = True
    with pytest.raises(psycopg.errors.DataException) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert "outside 2026-11-20" in error.value.diag.message_primary
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (2,)


def test_a_failing_day_and_backfill_say_so_once_each_and_nothing_about_the_ledger(db, fake_google, cluster):
    seen = notices(db)
    log_before = cluster.log.stat().st_size
    db.execute("SET token_sync.max_retries = 1")
    fake_google.fault = lambda kind, n: bigquery_error(503, "backendError")
    with pytest.raises(psycopg.errors.ConnectionFailure) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert error.value.diag.message_primary == "BigQuery refused the request: simulated backendError"
    assert seen == [], "the ERROR is all a failing day says"
    days = db.execute("SELECT day::text, status, error FROM token_backfill('2026-11-14', '2026-11-20')").fetchall()
    assert [status for _, status, _ in days] == ["failed"] * 7
    assert seen == [("WARNING", f"token_sync: {day} failed: {failure}") for day, _, failure in days]
    assert all(failure.startswith("BigQuery refused the request: simulated backendError") for _, _, failure in days)
    assert db.execute("SELECT count(*) FROM token_sync.runs WHERE status = 'failed' AND error LIKE 'BigQuery refused%'"
                      ).fetchone() == (8,)
    with cluster.log.open("rb") as log:
        log.seek(log_before)
        assert b"ledger" not in log.read()
