"""A re-sync of a day that BigQuery has not written to since it was read: one metadata query
(INFORMATION_SCHEMA.PARTITIONS), no scan on either side. Against the fake, which answers as
BigQuery does: a job's creationTime, and each partition's rows and last write."""

import concurrent.futures
import datetime as dt
import time

import psycopg
import pytest

from helpers import UTC, notices, to_fake, token

DAY = dt.date(2026, 11, 20)
MIDNIGHT = dt.datetime(2026, 11, 20, tzinfo=UTC)
UNWRITTEN = "token_sync: 2026-11-20 is unchanged in BigQuery (3 rows, its partition not written since it was read); " \
            "it was not rewritten"
SAME_FINGERPRINT = "token_sync: 2026-11-20 is unchanged in BigQuery (3 rows, same fingerprint); it was not rewritten"
SAME_HOURS = "token_sync: 2026-11-20 is unchanged in BigQuery (3 rows, its partition written since it was read, " \
             "every hour's rows the same); it was not rewritten"


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


def test_a_write_after_the_read_makes_the_re_sync_rewrite_its_hours_without_comparing(db, bigquery):
    db.execute(f"SELECT token_sync_day('{DAY}')")
    bigquery.write_day(DAY, day_rows(3, name="Renamed"))
    bigquery.requests.clear()
    seen = notices(db)
    db.execute(f"SELECT token_sync_day('{DAY}')")
    # Every row is in the day's first hour.
    assert seen == [("NOTICE", "token_sync: 2026-11-20 differs from what the last load wrote in 1 of its 24 hours (00:00-01:00); "
                               "only those were rewritten (3 rows deleted, 3 stored)")]
    assert queries(bigquery) == ["partitions", "query"]
    # What was billed: the load's query and the metadata query that decided it.
    assert last_run(db) == ("succeeded", 3, 2 * 10 * 1024 * 1024, True)
    assert db.execute("SELECT array_agg(name ORDER BY name) FROM raw_tokens").fetchone() == (
        ["Renamed 1", "Renamed 2", "Renamed 3"],)


def test_a_write_that_changed_nothing_is_read_but_not_rewritten(db, bigquery):
    """Comparing would cost a summary query billed like the load and every local row
    hashed: the day is read as a load would, and its rows are compared hour by hour with
    what the last load wrote, without reading the target."""
    db.execute(f"SELECT token_sync_day('{DAY}')")
    before = row_versions(db)
    bigquery.write_day(DAY)
    seen = notices(db)
    bigquery.requests.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert seen == [("NOTICE", SAME_HOURS)]
    assert queries(bigquery) == ["partitions", "query"]
    assert last_run(db) == ("unchanged", 3, 2 * 10 * 1024 * 1024, True)
    assert row_versions(db) == before
    assert db.execute("SELECT count(*), count(DISTINCT hour_digests) FROM token_sync.run_digests").fetchone() == (2, 1)
    # That read is the newer one: the night after needs the metadata only.
    seen.clear()
    bigquery.requests.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert seen == [("NOTICE", UNWRITTEN)]
    assert queries(bigquery) == ["partitions"]


def row_versions(db):
    """Each row's name and the transaction that wrote it: a rewritten row has another."""
    return dict(db.execute("SELECT name, xmin::text FROM raw_tokens").fetchall())


def hour_rows(hours, name="Token"):
    """A row at each of `hours` past midnight (and n minutes), named after its hour."""
    return [to_fake(token(n, MIDNIGHT + dt.timedelta(hours=hour, minutes=n), name=f"{name} {hour}"))
            for n, hour in enumerate(hours, start=1)]


def day_rows_as_text(db):
    return db.execute("SELECT name, symbol, block_number FROM raw_tokens ORDER BY block_timestamp, name").fetchall()


