"""Targets that Citus, TimescaleDB and pg_partman own. Citus and TimescaleDB route rows to
where queries read them (the shards, the chunks) for statements through the planner, not for
the backend's own COPY, so token_sync stages the day in a temporary table and inserts from
it; a pg_partman table is natively partitioned, which COPY routes. Real engines: a Citus
coordinator with two workers (three servers) and a TimescaleDB-preloaded server, built from
their release sources by scripts/build-engines.sh, and a server with Debian's pg_partman,
each with the emulator as source."""

import datetime as dt

import psycopg
import pytest

from cluster import Cluster, pg_config, server_path
from conftest import Source, set_database_defaults
from helpers import UTC, notices, token

DAY = dt.datetime(2026, 11, 20, tzinfo=UTC)
SAME_FINGERPRINT = "token_sync: 2026-11-20 is unchanged in BigQuery (3 rows, same fingerprint); it was not rewritten"
PRELOAD = "citus,pg_cron,token_sync"
# Citus sends the day's rows on to a distributed table's shards with COPY, and raises a
# worker's error in it with the worker's message but not its SQLSTATE (multi_copy.c,
# ReportCopyError).
CITUS_COPY_ERROR = "XX000"


# Where tests/run.sh installs each: Citus and TimescaleDB are built from their release
# sources (scripts/build-engines.sh), pg_partman is Debian's package (scripts/install-deps.sh,
# scripts/pg-root.sh).
INSTALLED_FOR = {"citus": ("15", "17"), "timescaledb": ("15", "17"), "pg_partman": ("15", "17", "18")}


def require_engine(name):
    """The engine's extension must be installed where tests/run.sh installs it; elsewhere its
    tests are skipped."""
    if server_path(f"{pg_config('--sharedir')}/extension/{name}.control").exists():
        return
    if pg_config("--version").split()[1].split(".")[0] in INSTALLED_FOR[name]:
        pytest.fail(f"{name} is not installed: run bash tests/run.sh, or scripts/build-engines.sh MAJOR "
                    "for Citus and TimescaleDB")
    pytest.skip(f"{name} is installed for PostgreSQL {', '.join(INSTALLED_FOR[name])} only")


@pytest.fixture(scope="module")
def citus(emulator):
    """A coordinator, which holds no shards, and two workers, each with token_sync preloaded."""
    require_engine("citus")
    servers = []
    try:
        workers = [Cluster().start(preload=PRELOAD, extensions=["citus"]) for _ in range(2)]
        servers += workers
        coordinator = Cluster().start(preload=PRELOAD, extensions=["citus"])
        servers.append(coordinator)
        set_database_defaults(coordinator, emulator)
        with coordinator.connect() as conn:
            conn.execute("SELECT citus_set_coordinator_host('localhost', %s)", (coordinator.port,))
            for worker in workers:
                conn.execute("SELECT citus_add_node('localhost', %s)", (worker.port,))
        coordinator.workers = workers
        yield coordinator
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def timescaledb(emulator):
    require_engine("timescaledb")
    cluster = Cluster().start("timescaledb.telemetry_level=off", preload="timescaledb,pg_cron,token_sync",
                              extensions=["timescaledb"])
    set_database_defaults(cluster, emulator)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def partman(emulator):
    require_engine("pg_partman")
    cluster = Cluster().start()
    with cluster.connect() as conn:
        conn.execute("CREATE SCHEMA partman")
        conn.execute("CREATE EXTENSION pg_partman SCHEMA partman")
    set_database_defaults(cluster, emulator)
    yield cluster
    cluster.stop()


def target_made_then(cluster, emulator, make):
    """A connection and a source with 3 rows on DAY, whose target (public.raw_tokens) a first
    sync of the empty day before made, then `make` turned into the engine's table."""
    conn = cluster.connect()
    conn.execute("DROP TABLE IF EXISTS public.raw_tokens")
    conn.execute("TRUNCATE token_sync.runs CASCADE")
    source = Source(emulator, conn)
    conn.execute("SELECT token_sync_day('2026-11-19')")
    conn.execute(f"SELECT {make}")
    source.insert([token(n, DAY + dt.timedelta(minutes=n)) for n in (1, 2, 3)])
    return conn, source


