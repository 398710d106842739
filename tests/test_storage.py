"""Days read through the Storage Read API: against the emulator's gRPC port for every type,
several streams, empty days and the day's bounds; against our fake (fake_storage.py) for
what the emulator cannot do: a stream cut mid-way, refusals, retries, an expired session."""

import datetime as dt
import time
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest

from fake_storage import SNAPSHOT_SECONDS, FakeStorage, status
from helpers import notices
from test_types import DAY, EVERY_TYPE, FIRST_ROW, LAST_ROW, OUTSIDE, TypedSource, field

RESTRICTION = f"`block_timestamp` >= TIMESTAMP '{DAY} 00:00:00+00' AND `block_timestamp` < TIMESTAMP '2026-11-21 00:00:00+00'"


def read_through(db, read_api, url=None):
    db.execute(f"SET token_sync.read_api = '{read_api}'")
    if url:
        db.execute(f"SET token_sync.storage_api_url = '{url}'")


def rows_as_text(db, table="raw_typed"):
    return db.execute(f"SELECT t::text FROM {table} t ORDER BY block_timestamp").fetchall()


def ledger(db):
    return db.execute("SELECT status, read_api, rows_loaded FROM token_sync.runs ORDER BY run_id").fetchall()


def test_every_type_reads_through_the_storage_api_as_through_a_query(db, emulator):
    source = TypedSource(emulator, db, EVERY_TYPE)
    source.insert([FIRST_ROW, LAST_ROW] + OUTSIDE)
    read_through(db, "storage", f"http://127.0.0.1:{emulator.grpc_port}")
    assert db.execute(f"SELECT rows_loaded, rows_reported FROM token_sync_day('{DAY}')").fetchone() == (2, 2)
    by_storage = rows_as_text(db)
    assert db.execute("SELECT rows_nul_stripped FROM token_sync.runs").fetchone() == (1,)
    db.execute("SET token_sync.skip_unchanged = off")
    read_through(db, "query")
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (2,)
    assert rows_as_text(db) == by_storage, "both paths load the same values"
    assert ledger(db) == [("succeeded", "storage", 2), ("succeeded", "query", 2)]
    # The same COPY bytes: a re-sync through one API compares hour by hour with a load
    # through the other.
    assert db.execute("SELECT count(*), count(DISTINCT hour_digests) FROM token_sync.run_digests").fetchone() == (2, 1)
    assert db.execute("SELECT job_id FROM token_sync.runs ORDER BY run_id LIMIT 1").fetchone()[0].startswith(
        "projects/bigquery-public-data/locations/US/sessions/"), "the read session, as the emulator names it"


def test_several_streams_an_empty_day_and_the_bounds_of_the_day(db, emulator):
    source = TypedSource(emulator, db, [field("block_timestamp", "TIMESTAMP", "REQUIRED"), field("n", "INTEGER"),
                                        field("pad", "STRING")])
    start = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    # Over a megabyte, so that the emulator splits the session into streams.
    rows = [{"block_timestamp": (start + dt.timedelta(microseconds=i * 17_280_000)).strftime(
        "%Y-%m-%d %H:%M:%S.%f UTC"), "n": i, "pad": "x" * 400} for i in range(5000)]
    rows[-1]["block_timestamp"] = f"{DAY} 23:59:59.999999 UTC"
    rows += [{"block_timestamp": "2026-11-19 23:59:59.999999 UTC", "n": -1},
             {"block_timestamp": "2026-11-21 00:00:00 UTC", "n": -2}]
    emulator.load_rows(rows, table=source.table)
    read_through(db, "storage", f"http://127.0.0.1:{emulator.grpc_port}")
    db.execute("SET token_sync.fetch_concurrency = 4")
    db.execute("SET token_sync.max_bytes_in_flight = '1MB'")
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (5000,)
    assert db.execute("SELECT min(n), max(n), count(DISTINCT n), min(block_timestamp) = %s, "
                      "max(block_timestamp) = %s FROM raw_typed",
                      (start, start + dt.timedelta(days=1, microseconds=-1))).fetchone() == (0, 4999, 5000, True, True)
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (True,)
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-18')").fetchone() == (0,)
    assert ledger(db)[-1] == ("succeeded", "storage", 0)


