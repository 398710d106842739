"""Any registered table: token_sync.add_table / remove_table, the functions of schema
token_sync, sync_all across tables, and the crypto_ethereum registration script."""

import datetime as dt
import itertools
import os

import psycopg
import pytest

from crypto_ethereum import TABLES, row
from helpers import UTC, notices

_datasets = itertools.count(1)
DAYS = [dt.date(2026, 11, 14) + dt.timedelta(days=n) for n in range(7)]


@pytest.fixture
def dataset(emulator, db):
    """A fresh copy of crypto_ethereum's tables in the emulator, an empty registry, and
    none of their targets left over."""
    name = f"ce_{os.getpid()}_{next(_datasets)}"
    for table, (fields, time_column) in TABLES.items():
        emulator.create_table(table, dataset=name, fields=fields, partition_field=time_column)
    db.execute("TRUNCATE token_sync.tables")
    for table in TABLES:
        db.execute(f"DROP TABLE IF EXISTS public.raw_{table}")
    yield f"bigquery-public-data.{name}"
    db.execute("TRUNCATE token_sync.tables")
    for table in TABLES:
        db.execute(f"DROP TABLE IF EXISTS public.raw_{table}")


def insert(emulator, dataset, table, rows):
    emulator.insert_rows(rows, table=table, dataset=dataset.split(".")[1])


def test_add_table_registers_with_defaults_and_again_updates(db, emulator, dataset):
    added = db.execute("SELECT source_table, target_table, time_column, added_at = updated_at "
                       "FROM token_sync.add_table(%s)", (f"{dataset}.blocks",)).fetchone()
    assert added == (f"{dataset}.blocks", "public.raw_blocks", "timestamp", True)
    again = db.execute("SELECT target_table, added_at < updated_at FROM token_sync.add_table(%s, 'archive_blocks')",
                       (f"{dataset}.blocks",)).fetchone()
    assert again == ("public.archive_blocks", True)
    assert db.execute("SELECT count(*) FROM token_sync.tables").fetchone() == (1,)
    # Nothing is created until the first sync.
    assert db.execute("SELECT to_regclass('public.archive_blocks')").fetchone() == (None,)


@pytest.mark.parametrize("arguments, error, words", [
    (("bigquery-public-data.nowhere.blocks",), psycopg.errors.UndefinedTable, "Not found"),
    (("not a table",), psycopg.errors.InvalidParameterValue, "source_table \"not a table\" is not a BigQuery table name"),
    ((None,), psycopg.errors.InvalidParameterValue, "source_table must not be NULL"),
    (("{dataset}.blocks", None, "miner"), psycopg.errors.DatatypeMismatch,
     "the column \"miner\" of {dataset}.blocks is text, not a TIMESTAMP, DATETIME or DATE"),
    (("{dataset}.blocks", None, "nope"), psycopg.errors.UndefinedColumn, "has no column \"nope\""),
    (("{dataset}.blocks", "a.b.c"), psycopg.errors.InvalidParameterValue,
     "the target table \"a.b.c\" is not [schema.]table"),
])
def test_add_table_refuses_what_it_cannot_mirror(db, dataset, arguments, error, words):
    arguments = tuple(a.format(dataset=dataset) if a else a for a in arguments)
    placeholders = ", ".join(["%s"] * len(arguments))
    with pytest.raises(error) as raised:
        db.execute(f"SELECT * FROM token_sync.add_table({placeholders})", arguments)
    assert words.format(dataset=dataset) in raised.value.diag.message_primary
    assert raised.value.diag.message_hint
    assert db.execute("SELECT count(*) FROM token_sync.tables").fetchone() == (0,)


def test_add_table_refuses_an_existing_target_of_another_shape(db, dataset):
    db.execute("CREATE TABLE public.raw_blocks (\"timestamp\" timestamptz, number text)")
    with pytest.raises(psycopg.errors.DatatypeMismatch) as raised:
        db.execute("SELECT * FROM token_sync.add_table(%s)", (f"{dataset}.blocks",))
    assert "column number of the target table public.raw_blocks is text, but the source's is bigint" \
        in raised.value.diag.message_primary


def test_functions_of_a_registered_table_and_remove_table(db, emulator, dataset):
    moment = dt.datetime(2026, 11, 20, 12, tzinfo=UTC)
    insert(emulator, dataset, "logs", [row("logs", n, moment + dt.timedelta(seconds=n)) for n in range(3)]
           + [row("logs", 9, moment + dt.timedelta(days=1))])
    logs = f"{dataset}.logs"
    with pytest.raises(psycopg.errors.UndefinedObject) as raised:
        db.execute("SELECT * FROM token_sync.sync_day(%s, '2026-11-20')", (logs,))
    assert raised.value.diag.message_primary == f"the table {logs} is not registered"
    assert raised.value.diag.message_hint == f"Register it first: SELECT * FROM token_sync.add_table('{logs}');"
    db.execute("SELECT * FROM token_sync.add_table(%s)", (logs,))

    assert db.execute("SELECT day, rows_loaded FROM token_sync.sync_day(%s, '2026-11-20')", (logs,)).fetchone() \
        == (dt.date(2026, 11, 20), 3)
    assert db.execute("SELECT topics FROM raw_logs WHERE log_index = 1").fetchone() == (
        [f"0x{1:064x}", f"0x{2:064x}"],)
    verified = db.execute("SELECT matches, bigquery_rows, local_rows FROM token_sync.verify_day(%s, '2026-11-20')",
                          (logs,)).fetchone()
    assert verified == (True, 3, 3)
    days = db.execute("SELECT day, status, rows_loaded FROM token_sync.backfill(%s, '2026-11-20', '2026-11-21')",
                      (logs,)).fetchall()
    assert days == [(dt.date(2026, 11, 20), "unchanged", 3), (dt.date(2026, 11, 21), "succeeded", 1)]
    assert db.execute("SELECT DISTINCT source_table, target_table FROM token_sync.runs").fetchall() == [
        (logs, "public.raw_logs")]
    assert db.execute("SELECT DISTINCT source_table FROM token_sync.day_status").fetchall() == [(logs,)]
    with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
        db.execute("SELECT * FROM token_sync.backfill(%s, '2026-11-21', '2026-11-20')", (logs,))
    assert "token_sync.backfill(source_table, from_day, to_day)" in raised.value.diag.message_hint

    assert db.execute("SELECT token_sync.remove_table(%s)", (logs,)).fetchone() == (True,)
    seen = notices(db)
    assert db.execute("SELECT token_sync.remove_table(%s)", (logs,)).fetchone() == (False,)
    assert seen == [("NOTICE", f"token_sync: {logs} was not registered")]
    assert db.execute("SELECT count(*) FROM raw_logs").fetchone() == (4,), "the target and its rows stay"


