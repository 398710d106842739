"""One generated UTC day of rows, deterministic, with realistic lengths, for three tables:

- tokens: 42-character addresses, 66-character hashes, symbols and names of a few words
  (some with tabs, backslashes, non-ASCII and NUL-free), decimals, and supplies of up to
  78 digits;
- transactions (crypto_ethereum's column set as in tests/support/crypto_ethereum.py):
  hashes, addresses, a NUMERIC value in wei, gas figures, and call data of 10 to 2,000 hex
  characters (most transfers carry a little, contract calls more);
- wide: an address, a payload of 100,000 hex characters, a timestamp and a block number
  (rows whose one value is larger than most pages of tokens).

Each table has a schema (BigQuery fields), a generator of rows as tuples in the schema's
order (TIMESTAMP as Unix microseconds), and COPY lines of the same rows."""

import datetime as dt
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
from crypto_ethereum import TABLES  # noqa: E402
from fake_google import REQUIRED, SCHEMA as TOKENS_SCHEMA  # noqa: E402

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
WORDS = ["Wrapped", "Ether", "Tether", "USD", "Chain", "Link", "Token", "Dai", "Stable", "Coin",
         "Shiba", "Inu", "Pepe", "Maker", "Aave", "Uniswap", "Gold", "Meta", "Verse", "Protocol"]


def tokens_rows(count, day):
    """Yields (address, symbol, name, decimals, total_supply, unix_micros, block_number, block_hash)."""
    rng = random.Random(f"{day}:{count}")
    start = int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp()) * 1_000_000
    step = 86_400 * 1_000_000 // max(count, 1)
    for i in range(count):
        name = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        if i % 97 == 0:
            name += "\t\\ é 🚀"
        symbol = "".join(word[0] for word in name.split()).upper() if i % 13 else None
        yield (
            "0x%040x" % rng.getrandbits(160),
            symbol,
            name,
            rng.choice(["18", "6", "8", "0", None]),
            str(rng.getrandbits(rng.choice([64, 128, 256]))),
            start + i * step + rng.randrange(step),
            18_000_000 + i,
            "0x%064x" % rng.getrandbits(256),
        )


def transactions_rows(count, day):
    """Yields rows in the order of TABLES["transactions"]'s fields."""
    rng = random.Random(f"transactions:{day}:{count}")
    start = int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp()) * 1_000_000
    step = 86_400 * 1_000_000 // max(count, 1)
    block_hash = "0x%064x" % rng.getrandbits(256)
    for i in range(count):
        if i % 150 == 0:
            block_hash = "0x%064x" % rng.getrandbits(256)
        calldata = rng.choice([0, 0, 68, 68, 136, 260, 580, 1000])
        yield (
            "0x%064x" % rng.getrandbits(256),                       # hash
            rng.randrange(2_000_000),                               # nonce
            "0x%040x" % rng.getrandbits(160),                       # from_address
            "0x%040x" % rng.getrandbits(160) if i % 50 else None,   # to_address (NULL: creation)
            str(rng.getrandbits(rng.choice([0, 40, 60, 80]))),      # value, wei
            rng.choice([21_000, 65_000, 150_000, 300_000]),         # gas
            rng.randrange(10**9, 10**11),                           # gas_price
            "0x" + "%0*x" % (calldata, rng.getrandbits(4 * calldata)) if calldata else "0x",  # input
            rng.choice([1, 1, 1, 0]),                               # receipt_status
            start + i * step + rng.randrange(step),                 # block_timestamp
            18_000_000 + i // 150,                                  # block_number
            block_hash,                                             # block_hash
        )


WIDE_FIELDS = [{"name": "address", "type": "STRING", "mode": "REQUIRED"},
               {"name": "payload", "type": "STRING", "mode": "NULLABLE"},
               {"name": "block_timestamp", "type": "TIMESTAMP", "mode": "REQUIRED"},
               {"name": "block_number", "type": "INTEGER", "mode": "REQUIRED"}]
WIDE_PAYLOAD_CHARS = 100_000


def wide_rows(count, day):
    """Yields (address, payload, unix_micros, block_number), the payload 100 KB of hex."""
    rng = random.Random(f"wide:{day}:{count}")
    start = int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp()) * 1_000_000
    step = 86_400 * 1_000_000 // max(count, 1)
    for i in range(count):
        yield (
            "0x%040x" % rng.getrandbits(160),
            "%0*x" % (WIDE_PAYLOAD_CHARS, rng.getrandbits(4 * WIDE_PAYLOAD_CHARS)),
            start + i * step + rng.randrange(step),
            18_000_000 + i,
        )


def logical_bytes(table, count, day):
    """The day's size as BigQuery bills it: STRING 2 + its UTF-8 bytes, INT64 and TIMESTAMP 8,
    NUMERIC 16, NULL 0 (BigQuery's data size calculation)."""
    sizes = {"INTEGER": 8, "TIMESTAMP": 8, "NUMERIC": 16}
    total = 0
    for row in rows(count, day, table):
        for value, field in zip(row, schema(table)):
            if value is not None:
                total += sizes.get(field["type"]) or 2 + len(str(value).encode())
    return total


def _kinds_and_modes(fields):
    return [(f["type"], f["mode"]) for f in fields]


TOKENS_FIELDS = [{"name": n, "type": t, "mode": "REQUIRED" if n in REQUIRED else "NULLABLE"} for n, t in TOKENS_SCHEMA]
SOURCES = {
    "tokens": (TOKENS_FIELDS, tokens_rows),
    "transactions": (TABLES["transactions"][0], transactions_rows),
    "wide": (WIDE_FIELDS, wide_rows),
}


def schema(table):
    return SOURCES[table][0]


def rows(count, day, table="tokens"):
    return SOURCES[table][1](count, day)


def copy_line(row, table="tokens"):
    """The row as a line of COPY text, as `psql \\copy` reads it."""
    def text(value, kind):
        if value is None:
            return "\\N"
        if kind == "TIMESTAMP":
            return (EPOCH + dt.timedelta(microseconds=value)).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        value = str(value)
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return "\t".join(text(value, kind) for value, (kind, _) in zip(row, _kinds_and_modes(schema(table)))) + "\n"
