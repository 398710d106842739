"""What BigQuery says about a table (column names, types) and what other roles put in the
database are untrusted input: names reach SQL only quoted, PostgreSQL's own functions and
operators are the ones called whatever the search_path, a target's triggers and defaults
run as its owner, the registry refuses targets it must not write, and the ledger is
written by the extension only."""

import datetime as dt
import json

import psycopg
import pytest

from fake_google import SCHEMA
from helpers import UTC, notices, to_fake, token
from test_types import TypedSource, field

DAY = "2026-11-20"
MOMENT = dt.datetime(2026, 11, 20, 10, tzinfo=UTC)
# BigQuery's flexible column names: letters of any language, dashes, spaces and
# & % = + : ' < > # |, which the emulator serves.
FLEXIBLE = ["owner's", "名前 Größe", "a & b % c = d + e : f", "<tag> #1 | x", "dash-name'-- x"]


def columns_of(db, table):
    return db.execute(
        "SELECT attname::text, col_description(attrelid, attnum) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum", (table,)).fetchall()


@pytest.fixture
def victim(db):
    db.execute("CREATE TABLE IF NOT EXISTS public.victim (x int)")
    yield
    db.execute("DROP TABLE IF EXISTS public.victim")


def test_flexible_column_names_load_exactly_and_verify_through_the_emulator(db, emulator):
    fields = [field("block_timestamp", "TIMESTAMP", "REQUIRED")] + [field(name, "STRING") for name in FLEXIBLE]
    source = TypedSource(emulator, db, fields)
    row = {"block_timestamp": f"{DAY} 10:00:00.000000 UTC", **{name: f"value of {name}" for name in FLEXIBLE}}
    source.insert([row])
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (1,)
    assert columns_of(db, "public.raw_typed") == [
        (name, f"token_sync: mirrors the source column {name} ({kind})")
        for name, kind in [("block_timestamp", "timestamp with time zone")] + [(n, "text") for n in FLEXIBLE]]
    values = db.execute("SELECT to_jsonb(t) FROM public.raw_typed t").fetchone()[0]
    assert {name: values[name] for name in FLEXIBLE} == {name: f"value of {name}" for name in FLEXIBLE}
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (True,)
    # The fingerprint reads every column: a changed value in one of them is seen.
    db.execute(f"""UPDATE public.raw_typed SET "{FLEXIBLE[-1].replace('"', '""')}" = 'tampered'""")
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (False,)


# Beyond what BigQuery allows, as a hostile endpoint could serve them: either language's
# quotes, a backslash, and attempts to end the statement in each.
QUOTES = ['say "hi"', "back`tick", "back\\slash", "owner's';--", 'x"); DROP TABLE public.victim; --',
          "y'); DROP TABLE public.victim; --", "z`; DROP TABLE victim; --"]


def test_quotes_of_either_language_in_names_are_escaped_in_every_statement(db, fake_google, victim):
    fake_google.schema = list(SCHEMA) + [(name, "STRING") for name in QUOTES]
    fake_google.rows = [dict(to_fake(token(1, MOMENT)), **{name: f"v{n}" for n, name in enumerate(QUOTES)})]
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (1,)
    assert [name for name, _ in columns_of(db, "public.raw_tokens")][-len(QUOTES):] == QUOTES
    values = db.execute("SELECT to_jsonb(t) FROM public.raw_tokens t").fetchone()[0]
    assert {name: values[name] for name in QUOTES} == {name: f"v{n}" for n, name in enumerate(QUOTES)}
    assert db.execute("SELECT to_regclass('public.victim') IS NOT NULL").fetchone() == (True,)
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (True,)
    db.execute(f"""UPDATE public.raw_tokens SET "{QUOTES[0].replace('"', '""')}" = 'tampered'""")
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (False,)
    # What BigQuery was asked names each column as one GoogleSQL identifier.
    sql = next(json.loads(body)["query"] for kind, _, _, body in fake_google.requests if kind == "query")
    for quoted in ['`say "hi"`', r"`back\`tick`", r"`back\\slash`", "`owner's';--`", r"`z\`; DROP TABLE victim; --`"]:
        assert quoted in sql, sql


