"""The nightly schedule heals every day it failed: after the D-1 and D-2 syncs, the
catch-up tries again each stale day of its window, 1, 2, 4, ... nights apart, at most a
bounded number a night, and gives a day up, visibly, after token_sync.catch_up_tries.

The clock is compressed: the nights are passed explicitly, as the pg_cron jobs compute
them, and the fake server fails requests on demand."""

import datetime as dt
import random

import psycopg
import pytest

from helpers import UTC, notices, to_fake, token

SOURCE = "bigquery-public-data.crypto_ethereum.tokens"
FIRST_NIGHT = dt.date(2026, 10, 2)


@pytest.fixture
def registered(db, fake_google):
    db.execute("TRUNCATE token_sync.tables, token_sync.catch_up")
    db.execute("DROP TABLE IF EXISTS public.raw_nightly")
    db.execute("SET token_sync.max_retries = 1")
    db.execute(f"SELECT * FROM token_sync.add_table('{SOURCE}', 'public.raw_nightly')")
    yield db
    db.execute("TRUNCATE token_sync.tables, token_sync.catch_up")
    db.execute("DROP TABLE IF EXISTS public.raw_nightly")


class Upstream:
    """The source's rows as they reach BigQuery night after night: each night today's first
    rows, late rows for D-1 and, every third night, very late rows for D-2."""

    def __init__(self, fake):
        self.fake = fake
        self.number = 0

    def rows_for(self, day, count):
        for _ in range(count):
            self.number += 1
            moment = dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(seconds=self.number * 37 % 86_400)
            self.fake.rows.append(to_fake(token(self.number, moment)))

    def night(self, night, ordinal):
        self.rows_for(night, 3)
        self.rows_for(night - dt.timedelta(days=1), 2)
        if ordinal % 3 == 0:
            self.rows_for(night - dt.timedelta(days=2), 1)


def run_night(db, night):
    """The three jobs of schedule_registered.sql for `night`: D-1, D-2, then the catch-up.
    Returns the catch-up's rows as (day, status)."""
    for back in (1, 2):
        try:
            db.execute("SELECT * FROM token_sync.sync_all(%s)", (night - dt.timedelta(days=back),))
        except psycopg.Error:
            pass  # a night's job that failed is in cron.job_run_details; the ledger has the day
    return [(day, status) for _, day, status in
            db.execute("SELECT source_table, day, status FROM token_sync.catch_up(%s)", (night,)).fetchall()]


def stale(db):
    return db.execute("SELECT day, state, catch_up_tries FROM token_sync.stale_days "
                      "WHERE target_table = 'public.raw_nightly' ORDER BY day").fetchall()


def exact(db, day):
    return db.execute("SELECT matches FROM token_sync.verify_day(%s, %s)", (SOURCE, day)).fetchone()[0]


def test_a_month_of_nights_with_a_third_of_requests_failing_ends_exact_or_visibly_given_up(registered, fake_google):
    db = registered
    upstream = Upstream(fake_google)
    chance = random.Random(20261202)
    failing = {"on": True}
    fake_google.fault = lambda kind, n: {"status": 500} if failing["on"] and chance.random() < 0.3 else None
    nights = [FIRST_NIGHT + dt.timedelta(days=n) for n in range(30)]
    tried = 0
    for ordinal, night in enumerate(nights):
        upstream.night(night, ordinal)
        tried += len(run_night(db, night))
    # The schedule goes on after the month, BigQuery well again: every day still in its
    # retry schedule gets its next try.
    failing["on"] = False
    for ordinal, night in enumerate(nights[-1] + dt.timedelta(days=n) for n in range(1, 17)):
        upstream.night(night, ordinal)
        run_night(db, night)
    failed_attempts = db.execute("SELECT count(*) FROM token_sync.runs WHERE status = 'failed'").fetchone()[0]
    assert failed_attempts > 10, "the faults made days fail"
    assert tried > 0, "the catch-up had days to try"
    given_up = {day for day, state, _ in stale(db) if state == "given_up"}
    for day in [FIRST_NIGHT - dt.timedelta(days=1) + dt.timedelta(days=n) for n in range(30)]:
        assert day in given_up or exact(db, day), f"{day} is stale and not given up: {stale(db)}"
    assert {state for _, state, _ in stale(db)} <= {"given_up"}


