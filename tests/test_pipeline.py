"""The D-1 pipeline against the real bqemulator: day boundaries, strings, NULLs, paging,
idempotent re-runs, backfill with a failing day, verification, the ledger and its view."""

import datetime as dt

import psycopg
import pytest

from helpers import UTC, notices, token

DAY = dt.date(2026, 11, 20)
MIDNIGHT = dt.datetime(2026, 11, 20, tzinfo=UTC)


def loaded(db, day=DAY):
    return db.execute(
        "SELECT block_number, address, symbol, name, decimals, total_supply, block_timestamp, block_hash "
        "FROM raw_tokens WHERE block_timestamp >= %s AND block_timestamp < %s ORDER BY block_number",
        (dt.datetime.combine(day, dt.time(), UTC), dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), UTC)),
    ).fetchall()


@pytest.mark.parametrize("timezone", ["Pacific/Kiritimati", "America/Los_Angeles"])
def test_day_is_the_utc_day_whatever_the_session_timezone(db, source, timezone):
    micro = dt.timedelta(microseconds=1)
    source.insert([
        token(1, MIDNIGHT - micro),                          # last instant of the day before
        token(2, MIDNIGHT),                                  # first instant of the day: in
        token(3, MIDNIGHT + dt.timedelta(hours=12, microseconds=654321)),
        token(4, MIDNIGHT + dt.timedelta(days=1) - micro),   # last instant: in
        token(5, MIDNIGHT + dt.timedelta(days=1)),           # first instant of the next day: out
    ])
    db.execute(f"SET TimeZone = '{timezone}'")
    (day, rows_loaded, rows_reported, seconds, bytes_billed, job_id), = db.execute(
        "SELECT * FROM token_sync_day('2026-11-20')").fetchall()
    assert (day, rows_loaded, rows_reported) == (DAY, 3, 3)
    assert seconds > 0 and job_id
    rows = db.execute("SELECT block_number, block_timestamp FROM raw_tokens ORDER BY 1").fetchall()
    assert rows == [
        (2, MIDNIGHT),
        (3, MIDNIGHT + dt.timedelta(hours=12, microseconds=654321)),
        (4, MIDNIGHT + dt.timedelta(days=1) - micro),
    ]


def test_strings_nulls_and_nul_characters_arrive_exactly(db, source):
    strange = "tab\there\nnewline\r\\backslash 'quote' \"dq\" é 漢字 🚀 \x7f"
    source.insert([
        token(1, MIDNIGHT + dt.timedelta(hours=1), name=strange, symbol="", decimals=None, total_supply="9" * 78),
        token(2, MIDNIGHT + dt.timedelta(hours=2), name="Null\x00Byte\x00Coin", symbol="\x00", decimals="garbage"),
        token(3, MIDNIGHT + dt.timedelta(hours=3), symbol=None, name=None, decimals=None, total_supply=None),
    ])
    db.execute("SELECT token_sync_day('2026-11-20')")
    rows = loaded(db)
    assert [r[:6] for r in rows] == [
        (1, f"0x{1:040x}", "", strange, None, "9" * 78),
        (2, f"0x{2:040x}", "", "NullByteCoin", "garbage", str(10 ** 24 + 2)),
        (3, f"0x{3:040x}", None, None, None, None),
    ]
    assert db.execute("SELECT rows_loaded, rows_nul_stripped FROM token_sync.runs").fetchall() == [(3, 1)]


def test_a_day_larger_than_a_page_arrives_whole(db, source):
    rows = [token(n, MIDNIGHT + dt.timedelta(seconds=n * 7)) for n in range(1, 251)]
    source.insert(rows)
    db.execute("SET token_sync.page_rows = 17")  # 15 getQueryResults pages
    result = db.execute("SELECT rows_loaded, rows_reported FROM token_sync_day('2026-11-20')").fetchone()
    assert result == (250, 250)
    assert [r[0] for r in loaded(db)] == list(range(1, 251))


def test_rerun_replaces_the_day_and_leaves_other_days_alone(db, source):
    next_day = MIDNIGHT + dt.timedelta(days=1)
    source.insert([token(n, MIDNIGHT + dt.timedelta(minutes=n)) for n in range(1, 6)]
                  + [token(100, next_day + dt.timedelta(hours=1))])
    db.execute("SELECT token_sync_day('2026-11-21')")
    db.execute("SELECT token_sync_day('2026-11-20')")
    db.execute("SELECT token_sync_day('2026-11-20')")
    assert [r[0] for r in loaded(db)] == [1, 2, 3, 4, 5]

    source.delete_where("block_number IN (2, 4)")
    db.execute("SELECT token_sync_day('2026-11-20')")
    assert [r[0] for r in loaded(db)] == [1, 3, 5]
    assert [r[0] for r in loaded(db, DAY + dt.timedelta(days=1))] == [100]
    assert db.execute("SELECT day::text, status FROM token_sync.runs ORDER BY run_id").fetchall() == [
        ("2026-11-21", "succeeded"), ("2026-11-20", "succeeded"), ("2026-11-20", "unchanged"),
        ("2026-11-20", "succeeded")]