@pytest.mark.parametrize("name, why", [
    ("n" * 64, 'the source column "' + "n" * 64 + '" is 64 bytes long, and PostgreSQL keeps 63 bytes of a name'),
    ("é" * 32, 'the source column "' + "é" * 32 + '" is 64 bytes long, and PostgreSQL keeps 63 bytes of a name'),
    ("xmin", 'the source column "xmin" is the name of a PostgreSQL system column'),
    ("ctid", 'the source column "ctid" is the name of a PostgreSQL system column'),
    ("nul\0name", 'the source column "nul\\0name" is empty or holds a NUL character, which no PostgreSQL name '
                  'or jsonb key can'),
])
def test_names_postgresql_cannot_hold_are_refused_by_name(db, fake_google, name, why):
    fake_google.schema = list(SCHEMA) + [(name, "STRING")]
    fake_google.rows = [to_fake(token(1, MOMENT))]
    with pytest.raises(psycopg.errors.InvalidName) as error:
        db.execute(f"SELECT * FROM token_sync_day('{DAY}')")
    assert error.value.diag.message_primary == why
    assert "renames the column" in error.value.diag.message_hint
    assert db.execute("SELECT to_regclass('public.raw_tokens')").fetchone() == (None,)


@pytest.fixture
def mallory(db, cluster):
    """An ordinary role, with a schema of its own that is on everybody's search_path."""
    db.execute("DROP SCHEMA IF EXISTS mallory CASCADE")
    db.execute("DROP ROLE IF EXISTS mallory")
    db.execute("CREATE ROLE mallory LOGIN")
    db.execute("CREATE SCHEMA mallory AUTHORIZATION mallory")
    db.execute("GRANT CREATE ON SCHEMA public TO mallory")
    with cluster.connect(user="mallory") as conn:
        conn.execute("CREATE TABLE mallory.calls (who text, what text)")
        conn.execute("GRANT INSERT ON mallory.calls TO PUBLIC")
        yield conn
    db.execute("RESET search_path")
    db.execute("DROP SCHEMA mallory CASCADE")
    db.execute("REVOKE CREATE ON SCHEMA public FROM mallory")
    db.execute("DROP OWNED BY mallory")
    db.execute("DROP ROLE mallory")


def test_planted_operators_and_functions_on_the_search_path_are_never_called(db, fake_google, mallory):
    fake_google.rows = [to_fake(token(n, MOMENT + dt.timedelta(minutes=n))) for n in (1, 2)]
    # The CVE-2018-1058 pattern: an exact-type operator in public beats pg_catalog's
    # numeric * numeric; with public first on the path, md5(text) too.
    mallory.execute("""CREATE FUNCTION public.times(numeric, integer) RETURNS numeric LANGUAGE sql AS
                       $$ INSERT INTO mallory.calls VALUES (current_user, 'times') RETURNING $1 * $2::numeric $$""")
    mallory.execute("CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.times)")
    mallory.execute("""CREATE FUNCTION public.md5(text) RETURNS text LANGUAGE sql AS
                       $$ INSERT INTO mallory.calls VALUES (current_user, 'md5') RETURNING pg_catalog.md5($1) $$""")
    mallory.execute("""CREATE FUNCTION public.text_equals(text, text) RETURNS boolean LANGUAGE sql AS
                       $$ INSERT INTO mallory.calls VALUES (current_user, '=') RETURNING $1 OPERATOR(pg_catalog.=) $2 $$""")
    mallory.execute("CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_equals)")
    db.execute("SET search_path = public, pg_catalog")
    tokens = "bigquery-public-data.crypto_ethereum.tokens"
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (2,)
    assert db.execute(f"SELECT status FROM token_backfill('{DAY}', '{DAY}')").fetchone() == ("unchanged",)
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (True,)
    db.execute(f"SELECT * FROM token_sync.add_table('{tokens}', 'public.raw_registered')")
    db.execute(f"SELECT * FROM token_sync.sync_day('{tokens}', '{DAY}')")
    db.execute(f"SELECT * FROM token_sync.verify_day('{tokens}', '{DAY}')")
    db.execute(f"SELECT * FROM token_sync.sync_all('{DAY}')")
    db.execute(f"SELECT * FROM token_sync.catch_up('{DAY}')")
    db.execute(f"SELECT * FROM token_catch_up('{DAY}')")
    db.execute(f"SELECT token_sync.remove_table('{tokens}')")
    db.execute("RESET search_path")
    db.execute("DROP TABLE public.raw_registered")
    # The planted objects work where they are called: they were only never called by token_sync.
    assert db.execute("SELECT 2.0 * 3").fetchone()[0] == 6
    assert mallory.execute("SELECT who, what FROM mallory.calls").fetchall() == [("postgres", "times")]


