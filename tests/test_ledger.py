"""The ledger leaves exactly one truthful trace of every attempt, whatever the caller's
isolation level and whether it commits; and an install of 0.1.0 upgrades in place."""

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cluster import DATABASE, pg_config, server_path
from helpers import UTC, to_fake, token
from test_deploy import cargo_version

ROOT = Path(__file__).resolve().parent.parent

MIDNIGHT = dt.datetime(2026, 11, 20, tzinfo=UTC)


def psql(cluster, *statements):
    """Runs the statements in one psql session, as a person would type them."""
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(cluster.root), "-p", str(cluster.port),
               "-U", "postgres", "-d", DATABASE]
    for statement in statements:
        command += ["-c", statement]
    return subprocess.run(command, check=True, capture_output=True, text=True)


@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
@pytest.mark.parametrize("end", ["COMMIT", "ROLLBACK"])
@pytest.mark.parametrize("call", ["token_sync_day('2026-11-20')", "token_backfill('2026-11-20', '2026-11-20')"])
def test_a_snapshot_isolated_caller_leaves_one_truthful_trace(db, fake_google, cluster, isolation, end, call):
    fake_google.rows = [to_fake(token(n, MIDNIGHT + dt.timedelta(hours=n))) for n in (1, 2, 3)]
    psql(cluster, f"SET token_sync.api_url = '{fake_google.base_url}'",
         "SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'",
         f"BEGIN ISOLATION LEVEL {isolation}", f"SELECT * FROM {call}", end)
    attempts = db.execute("SELECT day, outcome, rows_loaded FROM token_sync.attempts").fetchall()
    status = db.execute("SELECT last_attempt_status, rows_loaded, missing FROM token_sync.day_status").fetchall()
    if end == "COMMIT":
        assert attempts == [(MIDNIGHT.date(), "succeeded", 3)]
        assert status == [("succeeded", 3, False)]
        assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (3,)
    else:
        assert attempts == [(MIDNIGHT.date(), "abandoned", None)], "the rolled-back attempt is still there"
        assert status == [("abandoned", None, True)]
        assert db.execute("SELECT to_regclass('public.raw_tokens')").fetchone() == (None,)


def test_read_committed_success_is_the_running_row_itself(db, fake_google):
    fake_google.rows = [to_fake(token(1, MIDNIGHT))]
    db.execute("SELECT token_sync_day('2026-11-20')")
    assert db.execute("SELECT status FROM token_sync.runs").fetchall() == [("succeeded",)]


@pytest.fixture
def extension_dir():
    return server_path(pg_config("--sharedir")) / "extension"