@pytest.mark.parametrize("copy_format", ["binary", "text"])
def test_a_write_that_changed_some_hours_rewrites_only_those(db, bigquery, copy_format):
    if copy_format == "text":  # a JSON column has no binary form here: the day goes as COPY text
        bigquery.schema = bigquery.schema + [("extra", "JSON")]
    extra = {"extra": '{"a": 1}'} if copy_format == "text" else {}
    # Rows of an hour in several pages, out of the hours' order.
    bigquery.page_cap = 2
    first = [r | extra for r in hour_rows([3, 0, 23, 3, 5])]
    bigquery.write_day(DAY, first)
    db.execute(f"SELECT token_sync_day('{DAY}')")
    # A local edit of an hour BigQuery did not change is trusted away, as by the metadata.
    db.execute("UPDATE raw_tokens SET symbol = 'local' WHERE name = 'Token 5'")
    before = row_versions(db)
    rows = [dict(r) for r in first]
    rows[3]["name"] = "Renamed 3"              # hour 3 changed
    rows.append(hour_rows([7])[0] | {"block_number": 99} | extra)  # hour 7 gained a row
    del rows[2]                                # hour 23 lost its row
    bigquery.write_day(DAY, rows)
    seen = notices(db)
    bigquery.requests.clear()
    assert db.execute(f"SELECT rows_loaded, rows_reported FROM token_sync_day('{DAY}')").fetchone() == (5, 5)
    assert seen == [("NOTICE", "token_sync: 2026-11-20 differs from what the last load wrote in 3 of its 24 hours "
                               "(03:00-04:00, 07:00-08:00, 23:00-24:00); only those were rewritten "
                               "(3 rows deleted, 3 stored)")]
    assert queries(bigquery) == ["partitions", "query"]
    assert day_rows_as_text(db) == [("Token 0", "T2", 2), ("Token 3", "T1", 1), ("Renamed 3", "T4", 4),
                                    ("Token 5", "local", 5), ("Token 7", "T1", 99)]
    after = row_versions(db)
    assert (after["Token 0"], after["Token 5"]) == (before["Token 0"], before["Token 5"])
    assert after["Token 3"] != before["Token 3"]
    assert last_run(db) == ("succeeded", 5, 2 * 10 * 1024 * 1024, True)
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (False,)
    # A night with the partition unwritten carries the digests on; the next write finds the
    # hours as this re-sync left them.
    seen.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert seen == [("NOTICE", UNWRITTEN.replace("3 rows", "5 rows"))]
    rows[0]["name"] = "Renamed again 3"
    bigquery.write_day(DAY, rows)
    seen.clear()
    db.execute(f"SELECT token_sync_day('{DAY}')")
    assert seen == [("NOTICE", "token_sync: 2026-11-20 differs from what the last load wrote in 1 of its 24 hours "
                               "(03:00-04:00); only those were rewritten (2 rows deleted, 2 stored)")]
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (5,)


def test_rows_moved_between_hours_here_make_the_other_hours_rewritten_too(db, bigquery):
    """The day then holds another count than arrived: the other hours did not hold what the
    last load wrote, and are rewritten from their files too."""
    bigquery.write_day(DAY, hour_rows([0, 3, 5]))
    db.execute(f"SELECT token_sync_day('{DAY}')")
    db.execute(f"UPDATE raw_tokens SET block_timestamp = '{DAY} 03:30+00' WHERE name = 'Token 5'")
    bigquery.write_day(DAY, renamed_in_hour_3())
    seen = notices(db)
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (3,)
    assert seen == [
        ("NOTICE", "token_sync: 2026-11-20 differs from what the last load wrote in 1 of its 24 hours (03:00-04:00); "
                   "only those were rewritten (2 rows deleted, 1 stored)"),
        ("NOTICE", "token_sync: the other hours of 2026-11-20 did not hold the rows the last load wrote "
                   "(edited here since?); they were rewritten too")]
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (True,)
    assert last_run(db)[:2] == ("succeeded", 3)


def test_a_failure_while_hours_are_written_leaves_the_day_and_the_next_day_loads(db, bigquery):
    """The hours' temporary files go with the failed day's subtransaction."""
    next_day = DAY + dt.timedelta(days=1)
    day_two = [to_fake(token(9, MIDNIGHT + dt.timedelta(days=1, hours=2)))]
    bigquery.write_day(DAY, hour_rows([0, 3, 5]) + day_two)
    bigquery.write_day(next_day)
    db.execute(f"SELECT * FROM token_backfill('{DAY}', '{next_day}')")
    db.execute("ALTER TABLE raw_tokens ADD CONSTRAINT no_renamed CHECK (name NOT LIKE 'Renamed%')")
    bigquery.write_day(DAY, renamed_in_hour_3() + [dict(day_two[0], name="Moved 2")])
    bigquery.write_day(next_day)
    seen = notices(db)
    days = db.execute(f"SELECT day::text, status, error FROM token_backfill('{DAY}', '{next_day}')").fetchall()
    assert [(day, status) for day, status, _ in days] == [(str(DAY), "failed"), (str(next_day), "succeeded")]
    assert "no_renamed" in days[0][2]
    # The day's own failure, and no leaked temporary file.
    assert [message for severity, message in seen if severity == "WARNING"] == [
        'token_sync: 2026-11-20 failed: new row for relation "raw_tokens" violates check constraint "no_renamed"']
    assert db.execute("SELECT name FROM raw_tokens ORDER BY block_timestamp").fetchall() == [
        ("Token 0",), ("Token 3",), ("Token 5",), ("Moved 2",)]


def renamed_in_hour_3():
    rows = hour_rows([0, 3, 5])
    rows[1]["name"] = "Renamed 3"
    return rows