def test_sync_all_syncs_a_week_of_every_table_and_keeps_the_others_when_one_fails(db, emulator, dataset):
    chosen = ["blocks", "logs", "transactions"]
    for table in chosen:
        rows = [row(table, index * 10 + n, dt.datetime.combine(day, dt.time(n), UTC))
                for index, day in enumerate(DAYS) for n in range(1, 4)]
        if table == "transactions":
            # A value the target refuses, on the week's fourth day only.
            rows.append(row(table, 999, dt.datetime.combine(DAYS[3], dt.time(9), UTC), value="1000000"))
        insert(emulator, dataset, table, rows)
        db.execute("SELECT * FROM token_sync.add_table(%s)", (f"{dataset}.{table}",))
    db.execute(f"SELECT * FROM token_sync.sync_day(%s, '{DAYS[0]}')", (f"{dataset}.transactions",))
    db.execute("ALTER TABLE raw_transactions ADD CONSTRAINT small_values CHECK (value < 1000)")
    seen = notices(db)

    result = db.execute("SELECT s.source_table, s.day, s.status, s.rows_loaded, s.error "
                        "FROM generate_series(%s::date, %s::date, interval '1 day') AS d, "
                        "LATERAL token_sync.sync_all(d::date) AS s", (DAYS[0], DAYS[-1])).fetchall()
    assert [(source.rsplit(".", 1)[1], day) for source, day, *_ in result] == \
        [(table, day) for day in DAYS for table in ["blocks", "logs", "transactions"]]
    failed = [(source, day) for source, day, status, _, _ in result if status == "failed"]
    assert failed == [(f"{dataset}.transactions", DAYS[3])]
    error = next(e for *_, status, _, e in result if status == "failed")
    assert "small_values" in error
    assert seen == [("WARNING", f"token_sync: {dataset}.transactions {DAYS[3]} failed: {error}")]
    assert {(s.rsplit(".", 1)[1], status, loaded) for s, _, status, loaded, _ in result if status != "failed"} == {
        ("blocks", "succeeded", 3), ("logs", "succeeded", 3), ("transactions", "succeeded", 3),
        ("transactions", "unchanged", 3)}
    for table in chosen:
        expected = 21 if table != "transactions" else 18
        assert db.execute(f"SELECT count(*) FROM raw_{table}").fetchone() == (expected,), table
    assert db.execute("SELECT numeric_scale IS NULL FROM information_schema.columns "
                      "WHERE table_name = 'raw_transactions' AND column_name = 'value'").fetchone() == (True,)
    assert db.execute("SELECT value FROM raw_transactions WHERE nonce = 12").fetchone()[0] == \
        __import__("decimal").Decimal("12.000000012")
    missing = db.execute("SELECT target_table, day FROM token_sync.day_status WHERE missing").fetchall()
    assert missing == [("public.raw_transactions", DAYS[3])]
    blocks = db.execute("SELECT \"timestamp\", withdrawals FROM raw_blocks ORDER BY number LIMIT 1").fetchone()
    assert blocks == (dt.datetime.combine(DAYS[0], dt.time(1), UTC),
                      [{"validator_index": 1, "amount": "1000000000"}])


def test_sync_all_with_nothing_registered_says_so(db):
    db.execute("TRUNCATE token_sync.tables")
    seen = notices(db)
    assert db.execute("SELECT * FROM token_sync.sync_all('2026-11-20')").fetchall() == []
    assert seen == [("NOTICE", "token_sync: no table is registered; register one with token_sync.add_table")]


def test_the_crypto_ethereum_script_registers_the_seven_tables(db, dataset, psql):
    output = psql("sql/crypto_ethereum.sql", dataset=dataset)
    registered = db.execute("SELECT source_table, target_table, time_column FROM token_sync.tables "
                            "ORDER BY source_table").fetchall()
    assert registered == sorted((f"{dataset}.{table}", f"public.raw_{table}", time_column)
                                for table, (_, time_column) in TABLES.items())
    assert f"{dataset}.blocks" in output
    # Running it again updates the same seven rows.
    psql("sql/crypto_ethereum.sql", dataset=dataset)
    assert db.execute("SELECT count(*) FROM token_sync.tables").fetchone() == (7,)
