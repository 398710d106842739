"""A re-sync of a day that BigQuery has not written to since it was read: one metadata query
(INFORMATION_SCHEMA.PARTITIONS), no scan on either side. Against the fake, which answers as
BigQuery does: a job's creationTime, and each partition's rows and last write."""

import concurrent.futures
import datetime as dt
import time

import pytest

from helpers import UTC, notices, to_fake, token

DAY = dt.date(2026, 11, 20)
MIDNIGHT = dt.datetime(2026, 11, 20, tzinfo=UTC)
UNWRITTEN = "token_sync: 2026-11-20 is unchanged in BigQuery (3 rows, its partition not written since it was read); " \
            "it was not rewritten"
SAME_FINGERPRINT = "token_sync: 2026-11-20 is unchanged in BigQuery (3 rows, same fingerprint); it was not rewritten"


def day_rows(count, name="Token"):
    return [to_fake(token(n, MIDNIGHT + dt.timedelta(minutes=n), name=f"{name} {n}")) for n in range(1, count + 1)]


@pytest.fixture
def bigquery(fake_google):
    fake_google.partition_metadata = True
    fake_google.write_day(DAY, day_rows(3))
    return fake_google


def queries(fake):
    return [kind for kind, *_ in fake.requests if kind in ("partitions", "summary", "query")]


def last_run(db):
    return db.execute("SELECT status, rows_loaded, bytes_billed, snapshot_time IS NOT NULL FROM token_sync.runs "
                      "ORDER BY run_id DESC LIMIT 1").fetchone()


def test_an_unwritten_partition_is_unchanged_for_one_metadata_query(db, bigquery):
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert last_run(db) == ("succeeded", 3, 10 * 1024 * 1024, True)
    bigquery.requests.clear()
    seen = notices(db)
    assert db.execute(f"SELECT rows_loaded, rows_reported FROM token_sync_day('{DAY}')").fetchone() == (3, 3)
    assert seen == [("NOTICE", UNWRITTEN)]
    assert queries(bigquery) == ["partitions"]
    assert bigquery.partition_queries == [
        ("`bigquery-public-data.crypto_ethereum.INFORMATION_SCHEMA.PARTITIONS`", "tokens")]
    assert last_run(db) == ("unchanged", 3, 10 * 1024 * 1024, True)
    # The next night trusts the same read: the unchanged attempt carries its time on.
    bigquery.requests.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert queries(bigquery) == ["partitions"]


def test_a_write_after_the_read_makes_the_re_sync_rewrite_without_comparing(db, bigquery):
    db.execute(f"SELECT token_sync_day('{DAY}')")
    bigquery.write_day(DAY, day_rows(3, name="Renamed"))
    bigquery.requests.clear()
    seen = notices(db)
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert seen == []
    assert queries(bigquery) == ["partitions", "query"]
    # What was billed: the load's query and the metadata query that decided it.
    assert last_run(db) == ("succeeded", 3, 2 * 10 * 1024 * 1024, True)
    assert db.execute("SELECT array_agg(name ORDER BY name) FROM raw_tokens").fetchone() == (
        ["Renamed 1", "Renamed 2", "Renamed 3"],)


def test_a_write_that_changed_nothing_is_rewritten_rather_than_compared(db, bigquery):
    """Comparing would cost a summary query billed like the load and every local row
    hashed: more than the rewrite it might spare."""
    db.execute(f"SELECT token_sync_day('{DAY}')")
    bigquery.write_day(DAY)
    seen = notices(db)
    bigquery.requests.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert seen == []
    assert queries(bigquery) == ["partitions", "query"]
    assert last_run(db)[:2] == ("succeeded", 3)
    # That load is the newer read: the night after needs the metadata only.
    bigquery.requests.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert seen == [("NOTICE", UNWRITTEN)]
    assert queries(bigquery) == ["partitions"]


def test_a_deletion_that_left_the_last_write_time_as_it_was_is_found_by_the_row_count(db, bigquery):
    db.execute(f"SELECT token_sync_day('{DAY}')")
    # BigQuery says a deletion may not move last_modified_time: only the rows tell.
    bigquery.rows = bigquery.rows[:2]
    bigquery.requests.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert queries(bigquery) == ["partitions", "query"]
    assert last_run(db)[:2] == ("succeeded", 2)


def test_a_local_edit_is_noticed_by_its_row_count_and_by_token_verify_day(db, bigquery):
    db.execute(f"SELECT token_sync_day('{DAY}')")
    db.execute("DELETE FROM raw_tokens WHERE name = 'Token 1'")
    bigquery.requests.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert queries(bigquery) == ["summary", "query"]
    assert last_run(db)[:2] == ("succeeded", 3)
    # An edit that keeps the count is trusted away by the metadata; token_verify_day is the full check.
    db.execute("UPDATE raw_tokens SET name = 'edited' WHERE name = 'Token 1'")
    seen = notices(db)
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert seen == [("NOTICE", UNWRITTEN)]
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (False,)