def test_a_day_that_fails_one_night_is_healed_by_the_next_nights_catch_up(registered, fake_google):
    db = registered
    upstream = Upstream(fake_google)
    failing = {"on": False}
    fake_google.fault = lambda kind, n: {"status": 500} if failing["on"] else None
    night = FIRST_NIGHT
    upstream.night(night, 1)
    assert run_night(db, night) == []
    upstream.night(night + dt.timedelta(days=1), 3)  # with very late rows for its D-2
    failing["on"] = True   # the second night fails as a whole: both syncs and the catch-up
    seen = notices(db)
    before = night - dt.timedelta(days=1)
    assert run_night(db, night + dt.timedelta(days=1)) == [(before, "failed"), (night, "failed")]
    assert seen == [("WARNING", f"token_sync: {SOURCE} {day} failed: {message}")
                    for day in (night, before, before, night)
                    for message in [seen[0][1].split(" failed: ", 1)[1]]], seen
    assert stale(db) == [(before, "due", 1), (night, "due", 1)]
    failing["on"] = False
    third = night + dt.timedelta(days=2)
    upstream.night(third, 4)
    # The third night's D-2 heals `night`; its catch-up, the day before, which failed its D-2.
    assert run_night(db, third) == [(before, "succeeded")]
    assert stale(db) == []
    assert db.execute("SELECT count(*) FROM token_sync.catch_up").fetchone() == (0,)
    for day in (night - dt.timedelta(days=1), night, third - dt.timedelta(days=1)):
        assert exact(db, day), day


def test_a_permanent_error_is_tried_at_growing_gaps_then_given_up(registered, fake_google):
    db = registered
    upstream = Upstream(fake_google)
    broken = FIRST_NIGHT
    nights = [broken + dt.timedelta(days=n) for n in range(1, 25)]
    tries = []
    for ordinal, night in enumerate(nights):
        upstream.night(night, ordinal)
        if night == broken + dt.timedelta(days=1):
            bad = to_fake(token(999_999, dt.datetime.combine(broken, dt.time(12), UTC)))
            fake_google.rows.append(dict(bad, block_number="not a number"))
        seen = notices(db)
        rows = run_night(db, night)
        tries += [(night - broken).days for day, _ in rows if day == broken]
        assert all(day == broken for day, _ in rows), rows
        # One WARNING for each failure of the day: its D-1 or D-2 sync, and each catch-up try.
        failures = sum(night - dt.timedelta(days=back) == broken for back in (1, 2)) + len(rows)
        assert [m.split(" failed: ")[0] for severity, m in seen if severity == "WARNING"] == [
            f"token_sync: {SOURCE} {broken}"] * failures, seen
    # Tried the night its D-1 failed, then 1, 2, 4 and 8 nights later: five tries, given up.
    assert tries == [1, 2, 4, 8, 16]
    (day, state, count, error, next_try), = db.execute(
        "SELECT day, state, catch_up_tries, last_error, next_try_on FROM token_sync.stale_days").fetchall()
    assert (day, state, count, next_try) == (broken, "given_up", 5, None)
    assert "not a number" in error
    assert db.execute("SELECT status FROM token_sync.catch_up(%s)", (nights[-1],)).fetchall() == []


def test_a_long_outage_is_caught_up_a_bounded_number_of_days_a_night(registered, fake_google):
    db = registered
    db.execute("SET token_sync.catch_up_max_days = 3")
    db.execute("SET token_sync.catch_up_tries = 10")
    upstream = Upstream(fake_google)
    down = {"on": False}
    fake_google.fault = lambda kind, n: {"status": 503} if down["on"] else None
    nights = [FIRST_NIGHT + dt.timedelta(days=n) for n in range(28)]
    per_night = []
    for ordinal, night in enumerate(nights):
        down["on"] = 3 <= ordinal < 13
        upstream.night(night, ordinal)
        per_night.append(len(run_night(db, night)))
    assert max(per_night) == 3, per_night
    assert per_night[13] == 3, f"more days are due after the outage than a night takes: {per_night}"
    assert stale(db) == []
    for day in [FIRST_NIGHT - dt.timedelta(days=1) + dt.timedelta(days=n) for n in range(28)]:
        assert exact(db, day), day


def test_a_try_that_a_timeout_ends_counts_and_waits_like_any_other(registered, fake_google):
    db = registered
    upstream = Upstream(fake_google)
    night = FIRST_NIGHT
    upstream.night(night, 1)
    fake_google.fault = lambda kind, n: {"status": 500}
    for back in (1, 2):  # the night's D-1 and D-2 fail; its catch-up has not run yet
        db.execute("SELECT * FROM token_sync.sync_all(%s)", (night - dt.timedelta(days=back),))
    assert [day for day, _, _ in stale(db)] == [night - dt.timedelta(days=2), night - dt.timedelta(days=1)]
    fake_google.fault = lambda kind, n: {"delay": 5} if kind == "table" else None
    db.execute("SET statement_timeout = '1s'")
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.execute("SELECT * FROM token_sync.catch_up(%s)", (night,))
    db.execute("RESET statement_timeout")
    fake_google.fault = lambda kind, n: None
    # The first day's try was under way when the statement ended: it counts, and waits.
    first = night - dt.timedelta(days=2)
    assert db.execute("SELECT day, tries, next_try_on, last_error FROM token_sync.catch_up").fetchall() == [
        (first, 1, night + dt.timedelta(days=1), "the try did not end (cancelled, timed out or killed)")]
    assert run_night(db, night + dt.timedelta(days=1)) == [(first, "succeeded")]