def day_rows(conn):
    return conn.execute("SELECT block_number, symbol FROM public.raw_tokens "
                        "WHERE block_timestamp >= '2026-11-20' AND block_timestamp < '2026-11-21' "
                        "ORDER BY block_number").fetchall()


def assert_a_day_goes_through_the_engine(conn, source, stored_where, check_violation="23514"):
    """First load, an unchanged re-sync, a changed one, a failure halfway through the day's
    rows (raised with the engine's `check_violation` SQLSTATE), each checked through a query
    and in the engine's own storage (`stored_where` gives the rows the engine holds, however
    queries are routed)."""
    seen = notices(conn)
    assert conn.execute("SELECT rows_loaded, rows_reported FROM token_sync_day('2026-11-20')").fetchone() == (3, 3)
    assert day_rows(conn) == [(1, "T1"), (2, "T2"), (3, "T3")]
    assert stored_where(conn) == 3
    assert conn.execute("SELECT matches, bigquery_rows, local_rows FROM token_verify_day('2026-11-20')"
                        ).fetchone() == (True, 3, 3)
    # No staging table outlives the day.
    assert conn.execute("SELECT to_regclass('pg_temp.token_sync_staging')").fetchone() == (None,)

    seen.clear()
    conn.execute("SELECT token_sync_day('2026-11-20')")
    assert seen == [("NOTICE", SAME_FINGERPRINT)]
    assert conn.execute("SELECT status FROM token_sync.runs ORDER BY run_id DESC LIMIT 1").fetchone() == ("unchanged",)

    source.delete_where("block_number = 2")
    source.insert([token(4, DAY + dt.timedelta(hours=5))])
    assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)
    assert day_rows(conn) == [(1, "T1"), (3, "T3"), (4, "T4")]
    assert stored_where(conn) == 3

    # The source gains a row the target's constraint refuses: the day's other rows are
    # already on their way when it fails, and the day stays as it was.
    conn.execute("ALTER TABLE public.raw_tokens ADD CONSTRAINT no_bad_symbol CHECK (symbol <> 'BAD')")
    source.insert([token(5, DAY + dt.timedelta(hours=6), symbol="BAD")])
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("SELECT token_sync_day('2026-11-20')")
    assert refused.value.sqlstate == check_violation
    assert "violates check constraint \"no_bad_symbol" in refused.value.diag.message_primary
    assert day_rows(conn) == [(1, "T1"), (3, "T3"), (4, "T4")]
    assert stored_where(conn) == 3
    (status, error), = conn.execute(
        "SELECT status, error FROM token_sync.runs ORDER BY run_id DESC LIMIT 1").fetchall()
    assert status == "failed" and "no_bad_symbol" in error
    conn.execute("ALTER TABLE public.raw_tokens DROP CONSTRAINT no_bad_symbol")

    # A backfill: each day in its own subtransaction, the next day's too.
    source.insert([token(6, DAY + dt.timedelta(days=1))])
    assert conn.execute("SELECT day::text, status, rows_loaded FROM token_backfill('2026-11-20', '2026-11-21')"
                        ).fetchall() == [("2026-11-20", "succeeded", 4), ("2026-11-21", "succeeded", 1)]
    assert stored_where(conn) == 5
    assert conn.execute("SELECT count(*) FROM public.raw_tokens").fetchone() == (5,)
    for day in ("2026-11-20", "2026-11-21"):
        assert conn.execute(f"SELECT matches FROM token_verify_day('{day}')").fetchone() == (True,)

    # The source gains a column: the engine's table gains it too, and the day its values.
    source.add_column("fee", "INT64")
    source.insert([token(7, DAY + dt.timedelta(days=1, hours=1), fee=42)])
    seen.clear()
    assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-21')").fetchone() == (2,)
    assert seen == [("NOTICE", f"token_sync: the source {source.name} gained columns; "
                               "added to public.raw_tokens: fee (bigint)")]
    assert conn.execute("SELECT block_number, fee FROM public.raw_tokens WHERE block_timestamp >= '2026-11-21' "
                        "ORDER BY block_number").fetchall() == [(6, None), (7, 42)]
    assert stored_where(conn) == 6
    assert conn.execute("SELECT matches FROM token_verify_day('2026-11-21')").fetchone() == (True,)


