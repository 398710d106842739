"""Who may do what, and input that must be refused before any network call."""

import datetime as dt
import re

import psycopg
import pytest

from cluster import DATABASE, Cluster
from conftest import ROOT
from helpers import UTC, to_fake, token


@pytest.fixture
def alice(cluster, db):
    db.execute("DROP ROLE IF EXISTS alice")
    db.execute("CREATE ROLE alice LOGIN")
    with cluster.connect(user="alice") as conn:
        yield conn
    db.execute("DROP OWNED BY alice")
    db.execute("DROP ROLE alice")


@pytest.mark.parametrize("setting", ["api_url", "credentials", "billing_project", "source_table",
                                     "target_table", "max_bytes_billed"])
def test_ordinary_users_cannot_change_settings(alice, setting):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        alice.execute(f"SET token_sync.{setting} = '1'")


def test_every_setting_is_the_superusers_and_the_credentials_hidden_from_others(db, alice):
    contexts = db.execute("SELECT DISTINCT context FROM pg_settings WHERE name LIKE 'token_sync.%'").fetchall()
    assert contexts == [("superuser",)]
    seen = {name for name, in alice.execute("SELECT name FROM pg_settings WHERE name LIKE 'token_sync.%'")}
    assert "token_sync.api_url" in seen and "token_sync.credentials" not in seen
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        alice.execute("SHOW token_sync.credentials")