def test_a_target_of_another_role_runs_its_triggers_and_defaults_as_that_role(db, fake_google, mallory):
    fake_google.rows = [to_fake(token(n, MOMENT + dt.timedelta(minutes=n))) for n in (1, 2)]
    db.execute("SELECT token_sync_day('2026-11-19')")  # makes public.raw_tokens
    db.execute("ALTER TABLE public.raw_tokens OWNER TO mallory")
    mallory.execute("""CREATE FUNCTION mallory.note() RETURNS text LANGUAGE plpgsql AS $$
                       BEGIN INSERT INTO mallory.calls VALUES (current_user, 'default'); RETURN 'n'; END $$""")
    mallory.execute("""CREATE FUNCTION mallory.escalate() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN INSERT INTO mallory.calls VALUES (current_user, 'trigger');
                       BEGIN ALTER ROLE mallory SUPERUSER; EXCEPTION WHEN OTHERS THEN
                         INSERT INTO mallory.calls VALUES (current_user, SQLERRM); END;
                       RETURN NEW; END $$""")
    mallory.execute("ALTER TABLE public.raw_tokens ADD COLUMN note text DEFAULT mallory.note()")
    mallory.execute("CREATE TRIGGER escalate BEFORE INSERT ON public.raw_tokens "
                    "FOR EACH ROW EXECUTE FUNCTION mallory.escalate()")
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (2,)
    calls = mallory.execute("SELECT who, what FROM mallory.calls").fetchall()
    assert ("postgres",) not in {(who,) for who, _ in calls}, calls
    # The trigger's attempt to make its owner a superuser failed, as mallory's own would.
    assert {"default", "trigger"} < {what for _, what in calls} and len(calls) == 6, calls
    assert db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'").fetchone() == (False,)
    assert db.execute("SELECT count(*), min(note) FROM public.raw_tokens").fetchone() == (2, "n")


@pytest.mark.parametrize("target, why", [
    ("token_sync.runs", "is in the schema token_sync, where token_sync writes no rows of its own"),
    ("token_sync.tables", "is in the schema token_sync, where token_sync writes no rows of its own"),
    ("token_sync.new_table", "is in the schema token_sync, where token_sync writes no rows of its own"),
    ("pg_catalog.pg_class", "is in the schema pg_catalog, where token_sync writes no rows of its own"),
    ("information_schema.sql_parts", "is in the schema information_schema, where token_sync writes no rows of its own"),
    ("cron.job", "belongs to the extension pg_cron"),
    ("public.raw_view", "is a view, not a table"),
    ("raw_temp", "is a temporary table, which the next session would not see"),
])
def test_the_registry_and_the_sync_refuse_targets_they_must_not_write(db, fake_google, target, why):
    db.execute("CREATE OR REPLACE VIEW public.raw_view AS SELECT 1 AS one")
    db.execute("CREATE TEMPORARY TABLE raw_temp (x int)")
    try:
        with pytest.raises(psycopg.errors.WrongObjectType) as error:
            db.execute(f"SELECT * FROM token_sync.add_table('bigquery-public-data.crypto_ethereum.tokens', '{target}')")
        assert error.value.diag.message_primary.endswith(why), error.value.diag.message_primary
        assert db.execute("SELECT count(*) FROM token_sync.tables").fetchone() == (0,)
        db.execute(f"SET token_sync.target_table = '{target}'")
        with pytest.raises(psycopg.errors.WrongObjectType):
            db.execute(f"SELECT * FROM token_sync_day('{DAY}')")
    finally:
        db.execute("RESET token_sync.target_table")
        db.execute("DROP VIEW public.raw_view")
        db.execute("DROP TABLE raw_temp")