def rows_in_shards(conn):
    """The rows the shards hold, counted on the workers, and none in the coordinator's shell."""
    assert conn.execute("SELECT pg_relation_size('public.raw_tokens')").fetchone() == (0,)
    counts = conn.execute("SELECT result FROM run_command_on_shards('public.raw_tokens', "
                          "'SELECT count(*) FROM %s')").fetchall()
    return sum(int(count) for count, in counts)


def test_a_citus_distributed_table_gets_the_day_on_its_shards(citus, emulator):
    conn, source = target_made_then(
        citus, emulator, "create_distributed_table('public.raw_tokens', 'address', shard_count := 4)")
    with conn:
        workers = conn.execute("SELECT count(DISTINCT nodeport) FROM citus_shards "
                               "WHERE table_name = 'public.raw_tokens'::regclass").fetchone()
        assert workers == (2,)
        assert_a_day_goes_through_the_engine(conn, source, rows_in_shards, CITUS_COPY_ERROR)
        # Each worker holds some of the rows, read there and not through the coordinator.
        placements = conn.execute("SELECT nodeport, shard_name FROM citus_shards "
                                  "WHERE table_name = 'public.raw_tokens'::regclass").fetchall()
        on_workers = []
        for worker in citus.workers:
            with worker.connect() as on_worker:
                on_workers.append(sum(on_worker.execute(f"SELECT count(*) FROM public.{shard}").fetchone()[0]
                                      for port, shard in placements if port == worker.port))
        assert sum(on_workers) == 6 and all(on_workers)


@pytest.mark.parametrize("make", [
    "create_reference_table('public.raw_tokens')",
    "citus_add_local_table_to_metadata('public.raw_tokens')",
])
def test_a_citus_reference_or_local_table_gets_the_day(citus, emulator, make):
    conn, source = target_made_then(citus, emulator, make)
    with conn:
        assert_a_day_goes_through_the_engine(conn, source, rows_in_shards)


def test_a_timescaledb_hypertable_gets_the_day_in_its_chunks(timescaledb, emulator):
    conn, source = target_made_then(
        timescaledb, emulator, "create_hypertable('public.raw_tokens', by_range('block_timestamp', INTERVAL '1 day'))")

    def rows_in_chunks(conn):
        assert conn.execute("SELECT count(*) FROM ONLY public.raw_tokens").fetchone() == (0,)
        chunks = conn.execute("SELECT show_chunks('public.raw_tokens')").fetchall()
        return sum(conn.execute(f"SELECT count(*) FROM {chunk}").fetchone()[0] for chunk, in chunks)

    with conn:
        assert_a_day_goes_through_the_engine(conn, source, rows_in_chunks)
        assert conn.execute("SELECT count(*) FROM show_chunks('public.raw_tokens', "
                            "newer_than => '2026-11-20'::timestamptz)").fetchone() == (2,)


