"""Target tables COPY would not fill where queries read: refused before any row is written,
with the table's kind named; and the rows a sync reports are the rows the day holds,
read back through a query, so a write that went astray is never reported as loaded.
Citus and TimescaleDB targets are in test_engines.py."""

import datetime as dt

import psycopg
import pytest

from helpers import UTC, notices, to_fake, token

DAY = dt.datetime(2026, 11, 20, tzinfo=UTC)
BEFORE = DAY - dt.timedelta(days=1)


def rows_of(moment, count):
    return [to_fake(token(n, moment + dt.timedelta(minutes=n))) for n in range(1, count + 1)]


@pytest.fixture
def loaded(db, fake_google):
    """raw_tokens made by a first sync, holding 2 rows of the day before."""
    fake_google.rows = rows_of(BEFORE, 2) + rows_of(DAY, 3)
    db.execute("SELECT token_sync_day('2026-11-19')")
    yield db
    for statement in ("DROP TABLE IF EXISTS public.raw_tokens, public.raw_parted, public.raw_elsewhere CASCADE",
                      "DROP SERVER IF EXISTS token_sync_loopback CASCADE",
                      "DROP ACCESS METHOD IF EXISTS heap_twin CASCADE",
                      "DROP FUNCTION IF EXISTS public.token_sync_test_trigger() CASCADE"):
        db.execute(statement)


def day_counts(db, table="public.raw_tokens"):
    return db.execute(f"SELECT count(*) FILTER (WHERE block_timestamp < '2026-11-20'), "
                      f"count(*) FILTER (WHERE block_timestamp >= '2026-11-20') FROM {table}").fetchone()


def refused(db, sql, kind):
    """Runs `sql`, which must fail as a refused target of `kind`; returns the error."""
    with pytest.raises(psycopg.errors.FeatureNotSupported) as error:
        db.execute(sql)
    diag = error.value.diag
    assert diag.message_primary.endswith(f" is {kind}, which token_sync cannot load"), diag.message_primary
    return diag


def last_run(db):
    return db.execute("SELECT day::text, status, rows_loaded, error FROM token_sync.runs "
                      "ORDER BY run_id DESC LIMIT 1").fetchone()


def test_a_table_of_another_access_method_is_refused_before_any_row_is_written(loaded):
    db = loaded
    db.execute("CREATE ACCESS METHOD heap_twin TYPE TABLE HANDLER heap_tableam_handler")
    db.execute("ALTER TABLE raw_tokens SET ACCESS METHOD heap_twin")
    seen = notices(db)
    diag = refused(db, "SELECT * FROM token_sync_day('2026-11-20')", "a table of the access method heap_twin")
    assert diag.message_primary.startswith("the target table public.raw_tokens ")
    assert "ALTER TABLE ... SET ACCESS METHOD heap" in diag.message_hint
    assert seen == []
    assert day_counts(db) == (2, 0)
    assert last_run(db) == ("2026-11-20", "failed", None, diag.message_primary)
    # A backfill reports the day failed and goes on; registering the target is refused too.
    (status, error), = db.execute("SELECT status, error FROM token_backfill('2026-11-20', '2026-11-20')").fetchall()
    assert (status, error) == ("failed", diag.message_primary)
    assert [s for s, _ in seen] == ["WARNING"]
    refused(db, "SELECT * FROM token_sync.add_table('bigquery-public-data.crypto_ethereum.tokens', 'public.raw_tokens')",
            "a table of the access method heap_twin")
    assert db.execute("SELECT count(*) FROM token_sync.tables").fetchone() == (0,)
    # Reading it is another matter: token_verify_day compares it as it is.
    assert db.execute("SELECT matches, bigquery_rows, local_rows FROM token_verify_day('2026-11-20')"
                      ).fetchone() == (False, 3, 0)
    # Back on heap, the day loads.
    db.execute("ALTER TABLE raw_tokens SET ACCESS METHOD heap")
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)


