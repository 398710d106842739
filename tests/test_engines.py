"""Targets that Citus and TimescaleDB own: PostgreSQL's COPY inside the backend, with which
token_sync writes, would leave the day's rows in the coordinator's shell table or the
hypertable's root, where no query reads them. Such a target is refused before any row is
written, and the ledger says why. Real engines, built from their release sources by
scripts/build-engines.sh: a Citus coordinator that holds its own shards, and a
TimescaleDB-preloaded server, each with the emulator as source."""

import datetime as dt

import psycopg
import pytest

from cluster import Cluster, pg_config, server_path
from conftest import Source, set_database_defaults
from helpers import UTC, notices, token

DAY = dt.datetime(2026, 11, 20, tzinfo=UTC)


def require_engine(name):
    """The engine's extension must be installed: scripts/build-engines.sh (which tests/run.sh
    runs) builds both for this system's PostgreSQL 15 only."""
    if server_path(f"{pg_config('--sharedir')}/extension/{name}.control").exists():
        return
    if pg_config("--version").split()[1].startswith("15."):
        pytest.fail(f"{name} is not installed: run bash scripts/build-engines.sh")
    pytest.skip(f"{name} is built for PostgreSQL 15 only (scripts/build-engines.sh)")


@pytest.fixture(scope="module")
def citus(emulator):
    require_engine("citus")
    cluster = Cluster().start(preload="citus,pg_cron,token_sync", extensions=["citus"])
    set_database_defaults(cluster, emulator)
    with cluster.connect() as conn:
        # One node that is coordinator and worker at once, holding the shards itself.
        conn.execute("SELECT citus_set_coordinator_host('localhost', %s)", (cluster.port,))
        conn.execute("SELECT citus_set_node_property('localhost', %s, 'shouldhaveshards', true)", (cluster.port,))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def timescaledb(emulator):
    require_engine("timescaledb")
    cluster = Cluster().start("timescaledb.telemetry_level=off", preload="timescaledb,pg_cron,token_sync",
                              extensions=["timescaledb"])
    set_database_defaults(cluster, emulator)
    yield cluster
    cluster.stop()


def target_made_then(cluster, emulator, make):
    """A connection whose source has 3 rows on DAY, and whose target (public.raw_tokens) a
    first sync of the empty day before made, then `make` turned into the engine's table."""
    conn = cluster.connect()
    conn.execute("DROP TABLE IF EXISTS public.raw_tokens")
    conn.execute("TRUNCATE token_sync.runs")
    source = Source(emulator, conn)
    conn.execute("SELECT token_sync_day('2026-11-19')")
    conn.execute(f"SELECT {make}")
    source.insert([token(n, DAY + dt.timedelta(minutes=n)) for n in (1, 2, 3)])
    return conn


def assert_refused_and_nothing_written(conn, kind, hint):
    seen = notices(conn)
    with pytest.raises(psycopg.errors.FeatureNotSupported) as error:
        conn.execute("SELECT * FROM token_sync_day('2026-11-20')")
    message = error.value.diag.message_primary
    assert message == f"the target table public.raw_tokens is {kind}, which token_sync cannot load"
    assert hint in error.value.diag.message_hint
    assert "Mirror into a plain or natively partitioned table" in error.value.diag.message_hint
    (status, failure), = conn.execute(
        "SELECT status, error FROM token_backfill('2026-11-20', '2026-11-20')").fetchall()
    assert (status, failure) == ("failed", message)
    assert seen == [("WARNING", f"token_sync: 2026-11-20 failed: {message}")]
    # Nothing anywhere: not through a query, not in the table's own heap.
    assert conn.execute("SELECT count(*) FROM public.raw_tokens").fetchone() == (0,)
    assert conn.execute("SELECT pg_relation_size('public.raw_tokens')").fetchone() == (0,)
    assert conn.execute("SELECT status, rows_loaded, error FROM token_sync.runs WHERE day = '2026-11-20' "
                        "ORDER BY run_id").fetchall() == [("failed", None, message)] * 2


@pytest.mark.parametrize("make, kind", [
    ("create_distributed_table('public.raw_tokens', 'address', shard_count := 4)", "a Citus distributed table"),
    ("create_reference_table('public.raw_tokens')", "a Citus reference table"),
    ("citus_add_local_table_to_metadata('public.raw_tokens')", "a Citus local table"),
])
def test_a_citus_table_is_refused_before_any_row_is_written(citus, emulator, make, kind):
    with target_made_then(citus, emulator, make) as conn:
        assert_refused_and_nothing_written(conn, kind, "Citus does not route to the shards")


def test_a_timescaledb_hypertable_is_refused_before_any_row_is_written(timescaledb, emulator):
    make = "create_hypertable('public.raw_tokens', by_range('block_timestamp', INTERVAL '1 day'))"
    with target_made_then(timescaledb, emulator, make) as conn:
        assert_refused_and_nothing_written(conn, "a TimescaleDB hypertable", "TimescaleDB does not route to the chunks")
        assert conn.execute("SELECT count(*) FROM ONLY public.raw_tokens").fetchone() == (0,)


def test_a_plain_table_beside_the_engines_still_loads(citus, timescaledb, emulator):
    for cluster in (citus, timescaledb):
        with target_made_then(cluster, emulator, "1") as conn:
            assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (3,)
            assert conn.execute("SELECT matches FROM token_verify_day('2026-11-20')").fetchone() == (True,)