def test_a_day_in_a_compressed_chunk_is_re_synced(timescaledb, emulator):
    conn, source = target_made_then(
        timescaledb, emulator, "create_hypertable('public.raw_tokens', by_range('block_timestamp', INTERVAL '1 day'))")
    with conn:
        assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)
        conn.execute("ALTER TABLE public.raw_tokens SET (timescaledb.compress, "
                     "timescaledb.compress_orderby = 'block_timestamp')")
        conn.execute("SELECT compress_chunk(c) FROM show_chunks('public.raw_tokens') AS c")
        day_chunk = ("SELECT is_compressed FROM timescaledb_information.chunks WHERE hypertable_name = 'raw_tokens' "
                     "AND range_start = '2026-11-20'")
        assert conn.execute(day_chunk).fetchone() == (True,)
        seen = notices(conn)
        conn.execute("SELECT token_sync_day('2026-11-20')")
        assert seen == [("NOTICE", SAME_FINGERPRINT)]

        source.delete_where("block_number = 2")
        source.insert([token(4, DAY + dt.timedelta(hours=5))])
        assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)
        assert day_rows(conn) == [(1, "T1"), (3, "T3"), (4, "T4")]
        assert conn.execute("SELECT matches FROM token_verify_day('2026-11-20')").fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM ONLY public.raw_tokens").fetchone() == (0,)


def test_a_hypertable_of_another_role_is_loaded_as_its_owner(timescaledb, emulator):
    """The caller makes the staging table; the target's owner, as whom token_sync writes,
    may read it and nothing more."""
    conn, source = target_made_then(
        timescaledb, emulator, "create_hypertable('public.raw_tokens', by_range('block_timestamp', INTERVAL '1 day'))")
    with conn:
        conn.execute("DROP ROLE IF EXISTS chain_owner")
        conn.execute("CREATE ROLE chain_owner")
        conn.execute("ALTER TABLE public.raw_tokens OWNER TO chain_owner")
        # The owner's trigger sees who writes.
        conn.execute("CREATE TABLE public.writers (who text)")
        conn.execute("GRANT INSERT ON public.writers TO chain_owner")
        conn.execute("CREATE FUNCTION public.note_writer() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$BEGIN INSERT INTO public.writers VALUES (current_user); RETURN NEW; END$$")
        conn.execute("CREATE TRIGGER note_writer BEFORE INSERT ON public.raw_tokens "
                     "FOR EACH ROW EXECUTE FUNCTION public.note_writer()")
        try:
            assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)
            assert conn.execute("SELECT who, count(*) FROM public.writers GROUP BY who").fetchall() == [
                ("chain_owner", 3)]
            assert conn.execute("SELECT count(*) FROM public.raw_tokens").fetchone() == (3,)
        finally:
            conn.execute("DROP TABLE public.raw_tokens, public.writers")
            conn.execute("DROP FUNCTION public.note_writer()")
            conn.execute("DROP ROLE chain_owner")


def test_a_plain_table_beside_the_engines_still_loads_directly(citus, timescaledb, emulator):
    for cluster in (citus, timescaledb):
        conn, _ = target_made_then(cluster, emulator, "1")
        with conn:
            assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)
            assert conn.execute("SELECT matches FROM token_verify_day('2026-11-20')").fetchone() == (True,)
            assert conn.execute("SELECT pg_relation_size('public.raw_tokens') > 0").fetchone() == (True,)


def test_a_citus_table_whose_owner_cannot_log_in_is_refused_with_what_to_do(citus, emulator):
    """token_sync writes as the table's owner, and Citus connects to the workers as that role."""
    conn, _ = target_made_then(citus, emulator, "create_distributed_table('public.raw_tokens', 'address')")
    with conn:
        conn.execute("DROP ROLE IF EXISTS chain_group")
        conn.execute("CREATE ROLE chain_group NOLOGIN")
        conn.execute("ALTER TABLE public.raw_tokens OWNER TO chain_group")
        try:
            for call in ("SELECT token_sync_day('2026-11-20')", "SELECT * FROM token_verify_day('2026-11-20')"):
                with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as refused:
                    conn.execute(call)
                assert refused.value.diag.message_primary == (
                    "the owner of public.raw_tokens, chain_group, cannot log in, and token_sync reads and writes "
                    "the table as its owner, as whom Citus connects to the workers")
                assert refused.value.diag.message_hint.startswith("ALTER ROLE chain_group LOGIN")
            conn.execute("ALTER ROLE chain_group LOGIN")  # trust authentication on these servers
            assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)
        finally:
            conn.execute("DROP TABLE public.raw_tokens")
            conn.execute("DROP ROLE chain_group")


