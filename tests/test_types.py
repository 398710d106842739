"""Every BigQuery type the emulator serves, from a table made for it, through a real sync:
each value as PostgreSQL holds it, and the fingerprint that verifies it, per type."""

import itertools
import os

import psycopg
import pytest

from helpers import notices

_tables = itertools.count(1)
DAY = "2026-11-20"


def field(name, kind, mode="NULLABLE", fields=None):
    resource = {"name": name, "type": kind, "mode": mode}
    if fields:
        resource["fields"] = fields
    return resource


class TypedSource:
    """A day-partitioned table of `fields` in the emulator, mirrored into public.raw_typed."""

    def __init__(self, emulator, conn, fields, partition_field="block_timestamp"):
        self.emulator = emulator
        self.table = f"typed_{os.getpid()}_{next(_tables)}"
        self.name = emulator.create_table(self.table, fields=fields, partition_field=partition_field)
        conn.execute("DROP TABLE IF EXISTS public.raw_typed")
        conn.execute(f"SET token_sync.source_table = '{self.name}'")
        conn.execute("SET token_sync.target_table = 'public.raw_typed'")

    def insert(self, rows):
        self.emulator.insert_rows(rows, table=self.table)


EVERY_TYPE = [
    field("block_timestamp", "TIMESTAMP", "REQUIRED"),
    field("s", "STRING"), field("b", "BYTES"), field("i", "INTEGER"), field("f", "FLOAT"),
    field("n", "NUMERIC"), field("ok", "BOOLEAN"), field("d", "DATE"), field("dt", "DATETIME"),
    field("t", "TIME"), field("j", "JSON"), field("iv", "INTERVAL"),
    field("topics", "STRING", "REPEATED"), field("amounts", "NUMERIC", "REPEATED"),
    field("st", "RECORD", fields=[field("x", "INTEGER"), field("y", "STRING", "REPEATED"),
                                  field("nested", "RECORD", fields=[field("ts", "TIMESTAMP")])]),
    field("events", "RECORD", "REPEATED", fields=[field("name", "STRING"), field("value", "NUMERIC")]),
]

FIRST_ROW = {
    "block_timestamp": f"{DAY} 00:00:00.000000 UTC", "s": "tab\there \"q\" \\ é\u0000!", "b": "AAH/",
    "i": -9223372036854775808, "f": "NaN", "n": "-99999999999999999999999999999.999999999",
    "ok": True, "d": "0001-01-01", "dt": "9999-12-31T23:59:59.999999", "t": "23:59:59.999999",
    "j": '{"b":{"c":[1,2.50]},"a":null}', "iv": "1-2 3 4:5:6.5",
    "topics": ["0xa", "with,comma \"and\" {braces}"], "amounts": ["1.5", "0"],
    "st": {"x": 7, "y": ["a"], "nested": {"ts": f"{DAY} 00:00:00.000001 UTC"}},
    "events": [{"name": "Transfer", "value": "10.25"}, {"name": None, "value": None}],
}
LAST_ROW = {"block_timestamp": f"{DAY} 23:59:59.999999 UTC", "f": "-Infinity", "b": "", "topics": [],
            "amounts": [], "events": []}
OUTSIDE = [{"block_timestamp": "2026-11-19 23:59:59.999999 UTC", "i": 1},
           {"block_timestamp": "2026-11-21 00:00:00 UTC", "i": 2}]