@pytest.mark.parametrize("kind, value, outside", [
    ("DATE", DAY, "2026-11-21"),
    ("DATETIME", f"{DAY}T23:59:59.999999", "2026-11-21T00:00:00"),
])
def test_a_date_or_datetime_partitioned_table_through_the_storage_api(db, emulator, kind, value, outside):
    source = TypedSource(emulator, db, [field("day", kind, "REQUIRED"), field("n", "INTEGER")], partition_field="day")
    source.insert([{"day": value, "n": 1}, {"day": outside, "n": 2}])
    read_through(db, "storage", f"http://127.0.0.1:{emulator.grpc_port}")
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (1,)
    assert db.execute("SELECT n FROM raw_typed").fetchall() == [(1,)]


def test_auto_reads_through_the_storage_api_only_where_it_is_configured(db, emulator):
    source = TypedSource(emulator, db, [field("block_timestamp", "TIMESTAMP", "REQUIRED"), field("n", "INTEGER")])
    source.insert([{"block_timestamp": f"{DAY} 01:00:00 UTC", "n": 1}])
    db.execute("SET token_sync.skip_unchanged = off")
    db.execute(f"SELECT token_sync_day('{DAY}')")
    read_through(db, "auto", f"http://127.0.0.1:{emulator.grpc_port}")
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert [read_api for _, read_api, _ in ledger(db)] == ["query", "storage"], \
        "without token_sync.storage_api_url, an emulator's days are read through queries"
    with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
        db.execute("SET token_sync.storage_api_url = ''")
        db.execute("SET token_sync.read_api = 'storage'")
        db.execute(f"SELECT token_sync_day('{DAY}')")
    assert "token_sync.storage_api_url is not set" in error.value.diag.message_primary


@pytest.fixture
def storage(db, emulator):
    """Our fake Storage Read API beside the emulator's REST API, which serves the table's
    schema (and, for the fallback, its rows through a query)."""
    fake = FakeStorage().start()
    source = TypedSource(emulator, db, [field("block_timestamp", "TIMESTAMP", "REQUIRED"), field("n", "INTEGER"),
                                        field("s", "STRING")])
    start = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    fake.table = pa.table({
        "block_timestamp": pa.array([start + dt.timedelta(hours=i) for i in range(10)], pa.timestamp("us", "UTC")),
        "n": pa.array(range(10), pa.int64()),
        "s": pa.array([f"row {i}" for i in range(10)]),
    })
    fake.source = source
    read_through(db, "storage", fake.url)
    db.execute("SET token_sync.retry_delay = '10ms'")
    yield fake
    fake.stop()


def reads(fake):
    return [request[1:-1] for request in fake.requests if request[0] == "read"]


def test_a_stream_cut_midway_is_read_again_from_the_row_it_reached(db, storage):
    storage.streams = 2
    storage.read_faults = {1: [(3, status("UNAVAILABLE", "connection reset")),
                               (4, status("INTERNAL", "stream broke"))]}
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (10,)
    assert db.execute("SELECT array_agg(n ORDER BY n) FROM raw_typed").fetchone() == (list(range(10)),)
    assert sorted(reads(storage)) == [(0, 0), (1, 0), (1, 4), (1, 4)], \
        "stream 1 failed after 4 rows (two messages), then again at once, and was read on from row 4"
    create = [request for request in storage.requests if request[0] == "create"][0]
    assert create[1:4] == (["block_timestamp", "n", "s"], RESTRICTION, 4)
    assert db.execute("SELECT read_api, snapshot_time = to_timestamp(%s) + interval '123456 microseconds', "
                      "job_id FROM token_sync.runs", (SNAPSHOT_SECONDS,)).fetchone() == (
        "storage", True, "projects/billing/locations/US/sessions/fake")


def test_a_stream_cut_after_every_message_is_given_up_after_max_retries(db, storage):
    # Each cut comes after some progress: the retries are the stream's, not each message's.
    storage.read_faults = {0: [(row, status("UNAVAILABLE", "connection reset")) for row in (2, 4, 6, 8)]}
    db.execute("SET token_sync.max_retries = 3")
    with pytest.raises(psycopg.errors.ConnectionFailure) as error:
        db.execute(f"SELECT token_sync_day('{DAY}')")
    assert error.value.diag.message_primary == "BigQuery's Storage Read API refused the request: connection reset"
    assert error.value.diag.message_detail == ("gRPC status Unavailable (stream projects/billing/locations/US/"
                                               "sessions/fake/streams/0, at row 8); gave up after 3 retries")
    assert reads(storage) == [(0, 0), (0, 2), (0, 4), (0, 6)]
    assert db.execute("SELECT to_regclass('raw_typed')").fetchone() == (None,), "nothing written"
    assert db.execute("SELECT status FROM token_sync.runs").fetchall() == [("failed",)]