def test_two_sources_cannot_share_a_target(db, fake_google):
    db.execute("TRUNCATE token_sync.tables")
    db.execute("SELECT * FROM token_sync.add_table('bigquery-public-data.crypto_ethereum.blocks', 'public.raw_shared')")
    db.execute("SELECT token_sync_day('2026-11-19')")
    db.execute("CREATE TABLE public.raw_shared (LIKE public.raw_tokens) PARTITION BY RANGE (block_timestamp)")
    db.execute("CREATE TABLE public.raw_shared_20 PARTITION OF public.raw_shared "
               "FOR VALUES FROM ('2026-11-20') TO ('2026-11-21')")
    blocks = "bigquery-public-data.crypto_ethereum.blocks (into public.raw_shared)"
    try:
        for source, target in [("bigquery-public-data.crypto_ethereum.logs", "public.raw_shared"),
                               ("bigquery-public-data.crypto_ethereum.traces", "raw_shared"),
                               ("bigquery-public-data.crypto_ethereum.traces", "public.raw_shared_20")]:
            with pytest.raises(psycopg.errors.DuplicateObject) as error:
                db.execute(f"SELECT * FROM token_sync.add_table('{source}', '{target}')")
            assert error.value.diag.message_primary == (
                f"the target table {'public.raw_shared_20' if target.endswith('20') else 'public.raw_shared'} "
                f"would share its rows with {blocks}")
        # A name PostgreSQL would cut could become another registered table's: refused.
        with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
            db.execute(f"SELECT * FROM token_sync.add_table('bigquery-public-data.crypto_ethereum.logs', "
                       f"'public.{'x' * 64}')")
        assert "has a name part of 64 bytes, and PostgreSQL keeps 63" in error.value.diag.message_primary
        # The same source again updates its row.
        db.execute("SELECT * FROM token_sync.add_table('bigquery-public-data.crypto_ethereum.blocks', 'public.raw_shared')")
        assert db.execute("SELECT source_table FROM token_sync.tables").fetchall() == [
            ("bigquery-public-data.crypto_ethereum.blocks",)]
    finally:
        db.execute("TRUNCATE token_sync.tables")
        db.execute("DROP TABLE IF EXISTS public.raw_shared")


def test_the_runner_cannot_write_the_ledger_yet_its_syncs_are_recorded(db, fake_google, psql, cluster):
    fake_google.rows = [to_fake(token(1, MOMENT))]
    db.execute("SELECT token_sync_day('2026-11-19')")
    psql("sql/grant_runner_role.sql")
    db.execute("DROP ROLE IF EXISTS ledger_runner")
    db.execute("CREATE ROLE ledger_runner LOGIN IN ROLE token_sync_runner")
    db.execute(f"ALTER ROLE ledger_runner SET token_sync.api_url = '{fake_google.base_url}'")
    db.execute("ALTER ROLE ledger_runner SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
    try:
        with cluster.connect(user="ledger_runner") as runner:
            assert runner.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (1,)
            for forgery in ["INSERT INTO token_sync.runs (day, target_table, status, started_at) "
                            "VALUES ('2026-11-18', 'public.raw_tokens', 'succeeded', now())",
                            "UPDATE token_sync.runs SET status = 'succeeded'",
                            "DELETE FROM token_sync.runs"]:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    runner.execute(forgery)
            assert runner.execute("SELECT day::text, last_attempt_status FROM token_sync.day_status ORDER BY day").fetchall() == [
                ("2026-11-19", "succeeded"), (DAY, "succeeded")]
    finally:
        db.execute("DROP OWNED BY ledger_runner")
        db.execute("DROP ROLE ledger_runner")


def test_a_column_of_the_users_own_is_not_taken_over_by_a_source_column_of_its_name(db, fake_google):
    fake_google.rows = [to_fake(token(1, MOMENT))]
    db.execute(f"SELECT token_sync_day('{DAY}')")
    db.execute("ALTER TABLE public.raw_tokens ADD COLUMN fee text")
    db.execute("UPDATE public.raw_tokens SET fee = 'mine'")
    fake_google.schema = list(SCHEMA) + [("fee", "STRING")]
    fake_google.rows = [dict(to_fake(token(1, MOMENT)), fee="theirs")]
    seen = notices(db)
    with pytest.raises(psycopg.errors.DuplicateColumn) as error:
        db.execute(f"SELECT * FROM token_sync_day('{DAY}')")
    assert error.value.diag.message_primary == (
        'the source gained a column fee, and the target table public.raw_tokens has a column of that name of its own')
    assert error.value.diag.message_hint.endswith(
        "COMMENT ON COLUMN public.raw_tokens.\"fee\" IS 'token_sync: mirrors the source column fee (text)'.")
    assert seen == []
    assert db.execute("SELECT fee FROM public.raw_tokens").fetchall() == [("mine",)]
    # Adopted as the hint says, the column is the source's from then on.
    db.execute("COMMENT ON COLUMN public.raw_tokens.fee IS 'token_sync: mirrors the source column fee (text)'")
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (1,)
    assert db.execute("SELECT fee FROM public.raw_tokens").fetchall() == [("theirs",)]


def test_no_sql_text_in_src_puts_a_name_between_quotes_by_hand():
    """The guard behind "every name goes through src/quote.rs": a string literal of SQL
    (it has an SQL keyword) that opens a quote of either language right before a format
    placeholder ('{x}, \\"{x}, `{x}) pastes a value between quotes by hand."""
    import pathlib
    import re
    keyword = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|ALTER|CREATE|COMMENT|FROM|WHERE|DROP|GRANT)\b")
    by_hand = re.compile(r"""('\{[^}]*\}|\\"\{[^}]*\}|"\{[^}]*\}|`\{[^}]*\})""")
    literal = re.compile(r'r#"(?:.|\n)*?"#|r"[^"]*"|"(?:[^"\\]|\\.)*"')
    found = []
    for path in sorted((pathlib.Path(__file__).resolve().parent.parent / "src").rglob("*.rs")):
        text = path.read_text()
        for match in literal.finditer(text):
            if keyword.search(match.group(0)) and by_hand.search(match.group(0)):
                found.append(f"{path.name}:{text[:match.start()].count(chr(10)) + 1}")
    assert found == []
    # The guard sees what it guards against.
    assert by_hand.search(r'"COMMENT ON COLUMN {t}.{c} IS \'{comment}\'"'.replace("\\'", "'"))