def test_functions_need_a_grant_and_the_runner_role_suffices(db, alice, fake_google, psql, cluster):
    fake_google.rows = [to_fake(token(1, dt.datetime(2026, 11, 20, 1, tzinfo=UTC)))]
    # alice's sessions read the database defaults: point them at the fake server.
    for statement in ["SELECT token_sync_day('2026-11-20')", "SELECT * FROM token_backfill('2026-11-20', '2026-11-20')",
                      "SELECT * FROM token_verify_day('2026-11-20')"]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            alice.execute(statement)
    db.execute(f"ALTER ROLE alice SET token_sync.api_url = '{fake_google.base_url}'")
    db.execute("ALTER ROLE alice SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
    db.execute("SELECT token_sync_day('2026-11-19')")  # creates the target table
    psql("sql/grant_runner_role.sql")
    db.execute("GRANT token_sync_runner TO alice")
    with cluster.connect(user="alice") as conn:
        assert conn.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM token_sync.day_status").fetchone() == (2,)
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (1,)


def test_the_runner_role_syncs_registered_tables_but_cannot_register(db, alice, fake_google, psql, cluster):
    fake_google.rows = [to_fake(token(1, dt.datetime(2026, 11, 20, 1, tzinfo=UTC)))]
    db.execute(f"ALTER ROLE alice SET token_sync.api_url = '{fake_google.base_url}'")
    db.execute("TRUNCATE token_sync.tables")
    db.execute("SELECT * FROM token_sync.add_table('bigquery-public-data.crypto_ethereum.tokens')")
    db.execute("SELECT * FROM token_sync.sync_day('bigquery-public-data.crypto_ethereum.tokens', '2026-11-19')")
    for statement in ["SELECT * FROM token_sync.sync_all('2026-11-20')",
                      "SELECT * FROM token_sync.add_table('bigquery-public-data.crypto_ethereum.blocks')"]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            alice.execute(statement)
    try:
        psql("sql/grant_runner_role.sql")
        db.execute("GRANT token_sync_runner TO alice")
        with cluster.connect(user="alice") as conn:
            assert conn.execute("SELECT status, rows_loaded FROM token_sync.sync_all('2026-11-20')").fetchall() == [
                ("succeeded", 1)]
            assert conn.execute("SELECT matches FROM token_sync.verify_day("
                                "'bigquery-public-data.crypto_ethereum.tokens', '2026-11-20')").fetchone() == (True,)
            for statement in ["SELECT * FROM token_sync.add_table('bigquery-public-data.crypto_ethereum.blocks')",
                              "SELECT token_sync.remove_table('bigquery-public-data.crypto_ethereum.tokens')"]:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        db.execute("TRUNCATE token_sync.tables")


@pytest.mark.parametrize("setting, value, words", [
    ("billing_project", "", "billing_project is not set"),
    ("billing_project", "Not A Project!", "not a Google Cloud project id"),
    ("source_table", "tokens", "not a BigQuery table name"),
    ("source_table", "p.d.t`; DROP TABLE x; --", "not a BigQuery table name"),
    ("api_url", "http://10.1.2.3:9050", "plain http"),
    ("api_url", "ftp://127.0.0.1:21", "unsupported scheme"),
    ("api_url", "nonsense", "not a URL"),
    ("credentials", "relative/key.json", "absolute path"),
    ("location", "U S", "not a BigQuery location"),
])
def test_malformed_settings_fail_before_any_call(db, fake_google, setting, value, words):
    db.execute(psycopg.sql.SQL("SET {} = {}").format(psycopg.sql.Identifier("token_sync", setting),
                                                     psycopg.sql.Literal(value)))
    with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert words in error.value.diag.message_primary
    assert error.value.diag.message_hint
    assert fake_google.requests == []


def test_no_auth_is_refused_for_a_remote_api(db, fake_google):
    db.execute("SET token_sync.api_url = 'https://bigquery.googleapis.com'")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
        db.execute("SELECT token_sync_day('2026-11-20')")
    assert "'none' is refused" in error.value.diag.message_primary


@pytest.mark.parametrize("call, words", [
    ("token_sync_day(NULL)", "must not be NULL"),
    ("token_sync_day(current_date + 2)", "in the future"),
    ("token_sync_day('infinity')", "finite"),
    ("token_backfill(NULL, '2026-11-20')", "must not be NULL"),
    ("token_backfill('2026-11-20', '2026-11-10')", "is after"),
    ("token_backfill('2024-01-01', '2026-11-10')", "max_backfill_days"),
    ("token_backfill('2026-11-01', current_date + 1)", "in the future"),
    ("token_verify_day(NULL)", "must not be NULL"),
    ("token_sync_day('0001-01-01'::date - 1)", "outside BigQuery's range of days"),
    ("token_backfill('0001-01-01'::date - 1, '2026-11-10')", "outside BigQuery's range of days"),
])
def test_bad_arguments_are_refused_and_change_nothing(db, fake_google, call, words):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
        db.execute(f"SELECT * FROM {call}")
    assert words in error.value.diag.message_primary
    assert error.value.diag.message_hint
    assert fake_google.requests == []
    assert db.execute("SELECT count(*) FROM token_sync.runs").fetchone() == (0,)


def test_a_day_out_of_range_names_the_range_bigquery_has(db, fake_google):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
        db.execute("SELECT token_sync_day('0001-01-01'::date - 1)")
    assert error.value.diag.message_hint == (
        "BigQuery's DATE and TIMESTAMP hold days from 0001-01-01 to 9999-12-31; pass a day in that range.")
    # Days before 1970 are BigQuery days like any other.
    assert db.execute("SELECT day, rows_loaded FROM token_sync_day('1969-12-31')").fetchone() == (
        dt.date(1969, 12, 31), 0)
    assert db.execute("SELECT day::text, status FROM token_backfill('0001-01-01', '0001-01-02')").fetchall() == [
        ("0001-01-01", "succeeded"), ("0001-01-02", "succeeded")]


def test_without_the_preload_the_functions_refuse_to_run():
    cluster = Cluster().start(preload="pg_cron")
    try:
        with cluster.connect() as conn:
            conn.execute("CREATE ROLE mallory LOGIN")
        with cluster.connect(user="mallory") as mallory:
            # The hole the preload closes: before the library loads, anyone may set a placeholder.
            mallory.execute("SET token_sync.api_url = 'http://127.0.0.1:1'")
        with cluster.connect() as conn:
            for call in ["token_sync_day('2026-11-20')", "token_backfill('2026-11-19', '2026-11-20')",
                         "token_verify_day('2026-11-20')"]:
                with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as error:
                    conn.execute(f"SELECT * FROM {call}")
                assert error.value.diag.message_primary == "token_sync is not in shared_preload_libraries"
                assert "shared_preload_libraries = 'pg_cron,token_sync'" in error.value.diag.message_hint
                assert "restart" in error.value.diag.message_hint
            assert conn.execute("SELECT count(*) FROM token_sync.runs").fetchone() == (0,)
            assert conn.execute("SELECT to_regclass('public.raw_tokens')").fetchone() == (None,)
    finally:
        cluster.stop()


@pytest.fixture
def runner_on_fake(db, cluster, fake_google, psql):
    """A target table made by a first sync, the runner role, and a way to log in as a role
    whose sessions point at the fake server."""
    fake_google.rows = [to_fake(token(1, dt.datetime(2026, 11, 20, 1, tzinfo=UTC), symbol="T1")),
                        to_fake(token(2, dt.datetime(2026, 11, 20, 2, tzinfo=UTC), symbol="T2"))]
    db.execute("SELECT token_sync_day('2026-11-19')")
    psql("sql/grant_runner_role.sql")
    made = []

    def login(role):
        db.execute(f"DROP ROLE IF EXISTS {role}")
        db.execute(f"CREATE ROLE {role} LOGIN IN ROLE token_sync_runner")
        db.execute(f"ALTER ROLE {role} SET token_sync.api_url = '{fake_google.base_url}'")
        db.execute(f"ALTER ROLE {role} SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
        made.append(role)
        return cluster.connect(user=role)
    yield login
    db.execute("ALTER TABLE IF EXISTS raw_tokens OWNER TO postgres")
    for role in made:
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE {role}")


ROW_SECURITY_HINT = ("Run the sync as a role that bypasses row security (the table owner, unless FORCE ROW LEVEL "
                     "SECURITY is set, or a role with BYPASSRLS), or ALTER TABLE ... DISABLE ROW LEVEL SECURITY "
                     "on the target.")


def test_row_level_security_on_the_target_is_refused_as_copy_refuses_it(db, runner_on_fake):
    db.execute("ALTER TABLE raw_tokens ENABLE ROW LEVEL SECURITY")
    db.execute("CREATE POLICY only_t1 ON raw_tokens TO token_sync_runner USING (true) WITH CHECK (symbol = 'T1')")
    with runner_on_fake("rls_runner") as runner:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as error:
            runner.execute("SELECT token_sync_day('2026-11-20')")
        assert error.value.diag.message_primary == (
            "row-level security applies to public.raw_tokens for the current role, and token_sync loads "
            "through COPY, which cannot apply its policies")
        assert error.value.diag.message_hint == ROW_SECURITY_HINT
    assert db.execute("SELECT count(*) FROM raw_tokens").fetchone() == (0,), "the policy forbids T2: nothing written"
    assert db.execute("SELECT status FROM token_sync.runs WHERE day = '2026-11-20'").fetchall() == [("failed",)]


def test_forced_row_level_security_binds_the_owner_too(db, runner_on_fake):
    with runner_on_fake("table_owner") as owner:
        db.execute("ALTER TABLE raw_tokens OWNER TO table_owner")
        db.execute("ALTER TABLE raw_tokens ENABLE ROW LEVEL SECURITY")
        assert owner.execute("SELECT rows_loaded FROM token_sync_day('2026-11-20')").fetchone() == (2,), (
            "row security does not apply to the owner")
        db.execute("ALTER TABLE raw_tokens FORCE ROW LEVEL SECURITY")
        with pytest.raises(psycopg.errors.FeatureNotSupported) as error:
            owner.execute("SELECT token_sync_day('2026-11-21')")
        assert error.value.diag.message_hint == ROW_SECURITY_HINT
        # token_sync writes as the table's owner, whom FORCE binds: a superuser's sync too.
        with pytest.raises(psycopg.errors.FeatureNotSupported) as error:
            db.execute("SELECT token_sync_day('2026-11-19')")
        assert error.value.diag.message_hint == ROW_SECURITY_HINT
        db.execute("ALTER TABLE raw_tokens NO FORCE ROW LEVEL SECURITY")
        assert db.execute("SELECT rows_loaded FROM token_sync_day('2026-11-19')").fetchone() == (0,)


def test_a_read_api_it_does_not_know_is_refused_as_it_is_set(db):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
        db.execute("SET token_sync.read_api = 'fast'")
    assert error.value.diag.message_primary == 'invalid value for parameter "token_sync.read_api": "fast"'
    assert error.value.diag.message_hint == "Available values: auto, storage, query."
    db.execute("SET token_sync.read_api = 'Query'")
    assert db.execute("SHOW token_sync.read_api").fetchone() == ("query",)


UNITS = {"kB": 1, "MB": 1024, "GB": 1024 * 1024, "ms": 1, "s": 1000, "min": 60_000}


def readme_settings():
    """The README's table of settings: name → default as written there."""
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `token_sync\.(\w+)` \| ([^|]*) \|", readme, re.M)
    return {name: default.strip().strip("`") for name, default in rows}


def in_base_unit(text, unit):
    """`10GB` as pg_settings counts it in `MB`; `120s` in `s`."""
    number, suffix = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", text).groups()
    return int(number) * UNITS[suffix or unit] // UNITS[unit]


def test_the_readme_lists_every_setting_with_its_default(db):
    documented = readme_settings()
    defined = {name.removeprefix("token_sync."): (boot, unit) for name, boot, unit in db.execute(
        "SELECT name, boot_val, unit FROM pg_settings WHERE name LIKE 'token_sync.%'")}
    assert sorted(documented) == sorted(defined)
    for name, (boot, unit) in defined.items():
        written = documented[name]
        if unit:
            assert in_base_unit(written, unit) == int(boot), name
        elif boot in ("", None):
            assert written.startswith(("empty", "(none")), name
        else:
            assert written == boot, name
