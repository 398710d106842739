"""Who may do what, and input that must be refused before any network call."""

import datetime as dt

import psycopg
import pytest

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
])
def test_bad_arguments_are_refused_and_change_nothing(db, fake_google, call, words):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
        db.execute(f"SELECT * FROM {call}")
    assert words in error.value.diag.message_primary
    assert error.value.diag.message_hint
    assert fake_google.requests == []
    assert db.execute("SELECT count(*) FROM token_sync.runs").fetchone() == (0,)