def test_verify_refuses_a_caller_that_row_security_restricts(db, fake_google, cluster):
    fake_google.rows = [to_fake(token(n, MOMENT + dt.timedelta(minutes=n))) for n in (1, 2, 3)]
    db.execute(f"SELECT token_sync_day('{DAY}')")
    db.execute("DROP ROLE IF EXISTS reader")
    db.execute("CREATE ROLE reader LOGIN")
    db.execute(f"ALTER ROLE reader SET token_sync.api_url = '{fake_google.base_url}'")
    db.execute("ALTER ROLE reader SET token_sync.source_table = 'bigquery-public-data.crypto_ethereum.tokens'")
    db.execute("GRANT EXECUTE ON FUNCTION token_verify_day(date) TO reader")
    db.execute("GRANT SELECT ON public.raw_tokens TO reader")
    db.execute("ALTER TABLE public.raw_tokens ENABLE ROW LEVEL SECURITY")
    db.execute("CREATE POLICY one_block ON public.raw_tokens TO reader USING (block_number = 1)")
    try:
        with cluster.connect(user="reader") as reader:
            assert reader.execute("SELECT count(*) FROM public.raw_tokens").fetchone() == (1,)
            with pytest.raises(psycopg.errors.FeatureNotSupported) as error:
                reader.execute(f"SELECT * FROM token_verify_day('{DAY}')")
            assert error.value.diag.message_primary.startswith("row-level security applies to public.raw_tokens")
    finally:
        db.execute("ALTER TABLE public.raw_tokens DISABLE ROW LEVEL SECURITY")
        db.execute("DROP OWNED BY reader")
        db.execute("DROP ROLE reader")


def test_a_target_of_another_role_with_json_verifies_and_one_whose_owner_cannot_use_its_schema_is_refused(
        db, emulator, mallory):
    source = TypedSource(emulator, db, [field("block_timestamp", "TIMESTAMP", "REQUIRED"), field("j", "JSON")])
    source.insert([{"block_timestamp": f"{DAY} 10:00:00.000000 UTC", "j": '{"a":[1,2.5]}'}])
    assert db.execute(f"SELECT rows_loaded FROM token_sync_day('{DAY}')").fetchone() == (1,)
    db.execute("ALTER TABLE public.raw_typed OWNER TO mallory")
    # Read as mallory, the fingerprint calls token_sync.canonical_json, which anyone may.
    assert db.execute(f"SELECT matches FROM token_verify_day('{DAY}')").fetchone() == (True,)
    assert db.execute(f"SELECT status FROM token_backfill('{DAY}', '{DAY}')").fetchone() == ("unchanged",)
    db.execute("CREATE SCHEMA private_schema")
    db.execute("ALTER TABLE public.raw_typed SET SCHEMA private_schema")
    db.execute("SET token_sync.target_table = 'private_schema.raw_typed'")
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as error:
            db.execute(f"SELECT * FROM token_sync_day('{DAY}')")
        assert error.value.diag.message_primary == (
            "the owner of private_schema.raw_typed may not use its schema, and token_sync reads and writes "
            "the table as its owner")
    finally:
        db.execute("DROP SCHEMA private_schema CASCADE")
        db.execute("RESET token_sync.target_table")