def test_retries_wait_as_long_as_bigquery_asks(db, storage):
    storage.create_faults = [status("RESOURCE_EXHAUSTED", "quota", retry_seconds=0.4),
                             status("UNAVAILABLE", "try again")]
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (10,)
    created = [request[-1] for request in storage.requests if request[0] == "create"]
    assert len(created) == 3
    assert created[1] - created[0] >= 0.4, "RetryInfo's delay, not token_sync.retry_delay"
    storage.create_faults = [status("UNAVAILABLE", "down")] * 3
    db.execute("SET token_sync.max_retries = 2")
    db.execute("SET token_sync.skip_unchanged = off")
    with pytest.raises(psycopg.errors.ConnectionFailure) as error:
        db.execute(f"SELECT token_sync_day('{DAY}')")
    assert error.value.diag.message_primary == "BigQuery's Storage Read API refused the request: down"


def test_auto_falls_back_to_a_query_once_per_call_when_read_sessions_are_refused(db, storage):
    storage.source.insert([{"block_timestamp": f"{DAY} 05:00:00 UTC", "n": 5, "s": "by query"},
                           {"block_timestamp": "2026-11-21 05:00:00 UTC", "n": 6, "s": "by query"}])
    storage.create_faults = [status("PERMISSION_DENIED", "bigquery.readsessions.create denied")] * 2
    read_through(db, "auto")
    seen = notices(db)
    assert db.execute("SELECT count(*) FROM token_backfill('2026-11-20', '2026-11-21')").fetchone() == (2,)
    assert seen == [("NOTICE", "token_sync: BigQuery's Storage Read API cannot read "
                     f"{storage.source.name} (BigQuery's Storage Read API refused the request: "
                     "bigquery.readsessions.create denied); reading through a query job instead")]
    assert len([r for r in storage.requests if r[0] == "create"]) == 1, "asked once per call"
    assert ledger(db) == [("succeeded", "query", 1), ("succeeded", "query", 1)]
    read_through(db, "storage")
    db.execute("SET token_sync.skip_unchanged = off")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as error:
        db.execute(f"SELECT token_sync_day('{DAY}')")
    assert "roles/bigquery.readSessionUser" in error.value.diag.message_hint
    assert db.execute("SELECT count(*) FROM raw_typed").fetchone() == (2,), "the failed day kept its rows"


def test_an_expired_session_fails_the_day_and_writes_nothing(db, storage):
    storage.read_faults = {0: [(4, status("FAILED_PRECONDITION", "the read session has expired"))]}
    with pytest.raises(psycopg.errors.ConnectionFailure) as error:
        db.execute(f"SELECT token_sync_day('{DAY}')")
    assert error.value.diag.message_primary == \
        "BigQuery's Storage Read API refused the request: the read session has expired"
    assert "run the day again" in error.value.diag.message_hint
    assert error.value.diag.message_detail == \
        "gRPC status FailedPrecondition (stream projects/billing/locations/US/sessions/fake/streams/0, at row 4)"
    assert db.execute("SELECT to_regclass('raw_typed')").fetchone() == (None,), "not even the table"
    assert db.execute("SELECT status FROM token_sync.runs").fetchall() == [("failed",)]


def test_a_stalled_stream_can_be_cancelled_within_a_second(db, storage):
    storage.stall_seconds = 20
    db.execute("SET statement_timeout = '1s'")
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.execute(f"SELECT token_sync_day('{DAY}')")
    assert time.monotonic() - started < 2.5


def test_bignumeric_and_geography_which_the_emulator_cannot_serve_read_through_the_storage_api(db, fake_google):
    # All 76 digits of BigQuery's Arrow type for BIGNUMERIC, decimal256(76, 38).
    largest = "-99999999999999999999999999999999999999.99999999999999999999999999999999999999"
    fake_google.schema = [("block_timestamp", "TIMESTAMP"), ("bn", "BIGNUMERIC"), ("g", "GEOGRAPHY")]
    fake = FakeStorage().start()
    try:
        fake.table = pa.table({
            "block_timestamp": pa.array([dt.datetime(2026, 11, 20, h, tzinfo=dt.timezone.utc) for h in (0, 23)],
                                        pa.timestamp("us", "UTC")),
            "bn": pa.array([Decimal(largest), Decimal("1.5")], pa.decimal256(76, 38)),
            "g": pa.array(["POINT(-0.12 51.5)", None]),
        })
        read_through(db, "storage", fake.url)
        assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (2,)
        assert db.execute("SELECT bn::text, g FROM raw_tokens ORDER BY block_timestamp").fetchall() == [
            (largest, "POINT(-0.12 51.5)"), ("1.5", None)]
    finally:
        fake.stop()