def test_a_natively_partitioned_target_loads_and_one_with_an_odd_partition_is_refused(loaded):
    db = loaded
    db.execute("CREATE TABLE public.raw_parted (LIKE public.raw_tokens INCLUDING ALL) PARTITION BY RANGE (block_timestamp)")
    db.execute("CREATE TABLE public.raw_parted_19 PARTITION OF public.raw_parted "
               "FOR VALUES FROM ('2026-11-19') TO ('2026-11-20')")
    db.execute("CREATE TABLE public.raw_parted_20 PARTITION OF public.raw_parted "
               "FOR VALUES FROM ('2026-11-20') TO ('2026-11-21')")
    db.execute("SET token_sync.target_table = 'public.raw_parted'")
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)
    assert db.execute("SELECT count(*) FROM ONLY public.raw_parted_20").fetchone() == (3,)
    assert db.execute("SELECT matches FROM token_verify_day('2026-11-20')").fetchone() == (True,)

    db.execute("CREATE ACCESS METHOD heap_twin TYPE TABLE HANDLER heap_tableam_handler")
    db.execute("CREATE TABLE public.raw_parted_21 PARTITION OF public.raw_parted "
               "FOR VALUES FROM ('2026-11-21') TO ('2026-11-22') USING heap_twin")
    diag = refused(db, "SELECT * FROM token_sync_day('2026-11-19')",
                   "a table whose partition public.raw_parted_21 has the access method heap_twin")
    assert diag.message_primary.startswith("the target table public.raw_parted ")
    assert day_counts(db, "public.raw_parted") == (0, 3)
    db.execute("DROP TABLE public.raw_parted_21")

    # Inheritance children are reached by the day's DELETE and count as partitions are.
    db.execute("CREATE TABLE public.raw_elsewhere () INHERITS (public.raw_tokens) USING heap_twin")
    db.execute("SET token_sync.target_table = 'public.raw_tokens'")
    refused(db, "SELECT * FROM token_sync_day('2026-11-20')",
            "a table whose child table public.raw_elsewhere has the access method heap_twin")
    db.execute("DROP TABLE public.raw_elsewhere")
    db.execute("SET token_sync.target_table = 'public.raw_parted'")

    db.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
    db.execute("CREATE SERVER token_sync_loopback FOREIGN DATA WRAPPER postgres_fdw")
    db.execute("CREATE FOREIGN TABLE public.raw_parted_21 PARTITION OF public.raw_parted "
               "FOR VALUES FROM ('2026-11-21') TO ('2026-11-22') SERVER token_sync_loopback")
    refused(db, "SELECT * FROM token_sync_day('2026-11-19')",
            "a table with the foreign partition public.raw_parted_21")
    assert db.execute("SELECT count(*) FROM public.raw_parted_19").fetchone() == (0,)


def test_a_day_without_its_partition_fails_naming_the_partition_to_make(loaded):
    db = loaded
    db.execute("CREATE TABLE public.raw_parted (LIKE public.raw_tokens INCLUDING ALL) PARTITION BY RANGE (block_timestamp)")
    db.execute("CREATE TABLE public.raw_parted_19 PARTITION OF public.raw_parted "
               "FOR VALUES FROM ('2026-11-19') TO ('2026-11-20')")
    db.execute("SET token_sync.target_table = 'public.raw_parted'")
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-19')").fetchone() == (2,)
    with pytest.raises(psycopg.errors.CheckViolation) as missing:
        db.execute("SELECT token_sync_day('2026-11-20')")
    diag = missing.value.diag
    assert diag.message_primary == "the partitioned target table public.raw_parted has no partition for rows of 2026-11-20"
    assert diag.message_hint.startswith("Make the day's partition, e.g. CREATE TABLE ... PARTITION OF public.raw_parted "
                                        "FOR VALUES FROM ('2026-11-20 00:00:00+00') TO ('2026-11-21 00:00:00+00')")
    assert "SELECT partman.create_partition_time('public.raw_parted', ARRAY['2026-11-20 00:00:00+00'::timestamptz])" \
        in diag.message_hint
    assert diag.message_detail.startswith('no partition of relation "raw_parted" found for row (Partition key')
    assert last_run(db) == ("2026-11-20", "failed", None, f"{diag.message_primary} ({diag.message_detail})")
    assert day_counts(db, "public.raw_parted") == (2, 0)
    db.execute("CREATE TABLE public.raw_parted_20 PARTITION OF public.raw_parted "
               "FOR VALUES FROM ('2026-11-20 00:00:00+00') TO ('2026-11-21 00:00:00+00')")
    assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)


