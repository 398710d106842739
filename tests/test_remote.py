"""What the emulator cannot produce, against the fake Google server: the service-account
token flow, HTTP errors, jobs that are not complete at once, float-seconds TIMESTAMPs,
cut and slow responses, and cancellation."""

import datetime as dt
import json
import os
import time
import urllib.parse

import psycopg
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from fake_google import decode_jwt
from helpers import UTC, cancel_later, to_fake, token

MIDNIGHT = dt.datetime(2026, 11, 20, tzinfo=UTC)


def day_rows(count=3):
    return [to_fake(token(n, MIDNIGHT + dt.timedelta(hours=n, microseconds=n))) for n in range(1, count + 1)]


def test_service_account_flow_reaches_bigquery_with_the_bearer_token(db, fake_google, key_file):
    path, private_key, pem = key_file
    fake_google.rows = day_rows()
    db.execute(f"SET token_sync.credentials = '{path}'")
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)

    grant, = fake_google.token_requests
    assert grant["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    header, claims, signed, signature = decode_jwt(grant["assertion"][0])
    assert header["alg"] == "RS256"
    assert claims["iss"] == "token-sync@billing.iam.gserviceaccount.com"
    assert claims["aud"] == fake_google.token_uri
    assert "https://www.googleapis.com/auth/bigquery" in claims["scope"]
    private_key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())

    bigquery_calls = [r for r in fake_google.requests if r[0] != "token"]
    assert bigquery_calls
    for _, _, headers, _ in bigquery_calls:
        assert headers["authorization"] == f"Bearer {fake_google.access_token}"


