"""Rows and waiting, shared by the tests."""

import datetime as dt
import time

from fake_google import unix_micros

UTC = dt.timezone.utc


def token(number, moment, **fields):
    """A token row; `moment` is an aware datetime."""
    row = {
        "address": f"0x{number:040x}",
        "symbol": f"T{number}",
        "name": f"Token {number}",
        "decimals": "18",
        "total_supply": str(10 ** 24 + number),
        "block_timestamp": moment,
        "block_number": number,
        "block_hash": f"0x{number:064x}",
    }
    row.update(fields)
    return row


def to_emulator(row):
    out = dict(row)
    out["block_timestamp"] = row["block_timestamp"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    return out


def to_fake(row):
    out = dict(row)
    out["block_timestamp"] = unix_micros(row["block_timestamp"])
    return out


def wait_until(predicate, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def cancel_later(cluster, pid, ready):
    """Cancels backend `pid` from another session once `ready()` returns, in a thread."""
    import threading

    def cancel():
        ready()
        with cluster.connect() as other:
            other.execute("SELECT pg_cancel_backend(%s)", (pid,))
    threading.Thread(target=cancel, daemon=True).start()


def notices(conn):
    """What the server says to `conn` from now on besides errors, as (severity, message)."""
    seen = []
    conn.add_notice_handler(lambda diag: seen.append((diag.severity_nonlocalized, diag.message_primary)))
    return seen