def test_metadata_it_cannot_read_falls_back_to_the_comparison_with_a_notice(db, bigquery):
    db.execute(f"SELECT token_sync_day('{DAY}')")
    bigquery.fault = lambda kind, ordinal: {"status": 403, "body": {"error": {
        "code": 403, "message": "Access Denied: bigquery.tables.list", "errors": [{"reason": "accessDenied"}]}}} \
        if kind == "partitions" else None
    seen = notices(db)
    # The comparison sums the day without parallel workers, and leaves the caller's setting
    # as it was, seen in the same transaction.
    with db.transaction():
        db.execute("SET LOCAL max_parallel_workers_per_gather = 3")
        db.execute(f"SELECT token_sync_day('{DAY}')")
        assert db.execute("SHOW max_parallel_workers_per_gather").fetchone() == ("3",)
    assert len(seen) == 2 and seen[1] == ("NOTICE", SAME_FINGERPRINT)
    assert seen[0][1].startswith("token_sync: BigQuery's metadata of the partition 2026-11-20 of "
                                 "bigquery-public-data.crypto_ethereum.tokens cannot be read (")
    assert "comparing the day instead" in seen[0][1]


def test_rows_in_the_streaming_buffer_make_the_re_sync_compare(db, bigquery):
    db.execute(f"SELECT token_sync_day('{DAY}')")
    # Streamed rows: queries see them, the partition's metadata does not count them yet.
    bigquery.rows = bigquery.rows + day_rows(4)[3:]
    bigquery.streaming_buffer = True
    bigquery.requests.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert queries(bigquery) == ["summary", "query"]
    assert last_run(db)[:2] == ("succeeded", 4)


def test_the_last_load_counts_only_if_it_came_from_the_same_source(db, bigquery):
    db.execute(f"SELECT token_sync_day('{DAY}')")
    db.execute("SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens_copy'")
    db.execute(f"SELECT token_sync_day('{DAY}')")  # the day as the other source has it
    db.execute("SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
    bigquery.requests.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    # The day was last written from tokens_copy: what tokens' first load read says nothing.
    assert queries(bigquery) == ["summary"]


def test_columns_added_on_another_day_make_every_older_day_compare(db, bigquery):
    next_day = DAY + dt.timedelta(days=1)
    bigquery.write_day(next_day, day_rows(3) + [to_fake(token(9, MIDNIGHT + dt.timedelta(days=1, hours=1)))])
    db.execute(f"SELECT * FROM token_backfill('{DAY}', '{next_day}')")
    bigquery.schema = bigquery.schema + [("gas_price", "INTEGER")]
    bigquery.rows = [dict(r, gas_price=7) for r in bigquery.rows]
    db.execute(f"SELECT token_sync_day('{next_day}')")  # adds the column, loads that day
    bigquery.requests.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert queries(bigquery) == ["summary", "query"]
    assert db.execute("SELECT count(*) FROM raw_tokens WHERE gas_price = 7").fetchone() == (4,)


@pytest.mark.parametrize("partitioning", [
    {"type": "MONTH", "field": "block_timestamp"},   # a month per partition: no day's metadata
    {"type": "DAY"},                                  # ingestion time: the days are not the partitions
    {"type": "DAY", "field": "block_number"},         # by day, but not on the column the days are cut by
])
def test_no_metadata_is_asked_where_a_day_is_not_a_partition(db, bigquery, partitioning):
    bigquery.time_partitioning = partitioning
    db.execute("SELECT token_sync.add_table('bigquery-public-data.crypto_ethereum.tokens', "
               "time_column => 'block_timestamp')")
    try:
        db.execute(f"SELECT token_sync.sync_day('bigquery-public-data.crypto_ethereum.tokens', '{DAY}')")
        bigquery.requests.clear()
        db.execute(f"SELECT token_sync.sync_day('bigquery-public-data.crypto_ethereum.tokens', '{DAY}')")
        assert queries(bigquery) == ["summary"]
    finally:
        db.execute("SELECT token_sync.remove_table('bigquery-public-data.crypto_ethereum.tokens')")


def test_bigquery_sums_its_side_of_a_comparison_while_postgresql_sums_its_own(db, bigquery, cluster):
    """The summary query is sent before the local summary is computed: here the local one
    waits on another session's lock, and BigQuery's request arrives meanwhile."""
    db.execute(f"SELECT token_sync_day('{DAY}')")
    db.execute("SET lock_timeout = '30s'")
    bigquery.requests.clear()
    pool = concurrent.futures.ThreadPoolExecutor(1)
    with cluster.connect() as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE public.raw_tokens IN ACCESS EXCLUSIVE MODE")
        try:
            verified = pool.submit(lambda: db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone())
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                waiting = locker.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                         (db.info.backend_pid,)).fetchone()
                if queries(bigquery) and waiting == ("Lock",):
                    break
                time.sleep(0.05)
            assert (queries(bigquery), waiting) == (["summary"], ("Lock",))
        finally:
            locker.execute("ROLLBACK")
            pool.shutdown(wait=True)
    assert verified.result(timeout=30) == (True,)