def test_readers_never_see_a_half_loaded_day(db, source, cluster):
    source.insert([token(n, MIDNIGHT + dt.timedelta(minutes=n)) for n in range(1, 4)])
    db.execute("SELECT token_sync_day('2026-11-20')")
    source.insert([token(n, MIDNIGHT + dt.timedelta(minutes=n)) for n in range(4, 7)])
    with cluster.connect() as reader:
        db.execute("BEGIN")
        db.execute("SELECT token_sync_day('2026-11-20')")
        assert reader.execute("SELECT count(*) FROM raw_tokens").fetchone() == (3,)
        db.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM raw_tokens").fetchone() == (6,)


def test_backfill_runs_every_day_and_isolates_a_failing_one(db, emulator):
    from conftest import Source

    source = Source(emulator, db, required=False)
    first = dt.date(2026, 11, 10)
    rows = []
    for offset in range(7):
        start = dt.datetime.combine(first + dt.timedelta(days=offset), dt.time(), UTC)
        rows += [token(offset * 10 + n, start + dt.timedelta(hours=n)) for n in range(1, offset + 2)]
    # The middle day carries a row with NULL in a NOT NULL column: that day must fail alone.
    rows.append(token(999, dt.datetime(2026, 11, 13, 5, tzinfo=UTC), address=None))
    source.insert(rows)
    # What the day held before must survive its failed re-load.
    db.execute("CREATE TABLE raw_tokens (address text not null, symbol text, name text, decimals text, "
               "total_supply text, block_timestamp timestamptz not null, block_number bigint not null, "
               "block_hash text not null)")
    db.execute("INSERT INTO raw_tokens VALUES ('0xold', null, null, null, null, '2026-11-13 01:00+00', 7, '0xh')")

    result = db.execute("SELECT day, status, rows_loaded, error FROM token_backfill('2026-11-10', '2026-11-16')").fetchall()
    assert [r[0] for r in result] == [first + dt.timedelta(days=i) for i in range(7)]
    statuses = {r[0].day: r[1] for r in result}
    assert statuses == {10: "succeeded", 11: "succeeded", 12: "succeeded", 13: "failed",
                        14: "succeeded", 15: "succeeded", 16: "succeeded"}
    failed = next(r for r in result if r[1] == "failed")
    assert "NULL" in failed[3] and "address" in failed[3]
    assert [r[2] for r in result if r[1] == "succeeded"] == [1, 2, 3, 5, 6, 7]

    assert db.execute("SELECT block_number FROM raw_tokens WHERE block_timestamp::date = '2026-11-13' "
                      "AND block_timestamp >= '2026-11-13 00:00+00' AND block_timestamp < '2026-11-14 00:00+00'"
                      ).fetchall() == [(7,)]
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (25,)
    ledger = db.execute("SELECT day, status, error IS NOT NULL FROM token_sync.runs ORDER BY day").fetchall()
    assert [(d.day, s, e) for d, s, e in ledger] == [
        (10, "succeeded", False), (11, "succeeded", False), (12, "succeeded", False), (13, "failed", True),
        (14, "succeeded", False), (15, "succeeded", False), (16, "succeeded", False)]
    missing = db.execute("SELECT day FROM token_sync.day_status WHERE missing").fetchall()
    assert missing == [(dt.date(2026, 11, 13),)]


def test_verify_matches_then_detects_tampering(db, source):
    source.insert([
        token(1, MIDNIGHT + dt.timedelta(hours=1), name="A\x00B"),
        token(2, MIDNIGHT + dt.timedelta(hours=2), symbol=None, decimals=None),
        token(3, MIDNIGHT + dt.timedelta(hours=3, microseconds=7), name="tab\tnl\n🚀"),
    ])
    db.execute("SELECT token_sync_day('2026-11-20')")
    check = "SELECT matches, bigquery_rows, local_rows, bigquery_fingerprint, local_fingerprint, " \
            "bigquery_max_timestamp, local_max_timestamp FROM token_verify_day('2026-11-20')"
    matches, remote_rows, local_rows, remote_fp, local_fp, remote_max, local_max = db.execute(check).fetchone()
    assert matches and remote_rows == local_rows == 3 and remote_fp == local_fp != 0
    assert remote_max == local_max == MIDNIGHT + dt.timedelta(hours=3, microseconds=7)

    db.execute("UPDATE raw_tokens SET total_supply = total_supply || '0' WHERE block_number = 2")
    matches, remote_rows, local_rows, remote_fp, local_fp, *_ = db.execute(check).fetchone()
    assert not matches and remote_rows == local_rows == 3 and remote_fp != local_fp

    db.execute("SELECT token_sync_day('2026-11-20')")
    assert db.execute(check).fetchone()[0] is True
    db.execute("DELETE FROM raw_tokens WHERE block_number = 3")
    matches, remote_rows, local_rows, *_ = db.execute(check).fetchone()
    assert (matches, remote_rows, local_rows) == (False, 3, 2)


