"""One generated UTC day of raw_tokens-shaped rows, deterministic, with realistic lengths:
42-character addresses, 66-character hashes, symbols and names of a few words (some with
tabs, backslashes, non-ASCII and NUL-free), decimals, and supplies of up to 78 digits."""

import datetime as dt
import random

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
WORDS = ["Wrapped", "Ether", "Tether", "USD", "Chain", "Link", "Token", "Dai", "Stable", "Coin",
         "Shiba", "Inu", "Pepe", "Maker", "Aave", "Uniswap", "Gold", "Meta", "Verse", "Protocol"]


def rows(count, day):
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


def copy_line(row):
    """The row as a line of COPY text, as `psql \\copy` reads it."""
    def text(value):
        if value is None:
            return "\\N"
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    address, symbol, name, decimals, supply, micros, number, block_hash = row
    moment = EPOCH + dt.timedelta(microseconds=micros)
    return "\t".join([text(address), text(symbol), text(name), text(decimals), text(supply),
                      moment.strftime("%Y-%m-%d %H:%M:%S.%f+00"), str(number), text(block_hash)]) + "\n"