def test_every_type_loads_exactly_as_postgres_types(db, emulator):
    source = TypedSource(emulator, db, EVERY_TYPE)
    source.insert([FIRST_ROW, LAST_ROW] + OUTSIDE)
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (2,)
    types = dict(db.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                            "WHERE attrelid = 'raw_typed'::regclass AND attnum > 0").fetchall())
    assert types == {
        "block_timestamp": "timestamp with time zone", "s": "text", "b": "bytea", "i": "bigint",
        "f": "double precision", "n": "numeric", "ok": "boolean", "d": "date",
        "dt": "timestamp without time zone", "t": "time without time zone", "j": "jsonb", "iv": "interval",
        "topics": "text[]", "amounts": "numeric[]", "st": "jsonb", "events": "jsonb"}
    db.execute("SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; SET TimeZone = 'Asia/Tokyo'")
    first = db.execute("SELECT block_timestamp AT TIME ZONE 'UTC', s, b, i, f, n, ok, d, dt, t, j::text, iv::text, "
                       "topics, amounts, st::text, events::text FROM raw_typed ORDER BY block_timestamp").fetchall()
    import datetime as dt
    from decimal import Decimal
    assert first[0] == (
        dt.datetime(2026, 11, 20), "tab\there \"q\" \\ é!", b"\x00\x01\xff", -9223372036854775808,
        pytest.approx(float("nan"), nan_ok=True), Decimal("-99999999999999999999999999999.999999999"), True,
        dt.date(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.time(23, 59, 59, 999999),
        '{"a": null, "b": {"c": [1, 2.50]}}', "1 year 2 mons 3 days 04:05:06.5",
        ["0xa", "with,comma \"and\" {braces}"], [Decimal("1.5"), Decimal("0")],
        '{"x": 7, "y": ["a"], "nested": {"ts": "2026-11-20T00:00:00.000001Z"}}',
        '[{"name": "Transfer", "value": 10.25}, {"name": null, "value": null}]')
    assert first[1][:5] == (dt.datetime(2026, 11, 20, 23, 59, 59, 999999), None, b"", None, float("-inf"))
    assert first[1][12:] == ([], [], None, "[]")
    # The emulator pads NUMERIC to nine decimals; the value is loaded as BigQuery would send it.
    assert db.execute("SELECT n::text, amounts::text FROM raw_typed WHERE i IS NOT NULL").fetchone() == (
        "-99999999999999999999999999999.999999999", "{1.5,0}")
    assert db.execute("SELECT rows_nul_stripped FROM token_sync.runs").fetchone() == (1,)


FINGERPRINTED = [
    field("block_timestamp", "TIMESTAMP", "REQUIRED"),
    field("s", "STRING"), field("b", "BYTES"), field("i", "INTEGER"), field("f", "FLOAT"),
    field("n", "NUMERIC"), field("ok", "BOOLEAN"), field("d", "DATE"), field("dt", "DATETIME"),
    field("t", "TIME"), field("j", "JSON"), field("iv", "INTERVAL"),
    field("topics", "STRING", "REPEATED"), field("amounts", "NUMERIC", "REPEATED"),
    field("st", "RECORD", fields=[field("x", "INTEGER"), field("y", "STRING", "REPEATED"), field("f", "FLOAT"),
                                  field("n", "NUMERIC"), field("b", "BYTES"), field("ts", "TIMESTAMP"),
                                  field("d", "DATE"), field("ok", "BOOLEAN"), field("j", "JSON"),
                                  field("iv", "INTERVAL"),
                                  field("nested", "RECORD", fields=[field("s", "STRING")])]),
    field("events", "RECORD", "REPEATED", fields=[field("name", "STRING"), field("value", "NUMERIC")]),
]
# BigQuery sorts a JSON object's keys; the emulator keeps them as given, so they are given sorted.
JSON_VALUE = '{"a":null,"b":{"c":[1,2.50,"x\\u0000\\n\\u0001\\\\u0000 é\\"",{"d":false}]},"t":true}'
# One change per column (and per kind of STRUCT field) that a correct fingerprint must notice.
TAMPERING = {
    "block_timestamp": "block_timestamp = block_timestamp + interval '1 microsecond'",
    "s": "s = s || 'x'", "b": "b = b || '\\x00'::bytea", "i": "i = i + 1",
    "f": "f = f * (1 + 2.220446049250313e-16)", "n": "n = n + 0.000000001", "ok": "ok = NOT ok",
    "d": "d = d + 1", "dt": "dt = dt + interval '1 microsecond'", "t": "t = t + interval '1 microsecond'",
    "j": "j = jsonb_set(j, '{b,c,0}', '2')", "j (a key)": "j = j || '{\"z\": 1}'",
    "j (a string)": "j = jsonb_set(j, '{b,c,2}', '\"x\\n\\u0001\"')",
    "iv": "iv = iv + interval '1 microsecond'", "iv (a day as 24 hours)": "iv = iv - interval '1 day' + interval '24 hours'",
    "iv (a month as 30 days)": "iv = iv - interval '1 month' + interval '30 days'",
    "topics": "topics = topics || '{x}'::text[]", "amounts": "amounts = array_remove(amounts, 0::numeric)",
    "st.x": "st = jsonb_set(st, '{x}', to_jsonb((st->>'x')::bigint + 1))",
    "st.y": "st = jsonb_set(st, '{y}', (st->'y') || '[\"z\"]')",
    "st.f": "st = jsonb_set(st, '{f}', '0.30000000000000004')",
    "st.n": "st = jsonb_set(st, '{n}', '1.25')",
    "st.b": "st = jsonb_set(st, '{b}', '\"AAE=\"')",
    "st.ts": "st = jsonb_set(st, '{ts}', '\"2026-11-20T10:00:00.000002Z\"')",
    "st.d": "st = jsonb_set(st, '{d}', '\"2026-11-21\"')",
    "st.ok": "st = jsonb_set(st, '{ok}', 'false')",
    "st.j": "st = jsonb_set(st, '{j,k}', '\"w\"')",
    "st.j (NULL)": "st = jsonb_set(st, '{j}', 'null')",
    "st.iv": "st = jsonb_set(st, '{iv}', '\"1-2 3 28:5:6.6\"')",
    "st.nested": "st = jsonb_set(st, '{nested,s}', '\"t\"')",
    "st (NULL)": "st = NULL",
    "events": "events = events || '[{\"name\": null, \"value\": null}]'",
    "events.value": "events = jsonb_set(events, '{0,value}', '10.26')",
}


def test_the_fingerprint_matches_every_type_and_notices_any_change(db, emulator):
    source = TypedSource(emulator, db, FINGERPRINTED)
    source.insert([
        {"block_timestamp": f"{DAY} 10:00:00.123456 UTC", "s": "a\u0000b", "b": "AAH/", "i": -42, "f": 0.1,
         "n": "1.5", "ok": True, "d": "2026-11-20", "dt": "2026-11-20T10:00:00.000001", "t": "00:00:00.000001",
         "j": JSON_VALUE, "iv": "1-2 3 28:5:6.5",
         "topics": ["0xddf2", ""], "amounts": ["0", "12345678901234567890.123456789"],
         "st": {"x": 7, "y": ["a", ""], "f": 0.1, "n": "1.5", "b": "AAH/", "ts": f"{DAY} 10:00:00.000001 UTC",
                "d": "2026-11-20", "ok": True, "j": '{"k":"v"}', "iv": "0-0 0 0:0:0.000001",
                "nested": {"s": "s\u0000"}},
         "events": [{"name": "Transfer", "value": "10.25"}, {"name": None, "value": "0"}]},
        {"block_timestamp": f"{DAY} 11:00:00 UTC", "s": "", "b": "", "i": 0, "f": 1e300, "n": "0",
         "ok": False, "d": "1970-01-01", "dt": "1970-01-01T00:00:00", "t": "23:59:59.999999",
         "j": "null", "iv": "-1-2 0 0:0:0", "topics": [], "amounts": ["-7"]},
        {"block_timestamp": f"{DAY} 12:00:00 UTC", "f": -2.5e-308, "st": {"x": None, "y": [], "j": "null"},
         "events": [], "j": "[]", "iv": "0-0 0 0:0:0"},
        {"block_timestamp": f"{DAY} 13:00:00 UTC", "f": "NaN", "i": 1},
        {"block_timestamp": f"{DAY} 14:00:00 UTC", "f": "-Infinity", "i": 2},
    ])
    db.execute(f"SELECT token_sync_day('{DAY}')")
    verified = db.execute(f"SELECT matches, bigquery_rows, bigquery_fingerprint, local_fingerprint "
                          f"FROM token_verify_day('{DAY}')").fetchone()
    assert verified[0], verified
    assert verified[1] == 5
    for column, change in TAMPERING.items():
        with db.transaction(force_rollback=True):
            updated = db.execute(f"UPDATE raw_typed SET {change} WHERE block_timestamp = "
                                 f"'{DAY} 10:00:00.123456+00'").rowcount
            assert updated == 1
            assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (False,), column
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (True,)
    seen = notices(db)
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (5,)
    assert seen == [("NOTICE", f"token_sync: {DAY} is unchanged in BigQuery (5 rows, same fingerprint); it was not rewritten")]


@pytest.mark.parametrize("kind, values, outside", [
    ("DATE", [DAY, DAY], ["2026-11-19", "2026-11-21"]),
    ("DATETIME", [f"{DAY}T00:00:00", f"{DAY}T23:59:59.999999"], ["2026-11-19T23:59:59.999999", "2026-11-21T00:00:00"]),
])
def test_a_table_partitioned_on_a_date_or_datetime_column(db, emulator, kind, values, outside):
    source = TypedSource(emulator, db, [field("day", kind, "REQUIRED"), field("n", "INTEGER")],
                         partition_field="day")
    source.insert([{"day": v, "n": i} for i, v in enumerate(values + outside)])
    db.execute("SET TimeZone = 'America/Los_Angeles'")
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (2,)
    assert db.execute("SELECT array_agg(n ORDER BY n) FROM raw_typed").fetchone() == ([0, 1],)
    verified = db.execute(f"SELECT matches, bigquery_min_timestamp = local_min_timestamp, "
                          f"local_min_timestamp = '{DAY} 00:00+00' FROM token_verify_day('{DAY}')").fetchone()
    assert verified == (True, True, True)
    # A re-sync replaces the day and nothing else.
    db.execute("INSERT INTO raw_typed VALUES (%s, 99)", (outside[0].replace("T", " "),))
    db.execute("SET token_sync.skip_unchanged = off")
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (2,)
    assert db.execute("SELECT array_agg(n ORDER BY n) FROM raw_typed").fetchone() == ([0, 1, 99],)