def test_verify_of_an_empty_day_matches(db, source):
    result = db.execute("SELECT matches, bigquery_rows, local_rows, bigquery_min_timestamp "
                        "FROM token_verify_day('2026-11-20')").fetchone()
    assert result == (True, 0, 0, None)


def test_missing_source_table_is_a_clear_error(db, emulator):
    db.execute("SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.no_such_table'")
    with pytest.raises(psycopg.errors.UndefinedTable) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert "no_such_table" in error.value.diag.message_primary
    assert "token_sync.source_table" in error.value.diag.message_hint


def test_drop_extension_keeps_the_data(cluster, db, source):
    source.insert([token(1, MIDNIGHT)])
    db.execute("SELECT token_sync_day('2026-11-20')")
    db.execute("DROP EXTENSION token_sync")
    try:
        assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (1,)
    finally:
        db.execute("CREATE EXTENSION token_sync")


def test_verify_creates_nothing_when_the_target_does_not_exist(db, source):
    source.insert([token(1, MIDNIGHT + dt.timedelta(hours=1))])
    seen = notices(db)
    result = db.execute("SELECT matches, bigquery_rows, local_rows, local_fingerprint "
                        "FROM token_verify_day('2026-11-20')").fetchone()
    assert result == (False, 1, 0, 0)
    assert seen == [("NOTICE", "token_sync: the target table public.raw_tokens does not exist yet; it holds no rows")]
    assert db.execute("SELECT to_regclass('public.raw_tokens')").fetchone() == (None,)
    assert db.execute("SELECT count(*) FROM token_sync.runs").fetchone() == (0,)


def row_versions(db):
    return db.execute("SELECT block_number, xmin::text FROM raw_tokens ORDER BY block_number").fetchall()


def test_a_resync_of_an_unchanged_day_rewrites_nothing_and_a_changed_day_is_rewritten(db, source):
    source.insert([token(n, MIDNIGHT + dt.timedelta(minutes=n), name=f"T\x00{n}") for n in range(1, 6)])
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (5,)
    versions = row_versions(db)
    seen = notices(db)
    day, rows_loaded, rows_reported, _, _, job_id = db.execute("SELECT * FROM token_sync_day('2026-11-20')").fetchone()
    assert (day, rows_loaded, rows_reported) == (DAY, 5, 5) and job_id
    assert seen == [("NOTICE", "token_sync: 2026-11-20 is unchanged in BigQuery (5 rows, same fingerprint); "
                               "it was not rewritten")]
    assert row_versions(db) == versions, "no row was rewritten"
    assert db.execute("SELECT status, rows_loaded, job_id FROM token_backfill('2026-11-20', '2026-11-20')"
                      ).fetchone()[:2] == ("unchanged", 5)
    assert row_versions(db) == versions

    # One value changed at the source: the day is rewritten.
    source.delete_where("block_number = 3")
    source.insert([token(3, MIDNIGHT + dt.timedelta(minutes=3), name="T\x003", symbol="CHANGED")])
    seen.clear()
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (5,)
    assert seen == []
    assert db.execute("SELECT symbol FROM raw_tokens WHERE block_number = 3").fetchone() == ("CHANGED",)
    assert row_versions(db) != versions

    # The switch: always rewrite.
    versions = row_versions(db)
    db.execute("SET token_sync.skip_unchanged = off")
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (5,)
    assert all(old != new for old, new in zip(versions, row_versions(db)))
    assert db.execute("SELECT status FROM token_sync.runs ORDER BY run_id").fetchall() == [
        ("succeeded",), ("unchanged",), ("unchanged",), ("succeeded",), ("succeeded",)]
    assert db.execute("SELECT last_attempt_status, missing FROM token_sync.day_status").fetchall() == [
        ("succeeded", False)]


def test_an_unchanged_day_still_counts_as_present(db, source):
    source.insert([token(1, MIDNIGHT + dt.timedelta(hours=1))])
    db.execute("SELECT token_sync_day('2026-11-20')")
    db.execute("SELECT token_sync_day('2026-11-20')")
    assert db.execute("SELECT last_attempt_status, rows_loaded, missing FROM token_sync.day_status").fetchall() == [
        ("unchanged", 1, False)]