def test_a_distributed_columnar_table_is_refused_like_any_columnar_table(citus, emulator):
    conn, _ = target_made_then(citus, emulator, "1")
    with conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS citus_columnar")
        conn.execute("DROP TABLE IF EXISTS public.raw_columnar")
        conn.execute("CREATE TABLE public.raw_columnar (LIKE public.raw_tokens) USING columnar")
        conn.execute("SELECT create_distributed_table('public.raw_columnar', 'address')")
        conn.execute("SET token_sync.target_table = 'public.raw_columnar'")
        try:
            with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
                conn.execute("SELECT token_sync_day('2026-11-20')")
            assert refused.value.diag.message_primary == (
                "the target table public.raw_columnar is a table of the access method columnar, "
                "which token_sync cannot load")
        finally:
            conn.execute("DROP TABLE public.raw_columnar")


def test_staging_needs_temporary_tables_only_when_a_day_is_written(timescaledb, emulator):
    conn, source = target_made_then(
        timescaledb, emulator, "create_hypertable('public.raw_tokens', by_range('block_timestamp', INTERVAL '1 day'))")
    with conn:
        conn.execute("SELECT token_sync_day('2026-11-20')")
        conn.execute("DROP ROLE IF EXISTS chain_runner")
        conn.execute("CREATE ROLE chain_runner LOGIN")
        conn.execute(f"ALTER ROLE chain_runner SET token_sync.source_table = '{source.name}'")
        conn.execute("GRANT EXECUTE ON FUNCTION token_sync_day(date) TO chain_runner")
        conn.execute("GRANT SELECT, INSERT, DELETE ON public.raw_tokens TO chain_runner")
        conn.execute("REVOKE TEMPORARY ON DATABASE token_sync_test FROM PUBLIC")
        try:
            with timescaledb.connect(user="chain_runner") as runner:
                seen = notices(runner)
                runner.execute("SELECT token_sync_day('2026-11-20')")  # unchanged: nothing staged
                assert seen == [("NOTICE", SAME_FINGERPRINT)]
                source.insert([token(4, DAY + dt.timedelta(hours=5))])
                with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                    runner.execute("SELECT token_sync_day('2026-11-20')")
                assert refused.value.diag.message_primary == (
                    "permission denied to create temporary tables, in which token_sync stages the day of "
                    "public.raw_tokens")
                conn.execute("GRANT TEMPORARY ON DATABASE token_sync_test TO chain_runner")
                assert runner.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (4,)
                # A temporary table of the session's own under the staging table's name.
                runner.execute("CREATE TEMPORARY TABLE token_sync_staging (note text)")
                source.insert([token(5, DAY + dt.timedelta(hours=6))])
                with pytest.raises(psycopg.errors.DuplicateTable) as taken:
                    runner.execute("SELECT token_sync_day('2026-11-20')")
                assert taken.value.diag.message_primary.startswith(
                    "this session has a temporary relation or type pg_temp.token_sync_staging of its own")
        finally:
            conn.execute("GRANT TEMPORARY ON DATABASE token_sync_test TO PUBLIC")
            conn.execute("DROP TABLE public.raw_tokens")
            conn.execute("DROP OWNED BY chain_runner")
            conn.execute("DROP ROLE chain_runner")