def test_a_trigger_and_a_rule_on_the_target_see_only_the_rows_of_the_changed_hours(db, bigquery):
    """The hours are rewritten as the day would be, DELETE then COPY: a rule on DELETE runs,
    a row trigger fires, for the rows of those hours only."""
    bigquery.write_day(DAY, hour_rows([0, 3, 5]))
    db.execute(f"SELECT token_sync_day('{DAY}')")
    db.execute("CREATE TABLE audit (what text, name text)")
    db.execute("CREATE FUNCTION audited() RETURNS trigger LANGUAGE plpgsql AS "
               "'BEGIN INSERT INTO public.audit VALUES (''inserted'', NEW.name); RETURN NEW; END'")
    db.execute("CREATE TRIGGER audited BEFORE INSERT ON raw_tokens FOR EACH ROW EXECUTE FUNCTION audited()")
    db.execute("CREATE RULE audited AS ON DELETE TO raw_tokens DO ALSO INSERT INTO audit VALUES ('deleted', OLD.name)")
    bigquery.write_day(DAY, renamed_in_hour_3())
    seen = notices(db)
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (3,)
    assert seen == [("NOTICE", "token_sync: 2026-11-20 differs from what the last load wrote in 1 of its 24 hours (03:00-04:00); "
                               "only those were rewritten (1 rows deleted, 1 stored)")]
    assert db.execute("SELECT what, name FROM audit ORDER BY what").fetchall() == [
        ("deleted", "Token 3"), ("inserted", "Renamed 3")]


def test_a_trigger_that_skips_a_row_of_a_changed_hour_fails_the_day_and_writes_nothing(db, bigquery):
    bigquery.write_day(DAY, hour_rows([0, 3, 5]))
    db.execute(f"SELECT token_sync_day('{DAY}')")
    db.execute("CREATE FUNCTION skip_renamed() RETURNS trigger LANGUAGE plpgsql AS "
               "'BEGIN IF NEW.name LIKE ''Renamed%'' THEN RETURN NULL; END IF; RETURN NEW; END'")
    db.execute("CREATE TRIGGER skip_renamed BEFORE INSERT ON raw_tokens FOR EACH ROW EXECUTE FUNCTION skip_renamed()")
    bigquery.write_day(DAY, renamed_in_hour_3())
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as failed:
        db.execute(f"SELECT token_sync_day('{DAY}')")
    assert failed.value.diag.message_primary == (
        "1 rows of 2026-11-20 arrived in the hours rewritten, but COPY stored 0 of them in the target table "
        "public.raw_tokens")
    assert sorted(row_versions(db)) == ["Token 0", "Token 3", "Token 5"]
    assert last_run(db)[0] == "failed"


def test_a_runner_without_temporary_tables_rewrites_only_the_changed_hours(db, bigquery, cluster):
    """The day is kept by hour in temporary files, which need no privilege, not in a table."""
    bigquery.write_day(DAY, hour_rows([0, 3, 5]))
    db.execute(f"SELECT token_sync_day('{DAY}')")
    db.execute("DROP ROLE IF EXISTS hourly_runner")
    db.execute("CREATE ROLE hourly_runner LOGIN")
    db.execute("REVOKE TEMPORARY ON DATABASE token_sync_test FROM PUBLIC")
    try:
        db.execute("GRANT EXECUTE ON FUNCTION token_sync_day(date) TO hourly_runner")
        db.execute("GRANT SELECT, INSERT, DELETE ON raw_tokens TO hourly_runner")
        db.execute(f"ALTER ROLE hourly_runner SET token_sync.api_url = '{bigquery.base_url}'")
        db.execute("ALTER ROLE hourly_runner SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
        before = row_versions(db)
        bigquery.write_day(DAY, renamed_in_hour_3())
        with cluster.connect(user="hourly_runner") as runner:
            assert runner.execute("SELECT has_database_privilege(current_database(), 'TEMPORARY')").fetchone() == (
                False,)
            seen = notices(runner)
            assert runner.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (3,)
        assert seen == [("NOTICE", "token_sync: 2026-11-20 differs from what the last load wrote in 1 of its 24 hours (03:00-04:00); "
                                   "only those were rewritten (1 rows deleted, 1 stored)")]
        after = row_versions(db)
        assert sorted(after) == ["Renamed 3", "Token 0", "Token 5"]
        assert (after["Token 0"], after["Token 5"]) == (before["Token 0"], before["Token 5"])
    finally:
        db.execute("GRANT TEMPORARY ON DATABASE token_sync_test TO PUBLIC")
        db.execute("DROP OWNED BY hourly_runner")
        db.execute("DROP ROLE hourly_runner")


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
