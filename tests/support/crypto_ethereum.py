"""Tables shaped like those of BigQuery's crypto_ethereum dataset (a subset of each one's
columns, with their types, modes and partitioning column), and rows for them."""

import datetime as dt


def field(name, kind, mode="NULLABLE", fields=None):
    resource = {"name": name, "type": kind, "mode": mode}
    if fields:
        resource["fields"] = fields
    return resource


def _block_keyed(*columns):
    return [*columns, field("block_timestamp", "TIMESTAMP", "REQUIRED"), field("block_number", "INTEGER", "REQUIRED"),
            field("block_hash", "STRING", "REQUIRED")]


TABLES = {
    "blocks": ([field("timestamp", "TIMESTAMP", "REQUIRED"), field("number", "INTEGER", "REQUIRED"),
                field("hash", "STRING", "REQUIRED"), field("miner", "STRING"), field("difficulty", "NUMERIC"),
                field("size", "INTEGER"), field("gas_used", "INTEGER"),
                field("withdrawals", "RECORD", "REPEATED", [field("validator_index", "INTEGER"), field("amount", "STRING")])],
               "timestamp"),
    "transactions": (_block_keyed(
        field("hash", "STRING", "REQUIRED"), field("nonce", "INTEGER", "REQUIRED"), field("from_address", "STRING"),
        field("to_address", "STRING"), field("value", "NUMERIC"), field("gas", "INTEGER"),
        field("gas_price", "INTEGER"), field("input", "STRING"), field("receipt_status", "INTEGER")),
        "block_timestamp"),
    "logs": (_block_keyed(
        field("log_index", "INTEGER", "REQUIRED"), field("transaction_hash", "STRING", "REQUIRED"),
        field("address", "STRING"), field("data", "STRING"), field("topics", "STRING", "REPEATED")),
        "block_timestamp"),
    "token_transfers": (_block_keyed(
        field("token_address", "STRING", "REQUIRED"), field("from_address", "STRING"),
        field("to_address", "STRING"), field("value", "STRING"), field("transaction_hash", "STRING", "REQUIRED"),
        field("log_index", "INTEGER", "REQUIRED")), "block_timestamp"),
    "traces": (_block_keyed(
        field("transaction_hash", "STRING"), field("from_address", "STRING"), field("to_address", "STRING"),
        field("value", "NUMERIC"), field("input", "STRING"), field("trace_type", "STRING", "REQUIRED"),
        field("trace_address", "STRING"), field("status", "INTEGER"), field("trace_id", "STRING")),
        "block_timestamp"),
    "contracts": (_block_keyed(
        field("address", "STRING", "REQUIRED"), field("bytecode", "STRING"),
        field("function_sighashes", "STRING", "REPEATED"), field("is_erc20", "BOOLEAN"),
        field("is_erc721", "BOOLEAN")), "block_timestamp"),
    "tokens": (_block_keyed(
        field("address", "STRING", "REQUIRED"), field("symbol", "STRING"), field("name", "STRING"),
        field("decimals", "STRING"), field("total_supply", "STRING")), "block_timestamp"),
}


def stamp(moment):
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def row(table, number, moment, **overrides):
    """A row of `table` numbered `number` at `moment` (an aware datetime), every column set."""
    fields, time_column = TABLES[table]
    values = {}
    for f in fields:
        name, kind, mode = f["name"], f["type"], f["mode"]
        if name == time_column:
            values[name] = stamp(moment)
        elif mode == "REPEATED" and kind == "RECORD":
            values[name] = [{"validator_index": number, "amount": str(number * 10 ** 9)}]
        elif mode == "REPEATED":
            values[name] = [f"0x{number:064x}", f"0x{number + 1:064x}"]
        elif kind == "INTEGER":
            values[name] = number
        elif kind == "NUMERIC":
            values[name] = f"{number}.{number:09d}"
        elif kind == "BOOLEAN":
            values[name] = number % 2 == 0
        elif kind == "TIMESTAMP":
            values[name] = stamp(moment)
        else:
            values[name] = f"0x{number:040x}"
    values.update(overrides)
    return values