def partman_managed_target(conn):
    """public.raw_tokens made again as pg_partman's daily layout, from 2026-11-19 on, like the
    table the first sync made (its columns, their comments and its indexes)."""
    # pg_partman keeps its configuration of a table dropped by an earlier test.
    conn.execute("DELETE FROM partman.part_config WHERE parent_table = 'public.raw_tokens'")
    conn.execute("DROP TABLE IF EXISTS partman.template_public_raw_tokens")
    conn.execute("ALTER TABLE public.raw_tokens RENAME TO raw_tokens_first")
    conn.execute("CREATE TABLE public.raw_tokens (LIKE public.raw_tokens_first INCLUDING ALL) "
                 "PARTITION BY RANGE (block_timestamp)")
    conn.execute("DROP TABLE public.raw_tokens_first")
    version, = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_partman'").fetchone()
    if version.startswith("4."):
        conn.execute("SELECT partman.create_parent('public.raw_tokens', 'block_timestamp', 'native', 'daily', "
                     "p_start_partition => '2026-11-19')")
    else:
        conn.execute("SELECT partman.create_parent('public.raw_tokens', 'block_timestamp', '1 day', "
                     "p_start_partition => '2026-11-19')")


def rows_in_day_partitions(conn):
    """The rows pg_partman's child tables hold, none in its default partition."""
    assert conn.execute("SELECT count(*) FROM public.raw_tokens_default").fetchone() == (0,)
    children = conn.execute("SELECT partition_schemaname, partition_tablename "
                            "FROM partman.show_partitions('public.raw_tokens')").fetchall()
    assert len(children) > 3
    return sum(conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
               for schema, table in children)


def day_partition(conn, day):
    """How many rows the day's own partition holds: the day's rows are all there, with
    nothing else."""
    (partition, rows), = conn.execute(
        "SELECT tableoid::regclass::text, count(*) FROM public.raw_tokens "
        "WHERE block_timestamp >= %s::date AND block_timestamp < %s::date + 1 GROUP BY 1", (day, day)).fetchall()
    bound, held = conn.execute("SELECT pg_get_expr(relpartbound, oid), (SELECT count(*) FROM public.raw_tokens "
                               "WHERE tableoid = c.oid) FROM pg_class c WHERE oid = %s::regclass",
                               (partition,)).fetchone()
    assert bound.startswith(f"FOR VALUES FROM ('{day} 00:00:00+00')"), bound
    assert held == rows
    return rows


def test_a_pg_partman_daily_table_gets_the_day_in_its_partition(partman, emulator):
    conn, source = target_made_then(partman, emulator, "1")
    with conn:
        partman_managed_target(conn)
        assert_a_day_goes_through_the_engine(conn, source, rows_in_day_partitions)
        assert day_partition(conn, "2026-11-20") == 4
        assert day_partition(conn, "2026-11-21") == 2


def test_a_pg_partman_table_without_the_days_partition_says_how_to_make_it(partman, emulator):
    """Without its default partition, a day before the table's first partition has nowhere to
    go: the day fails with the call that makes its partition, which then lets it load."""
    conn, source = target_made_then(partman, emulator, "1")
    with conn:
        partman_managed_target(conn)
        conn.execute("DROP TABLE public.raw_tokens_default")
        source.insert([token(9, DAY - dt.timedelta(days=2))])
        with pytest.raises(psycopg.errors.CheckViolation) as missing:
            conn.execute("SELECT token_sync_day('2026-11-18')")
        diag = missing.value.diag
        assert diag.message_primary == ("the partitioned target table public.raw_tokens has no partition "
                                        "for rows of 2026-11-18")
        make = "SELECT partman.create_partition_time('public.raw_tokens', ARRAY['2026-11-18 00:00:00+00'::timestamptz])"
        assert make in diag.message_hint
        assert conn.execute("SELECT count(*) FROM public.raw_tokens").fetchone() == (0,)
        conn.execute(make)
        assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-18')").fetchone() == (1,)
        assert day_partition(conn, "2026-11-18") == 1
        assert conn.execute("SELECT matches FROM token_verify_day('2026-11-18')").fetchone() == (True,)