def test_token_endpoint_refusal_is_a_clear_error_without_secrets(db, fake_google, key_file, cluster):
    path, _, pem = key_file
    fake_google.token_failure = (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    db.execute(f"SET token_sync.credentials = '{path}'")
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    diag = error.value.diag
    assert "access token" in diag.message_primary
    assert "token_sync.credentials" in diag.message_hint
    secret = pem.splitlines()[1]
    everything = " ".join(filter(None, [diag.message_primary, diag.message_detail, diag.message_hint]))
    assert secret not in everything
    assert secret not in cluster.log.read_text(errors="replace")
    assert fake_google.count("query") == 0


@pytest.mark.parametrize("content, why", [
    (None, "does not exist"),
    ("not json at all", "not JSON"),
    ('{"type": "authorized_user", "client_id": "x"}', "service_account"),
    ('{"type": "service_account", "client_email": "a@b"}', "private_key"),
])
def test_bad_credentials_files_fail_before_any_call(db, fake_google, server_dir, content, why):
    path = server_dir / "key.json"
    if content is not None:
        path.write_text(content)
        os.chmod(path, 0o644)
    db.execute(f"SET token_sync.credentials = '{path}'")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert why in error.value.diag.message_primary
    assert error.value.diag.message_hint
    assert fake_google.requests == []


def test_float_second_timestamps_decode_to_the_microsecond(db, fake_google):
    fake_google.float_timestamps = True
    fake_google.rows = day_rows(5)
    db.execute("SELECT token_sync_day('2026-11-20')")
    got = db.execute("SELECT block_number, block_timestamp FROM raw_tokens ORDER BY 1").fetchall()
    assert got == [(n, MIDNIGHT + dt.timedelta(hours=n, microseconds=n)) for n in range(1, 6)]


def test_incomplete_job_is_polled_and_every_page_fetched(db, fake_google):
    fake_google.incomplete_polls = 2
    fake_google.rows = day_rows(10)
    db.execute("SET token_sync.page_rows = 3")
    assert db.execute("SELECT rows_loaded, rows_reported, bytes_billed, job_id FROM token_sync_day('2026-11-20')"
                      ).fetchone() == (10, 10, 10485760, "fake_job_1")
    # Two polls while running, then pages at 0, 3, 6, 9.
    assert fake_google.count("results") == 2 + 4


@pytest.mark.parametrize("status, reason, sqlstate, hint_word", [
    (404, "notFound", "42P01", "source_table"),
    (403, "accessDenied", "42501", "roles/bigquery"),
    (401, "authError", "28000", "credentials"),
    (400, "invalidQuery", "HV000", "source_table"),
    (400, "bytesBilledLimitExceeded", "53400", "max_bytes_billed"),
    (500, "backendError", "08006", "again"),
    (429, "rateLimitExceeded", "08006", "again"),
])
def test_http_errors_name_the_cause_and_leave_the_day(db, fake_google, status, reason, sqlstate, hint_word):
    fake_google.rows = day_rows()
    db.execute("SELECT token_sync_day('2026-11-20')")
    body = {"error": {"code": status, "message": f"simulated {reason}", "errors": [{"reason": reason, "message": f"simulated {reason}"}]}}
    # A re-sync asks BigQuery for the day's summary first: that is the call that fails.
    fake_google.fault = lambda kind, n: {"status": status, "body": body} if kind in ("summary", "query") else None
    db.execute("SET token_sync.max_retries = 2")
    with pytest.raises(psycopg.Error) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    transient = sqlstate == "08006"
    assert (fake_google.count("summary"), fake_google.count("query")) == ((3 if transient else 1), 1)
    if transient:
        assert "gave up after 2 retries" in error.value.diag.message_detail
    assert error.value.sqlstate == sqlstate
    assert f"simulated {reason}" in error.value.diag.message_primary
    assert hint_word in error.value.diag.message_hint
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (3,)


def test_errors_array_in_a_200_is_a_failure(db, fake_google):
    fake_google.rows = day_rows()
    body = {"kind": "bigquery#queryResponse", "jobComplete": True, "rows": [], "totalRows": "0",
            "jobReference": {"projectId": "billing", "jobId": "j"},
            "errors": [{"reason": "notFound", "message": "Not found: Table x"}]}
    fake_google.fault = lambda kind, n: {"status": 200, "body": body} if kind == "query" else None
    with pytest.raises(psycopg.errors.UndefinedTable):
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert db.execute("SELECT status, error FROM token_sync.runs").fetchall() == [
        ("failed", "BigQuery refused the request: Not found: Table x (HTTP status 200, reason notFound)")]
    assert fake_google.count("query") == 1


def test_a_garbled_page_fails_the_day_without_writing_it(db, fake_google):
    fake_google.rows = day_rows(9)
    db.execute("SET token_sync.page_rows = 3")
    db.execute("SELECT token_sync_day('2026-11-20')")
    fake_google.rows = day_rows(6)
    first_page_request = fake_google.count("results")
    garbled = {"status": 200, "body": {"unexpected": "shape", "rows": 5}}
    fake_google.fault = lambda kind, n: garbled if kind == "results" and n == first_page_request else None
    with pytest.raises(psycopg.errors.DataException):
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (9,)


def test_row_count_disagreeing_with_total_rows_fails_the_day(db, fake_google):
    fake_google.rows = day_rows(4)
    fake_google.total_rows_override = 5
    with pytest.raises(psycopg.errors.DataException) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert "reported 5 rows" in error.value.diag.message_primary
    # The table was created by the failed call, so it is gone with its rollback.
    assert db.execute("SELECT to_regclass('raw_tokens')").fetchone() == (None,)


def test_a_target_made_from_the_source_schema_has_its_types_and_constraints(db, fake_google):
    fake_google.rows = day_rows()
    fake_google.schema = [(n, "INTEGER" if n == "decimals" else t) for n, t in fake_google.schema]
    fake_google.rows = [dict(r, decimals=18) for r in fake_google.rows]
    db.execute("SELECT token_sync_day('2026-11-20')")
    columns = db.execute("SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
                         "WHERE attrelid = 'raw_tokens'::regclass AND attnum > 0 ORDER BY attnum").fetchall()
    assert columns == [("address", "text", True), ("symbol", "text", False), ("name", "text", False),
                       ("decimals", "bigint", False), ("total_supply", "text", False),
                       ("block_timestamp", "timestamp with time zone", True), ("block_number", "bigint", True),
                       ("block_hash", "text", True)]
    assert db.execute("SELECT DISTINCT decimals FROM raw_tokens").fetchall() == [(18,)]


def test_bignumeric_and_geography_which_the_emulator_cannot_serve_load_and_verify(db, fake_google):
    largest = "-578960446186580977117854925043439539266.34992332820282019728792003956564819968"
    fake_google.schema = fake_google.schema + [("bn", "BIGNUMERIC"), ("g", "GEOGRAPHY")]
    fake_google.rows = [dict(r, bn=largest if n == 0 else "1.5", g="POINT(-0.12 51.5)" if n == 0 else None)
                        for n, r in enumerate(day_rows())]
    db.execute("SELECT token_sync_day('2026-11-20')")
    assert db.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'raw_tokens'::regclass "
                      "AND attname IN ('bn', 'g') ORDER BY attname").fetchall() == [("numeric",), ("text",)]
    assert db.execute("SELECT bn::text, g FROM raw_tokens ORDER BY block_number").fetchall() == [
        (largest, "POINT(-0.12 51.5)"), ("1.5", None), ("1.5", None)]
    assert db.execute("SELECT matches FROM token_verify_day('2026-11-20')").fetchone() == (True,)
    db.execute("UPDATE raw_tokens SET bn = bn - 1e-38 WHERE g IS NOT NULL")
    assert db.execute("SELECT matches FROM token_verify_day('2026-11-20')").fetchone() == (False,)