def test_a_table_with_a_rule_on_insert_is_refused(loaded):
    db = loaded
    db.execute("CREATE TABLE public.raw_elsewhere (LIKE public.raw_tokens)")
    db.execute('CREATE RULE "to elsewhere" AS ON INSERT TO public.raw_tokens '
               "DO INSTEAD INSERT INTO public.raw_elsewhere VALUES (NEW.*)")
    diag = refused(db, "SELECT * FROM token_sync_day('2026-11-20')",
                   'a table with a rule on INSERT ("to elsewhere")')
    assert "DROP RULE" in diag.message_hint
    assert day_counts(db) == (2, 0)
    assert db.execute("SELECT count(*) FROM public.raw_elsewhere").fetchone() == (0,)
    assert last_run(db)[1] == "failed"


@pytest.mark.parametrize("body, stored", [
    ("NEW.block_timestamp := NEW.block_timestamp + interval '1 day'; RETURN NEW;", 3),  # moves the rows
    ("RETURN NULL;", 0),                                                                 # skips them
])
def test_rows_that_do_not_end_up_in_the_day_fail_it(loaded, body, stored):
    db = loaded
    db.execute(f"CREATE FUNCTION public.token_sync_test_trigger() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN {body} END$$")
    db.execute("CREATE TRIGGER astray BEFORE INSERT ON public.raw_tokens "
               "FOR EACH ROW EXECUTE FUNCTION public.token_sync_test_trigger()")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as error:
        db.execute("SELECT * FROM token_sync_day('2026-11-20')")
    assert error.value.diag.message_primary == (
        f"3 rows of 2026-11-20 arrived and COPY stored {stored}, "
        "but the target table public.raw_tokens holds 0 rows of the day")
    assert "a trigger that skips or moves rows" in error.value.diag.message_hint
    assert error.value.diag.message_detail == "job fake_job_2"
    assert db.execute("SELECT count(*) FROM public.raw_tokens").fetchone() == (2,)
    assert last_run(db) == ("2026-11-20", "failed", None, f"{error.value.diag.message_primary} (job fake_job_2)")


@pytest.mark.parametrize("on", ["public.raw_tokens", "public.raw_parted_20"])
def test_a_trigger_that_deletes_a_stored_row_fails_the_day_on_the_table_or_a_partition(loaded, on):
    """COPY stores every row and a query still finds rows of the day, so only the count
    read back (which a trigger anywhere below the target asks for) sees one go."""
    db = loaded
    target = "public.raw_tokens"
    if on != target:
        target = "public.raw_parted"
        db.execute("CREATE TABLE public.raw_parted (LIKE public.raw_tokens INCLUDING ALL) PARTITION BY RANGE (block_timestamp)")
        db.execute("CREATE TABLE public.raw_parted_20 PARTITION OF public.raw_parted "
                   "FOR VALUES FROM ('2026-11-20 00:00+00') TO ('2026-11-21 00:00+00')")
        db.execute(f"SET token_sync.target_table = '{target}'")
    first = rows_of(DAY, 1)[0]["address"]
    db.execute("CREATE FUNCTION public.token_sync_test_trigger() RETURNS trigger LANGUAGE plpgsql AS "
               f"$$BEGIN DELETE FROM {on} WHERE address = '{first}'; RETURN NULL; END$$")
    db.execute(f"CREATE TRIGGER astray AFTER INSERT ON {on} "
               "FOR EACH ROW EXECUTE FUNCTION public.token_sync_test_trigger()")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as error:
        db.execute("SELECT * FROM token_sync_day('2026-11-20')")
    assert error.value.diag.message_primary == (
        "3 rows of 2026-11-20 arrived and COPY stored 3, "
        f"but the target table {target} holds 2 rows of the day")
    assert day_counts(db, target) == ((2, 0) if on == target else (0, 0))
    db.execute("DROP TRIGGER astray ON " + on)
    db.execute("SELECT * FROM token_sync_day('2026-11-20')")
    assert day_counts(db, target)[1] == 3
    assert last_run(db)[1:3] == ("succeeded", 3)


def test_a_rule_that_keeps_the_old_day_from_its_delete_fails_the_re_sync(loaded):
    db = loaded
    db.execute("SELECT token_sync_day('2026-11-20')")
    db.execute('CREATE RULE "keep" AS ON DELETE TO public.raw_tokens DO INSTEAD NOTHING')
    db.execute("SET token_sync.skip_unchanged = off")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as error:
        db.execute("SELECT * FROM token_sync_day('2026-11-20')")
    assert error.value.diag.message_primary == (
        "3 rows of 2026-11-20 arrived and COPY stored 3, "
        "but the target table public.raw_tokens holds 6 rows of the day")
    assert day_counts(db) == (2, 3)
    assert last_run(db)[1:3] == ("failed", None)