@pytest.mark.parametrize("old", ["0.1.0", "0.2.0", "0.3.0", "0.4.0"])
def test_an_older_install_upgrades_in_place_with_its_data_and_ledger(cluster, extension_dir, old, fake_google):
    installed = extension_dir / f"token_sync--{old}.sql"
    shutil.copy(ROOT / "tests" / "fixtures" / f"token_sync--{old}.sql", installed)
    try:
        with cluster.connect("postgres") as admin:
            admin.execute("DROP DATABASE IF EXISTS upgraded")
            admin.execute("CREATE DATABASE upgraded")
        with cluster.connect("upgraded") as conn:
            conn.execute(f"CREATE EXTENSION token_sync VERSION '{old}'")
            # A runner as 0.4.0's sql/grant_runner_role.sql made it may write the ledger:
            # the upgrade takes that back.
            conn.execute("DO $$ BEGIN CREATE ROLE token_sync_runner NOLOGIN; "
                         "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
            conn.execute("GRANT INSERT, UPDATE ON token_sync.runs TO token_sync_runner")
            conn.execute("CREATE TABLE raw_tokens AS SELECT 'x'::text AS address")
            conn.execute("INSERT INTO token_sync.runs (day, target_table, status, started_at, finished_at, rows_loaded) "
                         "VALUES ('2026-11-19', 'public.raw_tokens', 'succeeded', now(), now(), 1), "
                         "('2026-11-20', 'public.raw_tokens', 'running', now(), NULL, NULL)")
            if old == "0.4.0":
                # The new library serves the previous version's SQL until the update: it
                # loads and re-syncs a day without the ledger's new table.
                fake_google.rows = [to_fake(token(1, dt.datetime(2026, 11, 18, 5, tzinfo=UTC)))]
                for name, value in [("billing_project", "billing"), ("credentials", "none"),
                                    ("api_url", fake_google.base_url)]:
                    conn.execute(f"SET token_sync.{name} = '{value}'")
                conn.execute("SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
                conn.execute("SET token_sync.target_table = 'public.mirrored_tokens'")
                for _ in range(2):
                    assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-18')").fetchone() == (1,)
                conn.execute("DROP TABLE public.mirrored_tokens")
                conn.execute("DELETE FROM token_sync.runs WHERE day = '2026-11-18'")
            conn.execute("ALTER EXTENSION token_sync UPDATE")
            assert conn.execute("SELECT has_table_privilege('token_sync_runner', 'token_sync.runs', 'INSERT'), "
                                "has_table_privilege('token_sync_runner', 'token_sync.runs', 'UPDATE')"
                                ).fetchone() == (False, False)
            assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'token_sync'").fetchone() == (
                cargo_version(),)
            assert conn.execute("SELECT day::text, last_attempt_status, missing FROM token_sync.day_status"
                                ).fetchall() == [("2026-11-19", "succeeded", False), ("2026-11-20", "abandoned", True)]
            assert conn.execute("SELECT count(*) FROM raw_tokens").fetchone() == (1,)
            conn.execute("INSERT INTO token_sync.runs (day, target_table, status, started_at) "
                         "VALUES ('2026-11-21', 'public.raw_tokens', 'unchanged', now())")
            assert conn.execute("SELECT source_table FROM token_sync.day_status").fetchall() == [(None,)] * 3
            assert conn.execute("SELECT token_sync.remove_table('p.d.t')").fetchone() == (False,)
            upgraded = ledger_definition(conn)
        with cluster.connect() as fresh:
            assert upgraded == ledger_definition(fresh), "an upgraded ledger is the same as a new one"
    finally:
        os.remove(installed)
        with cluster.connect("postgres") as admin:
            admin.execute("DROP DATABASE IF EXISTS upgraded")


def ledger_definition(conn):
    return conn.execute(
        "SELECT pg_get_viewdef('token_sync.attempts'), pg_get_viewdef('token_sync.day_status'), "
        "(SELECT array_agg(conrelid::regclass || ' ' || pg_get_constraintdef(oid) ORDER BY conrelid::regclass::text, conname) "
        " FROM pg_constraint WHERE conrelid IN ('token_sync.runs'::regclass, 'token_sync.run_digests'::regclass)), "
        "(SELECT array_agg(attrelid::regclass || ' ' || attname || ' ' || format_type(atttypid, atttypmod) "
        "  ORDER BY attrelid::regclass::text, attnum) FROM pg_attribute "
        " WHERE attrelid IN ('token_sync.runs'::regclass, 'token_sync.run_digests'::regclass) "
        " AND attnum > 0 AND NOT attisdropped), "
        "(SELECT array_agg(c.oid::regclass::text ORDER BY c.oid::regclass::text) FROM pg_class c "
        " JOIN pg_depend d ON d.objid = c.oid AND d.deptype = 'e' "
        " JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'token_sync'), "
        "(SELECT array_agg(dumped::regclass::text ORDER BY dumped::regclass::text) "
        " FROM pg_extension, unnest(extconfig) AS dumped WHERE extname = 'token_sync'), "
        "(SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attnotnull ORDER BY attnum) "
        " FROM pg_attribute WHERE attrelid = 'token_sync.tables'::regclass AND attnum > 0), "
        "(SELECT array_agg(p.oid::regprocedure::text || ' ' || pg_get_function_result(p.oid) || ' PUBLIC may run it: ' "
        "  || has_function_privilege('public', p.oid, 'EXECUTE') ORDER BY p.oid::regprocedure::text) "
        " FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' "
        " JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'token_sync')").fetchone()