@pytest.mark.parametrize("how", ["statement_timeout", "pg_cancel_backend"])
def test_a_slow_page_is_cancelled_within_a_second(db, fake_google, cluster, how):
    fake_google.rows = day_rows()
    fake_google.fault = lambda kind, n: {"delay": 15, "status": 500} if kind == "query" else None
    if how == "statement_timeout":
        db.execute("SET statement_timeout = '1s'")
        trigger_at = 1.0
    else:
        trigger_at = 1.0
        cancel_later(cluster, db.info.backend_pid, lambda: time.sleep(trigger_at))
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert time.monotonic() - started < trigger_at + 1.0


def test_a_backfill_asks_for_one_token_and_keeps_its_connection(db, fake_google, key_file):
    path, _, _ = key_file
    fake_google.rows = [to_fake(token(n, MIDNIGHT - dt.timedelta(days=n, hours=-1))) for n in range(7)]
    db.execute(f"SET token_sync.credentials = '{path}'")
    days = db.execute("SELECT status, rows_loaded FROM token_backfill('2026-11-14', '2026-11-20')").fetchall()
    assert days == [("succeeded", 1)] * 7
    assert len(fake_google.token_requests) == 1
    # Pooled, not one a day. hyper puts an HTTP/1.1 connection back in its pool from a task
    # of its own once a response is read, and opens another if a request comes first: now
    # and then two.
    assert len(set(fake_google.bigquery_connections)) <= 2, "a connection kept for the whole backfill"
    # A later call in the same backend reuses both; here every day is unchanged.
    first_call = set(fake_google.bigquery_connections)
    fake_google.bigquery_connections.clear()
    days = db.execute("SELECT status FROM token_backfill('2026-11-14', '2026-11-20')").fetchall()
    assert days == [("unchanged",)] * 7
    assert len(fake_google.token_requests) == 1
    assert len(fake_google.bigquery_connections) >= 7
    assert len(set(fake_google.bigquery_connections) - first_call) <= 1


def test_requests_are_sized_to_the_bytes_in_flight(db, fake_google):
    wide = "w" * 2000
    fake_google.rows = [to_fake(token(n, MIDNIGHT + dt.timedelta(seconds=n), name=wide)) for n in range(1, 401)]
    db.execute("SET token_sync.page_rows = 100")

    def rows_asked(budget):
        fake_google.requests.clear()
        fake_google.queries.clear()
        db.execute(f"SET token_sync.max_bytes_in_flight = '{budget}'")
        db.execute("SET token_sync.skip_unchanged = off")
        assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (400,)
        first, = [json.loads(body)["maxResults"] for kind, _, _, body in fake_google.requests if kind == "query"]
        rest = [int(urllib.parse.parse_qs(query)["maxResults"][0])
                for (kind, *_), query in zip(fake_google.requests, fake_google.queries) if kind == "results"]
        return first, rest
    # 32 MB: every request asks for page_rows.
    assert rows_asked("32MB") == (100, [100, 100, 100])
    # 256 kB over 4 + 3 pages in flight, ~2.2 kB of JSON a row, twice that at its peak: 8 rows.
    first, rest = rows_asked("256kB")
    assert first == 100 and sum(rest) == 300
    assert max(rest) <= 8 and len(rest) >= 300 // 8
    assert db.execute("SELECT count(DISTINCT block_number) FROM raw_tokens").fetchone() == (400,)
