"""The COPY write path and parallel page fetches: the same rows whatever the fetch
concurrency, COPY's progress visible while a day loads, strings intact whatever the
session's client_encoding, and the target's own constraints and privileges honoured."""

import datetime as dt
import threading
import urllib.parse

import psycopg
import pytest

from helpers import UTC, to_fake, token, wait_until

MIDNIGHT = dt.datetime(2026, 11, 20, tzinfo=UTC)
STRANGE = "tab\tnl\ncr\rbs\\ é 漢字 🚀 \\N"


def source_rows(count):
    return [token(n, MIDNIGHT + dt.timedelta(seconds=n, microseconds=n), name=f"{STRANGE} {n}",
                  symbol=None if n % 7 == 0 else f"S{n}") for n in range(1, count + 1)]


def table(db):
    return db.execute("SELECT address, symbol, name, decimals, total_supply, block_timestamp, block_number, "
                      "block_hash FROM raw_tokens ORDER BY block_number").fetchall()


def test_the_day_is_identical_whatever_the_fetch_concurrency(db, source):
    rows = source_rows(200)
    source.insert(rows)
    db.execute("SET token_sync.page_rows = 9")
    loaded = {}
    for concurrency in (1, 2, 8):
        db.execute(f"SET token_sync.fetch_concurrency = {concurrency}")
        assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (200,)
        loaded[concurrency] = table(db)
    assert loaded[1] == loaded[2] == loaded[8]
    expected = [(r["address"], r["symbol"], r["name"], r["decimals"], r["total_supply"], r["block_timestamp"],
                 r["block_number"], r["block_hash"]) for r in rows]
    assert loaded[8] == expected


def test_copy_progress_is_visible_while_a_day_loads(db, fake_google, cluster):
    fake_google.rows = [to_fake(r) for r in source_rows(30)]
    db.execute("SELECT token_sync_day('2026-11-19')")  # creates the table
    db.execute("SET token_sync.page_rows = 10")
    db.execute("SET token_sync.fetch_concurrency = 1")
    fake_google.fault = lambda kind, n: {"delay": 3} if kind == "results" and n == 1 else None
    worker = threading.Thread(target=lambda: db.execute("SELECT token_sync_day('2026-11-20')"), daemon=True)
    worker.start()
    with cluster.connect() as observer:
        progress = wait_until(lambda: observer.execute(
            "SELECT relid::regclass::text, command, type, tuples_processed FROM pg_stat_progress_copy").fetchone(),
            timeout=10, interval=0.05)
    worker.join(timeout=20)
    assert progress[:3] == ("raw_tokens", "COPY FROM", "CALLBACK")
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (30,)


def test_a_column_type_changed_while_the_day_is_read_fails_the_day(db, fake_google, cluster):
    """Rows go in COPY's binary format, which the column types checked at the start are
    written for: a type changed while BigQuery ran the job is found under COPY's lock."""
    fake_google.rows = [to_fake(r) for r in source_rows(3)]
    db.execute("SELECT token_sync_day('2026-11-19')")  # creates the table
    db.execute("SET token_sync.skip_unchanged = off")  # nothing reads the table before the job
    fake_google.fault = lambda kind, n: {"delay": 2} if kind == "query" else None
    failure = []

    def sync():
        try:
            db.execute("SELECT token_sync_day('2026-11-20')")
        except psycopg.Error as error:
            failure.append(error)

    worker = threading.Thread(target=sync, daemon=True)
    worker.start()
    wait_until(lambda: fake_google.count("query") >= 2, timeout=10, interval=0.05)
    with cluster.connect() as other:
        other.execute("ALTER TABLE raw_tokens ALTER COLUMN block_number TYPE numeric")
    worker.join(timeout=20)
    assert len(failure) == 1 and isinstance(failure[0], psycopg.errors.DatatypeMismatch), failure
    assert failure[0].diag.message_primary == \
        "the column block_number of public.raw_tokens changed while the day was read from BigQuery"
    assert db.execute("SELECT count(*) FROM raw_tokens WHERE block_timestamp >= '2026-11-20'").fetchone() == (0,)


@pytest.mark.parametrize("encoding", ["LATIN1", "SQL_ASCII", "UTF8"])
def test_strings_survive_any_client_encoding(db, fake_google, encoding):
    fake_google.rows = [to_fake(r) for r in source_rows(3)]
    db.execute(f"SET client_encoding = '{encoding}'")
    try:
        db.execute("SELECT token_sync_day('2026-11-20')")
    finally:
        db.execute("RESET client_encoding")
    assert [r[2] for r in table(db)] == [f"{STRANGE} {n}" for n in (1, 2, 3)]


def test_the_targets_constraints_apply_and_a_violation_leaves_the_day(db, fake_google):
    fake_google.rows = [to_fake(r) for r in source_rows(3)]
    db.execute("SELECT token_sync_day('2026-11-20')")
    db.execute("ALTER TABLE raw_tokens ADD CONSTRAINT small_blocks CHECK (block_number < 3) NOT VALID")
    fake_google.rows = [to_fake(r) for r in source_rows(4)]  # a changed day, so it is rewritten
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (3,)


def test_copy_respects_the_callers_insert_privilege(db, fake_google, cluster):
    fake_google.rows = [to_fake(r) for r in source_rows(2)]
    db.execute("SELECT token_sync_day('2026-11-19')")
    db.execute("DROP ROLE IF EXISTS bob")
    db.execute("CREATE ROLE bob LOGIN")
    try:
        db.execute("GRANT EXECUTE ON FUNCTION token_sync_day(date) TO bob")
        db.execute("GRANT USAGE ON SCHEMA token_sync TO bob")
        db.execute("GRANT SELECT, DELETE ON raw_tokens TO bob")  # no INSERT
        db.execute(f"ALTER ROLE bob SET token_sync.api_url = '{fake_google.base_url}'")
        db.execute("ALTER ROLE bob SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
        with cluster.connect(user="bob") as bob, pytest.raises(psycopg.errors.InsufficientPrivilege) as error:
            bob.execute("SELECT token_sync_day('2026-11-20')")
        assert "insert into public.raw_tokens" in error.value.diag.message_primary
    finally:
        db.execute("DROP OWNED BY bob")
        db.execute("DROP ROLE bob")


def test_pages_shorter_than_asked_for_are_completed(db, fake_google):
    fake_google.rows = [to_fake(r) for r in source_rows(25)]
    fake_google.page_cap = 4  # BigQuery caps a page at ~10 MB, whatever maxResults says
    db.execute("SET token_sync.page_rows = 10")
    db.execute("SET token_sync.fetch_concurrency = 3")
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (25,)
    assert [r[6] for r in table(db)] == list(range(1, 26))
    positions = sorted(int(urllib.parse.parse_qs(query)["startIndex"][0])
                       for (kind, *_), query in zip(fake_google.requests, fake_google.queries) if kind == "results")
    # The first page (rows 0-3) came with the query; ranges of 10 from 4, each finished in pieces of 4.
    assert positions == [4, 8, 12, 14, 18, 22, 24]
