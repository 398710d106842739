"""The BigQuery emulator (PyPI bqemulator), started offline and seeded with token rows.

bqemulator downloads DuckDB's spatial extension when it starts, which fails without
internet; token_sync needs no GEOGRAPHY, so `launch` replaces that step with a no-op and
then runs the emulator's own command line.

    python scripts/bq_emulator.py serve --port 9050 --seed-days 8   # runs until killed
    python scripts/bq_emulator.py launch start --rest-port 9050 ...  # the bare emulator
"""

import argparse
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time

import requests

PUBLIC_PROJECT = "bigquery-public-data"
DATASET = "crypto_ethereum"

TOKENS_SCHEMA = [
    ("address", "STRING", "REQUIRED"),
    ("symbol", "STRING", "NULLABLE"),
    ("name", "STRING", "NULLABLE"),
    ("decimals", "STRING", "NULLABLE"),
    ("total_supply", "STRING", "NULLABLE"),
    ("block_timestamp", "TIMESTAMP", "REQUIRED"),
    ("block_number", "INTEGER", "REQUIRED"),
    ("block_hash", "STRING", "REQUIRED"),
]


def launch(argv):
    from bqemulator.storage import engine

    engine.DuckDBEngine._load_spatial = lambda self, *args, **kwargs: None
    from bqemulator import cli

    sys.argv = ["bqemulator", *argv]
    sys.exit(cli.main())


class Emulator:
    def __init__(self, port, grpc_port=None, billing_project="billing", log_path=None):
        self.port = port
        self.grpc_port = grpc_port or port + 1
        self.billing_project = billing_project
        self.log_path = log_path
        self.process = None

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def api(self, path):
        return f"{self.base_url}/bigquery/v2/projects/{path}"

    def start(self, timeout=90):
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "launch", "start",
             "--rest-port", str(self.port), "--grpc-port", str(self.grpc_port),
             "--project", self.billing_project, "--log-level", "warning"],
            stdout=log, stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bqemulator exited with {self.process.returncode}; see {self.log_path}")
            try:
                if requests.get(self.api(f"{self.billing_project}/datasets"), timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"bqemulator did not answer on port {self.port} within {timeout}s")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def create_table(self, table="tokens", required=True, project=PUBLIC_PROJECT, dataset=DATASET,
                     fields=None, partition_field="block_timestamp"):
        """Creates (or re-creates) a day-partitioned table, by default with the tokens schema;
        `fields` are BigQuery field resources for any other."""
        response = requests.post(self.api(f"{project}/datasets"), json={
            "datasetReference": {"projectId": project, "datasetId": dataset}})
        if response.status_code not in (200, 409):
            response.raise_for_status()
        requests.delete(self.api(f"{project}/datasets/{dataset}/tables/{table}"))
        if fields is None:
            fields = [{"name": name, "type": kind, "mode": mode if required else "NULLABLE"}
                      for name, kind, mode in TOKENS_SCHEMA]
        response = requests.post(self.api(f"{project}/datasets/{dataset}/tables"), json={
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": fields},
            "timePartitioning": {"type": "DAY", "field": partition_field},
        })
        response.raise_for_status()
        return f"{project}.{dataset}.{table}"

    def insert_rows(self, rows, table="tokens", project=PUBLIC_PROJECT, dataset=DATASET, batch=5000):
        url = self.api(f"{project}/datasets/{dataset}/tables/{table}/insertAll")
        for start in range(0, len(rows), batch):
            chunk = [{"json": row} for row in rows[start:start + batch]]
            response = requests.post(url, json={"rows": chunk})
            response.raise_for_status()
            errors = response.json().get("insertErrors")
            if errors:
                raise RuntimeError(f"insertAll refused rows: {errors[:3]}")

    def load_rows(self, rows, table="tokens", project=PUBLIC_PROJECT, dataset=DATASET):
        """Loads many rows at once with a load job (multipart/related upload of NDJSON)."""
        import json
        boundary = "token_sync_boundary"
        job = {"configuration": {"load": {
            "sourceFormat": "NEWLINE_DELIMITED_JSON", "writeDisposition": "WRITE_APPEND",
            "destinationTable": {"projectId": project, "datasetId": dataset, "tableId": table}}}}
        ndjson = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows).encode()
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps(job)}\r\n"
                f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").encode() \
            + ndjson + f"\r\n--{boundary}--\r\n".encode()
        response = requests.post(f"{self.base_url}/upload/bigquery/v2/projects/{self.billing_project}/jobs"
                                 "?uploadType=multipart", data=body,
                                 headers={"Content-Type": f"multipart/related; boundary={boundary}"})
        response.raise_for_status()
        error = response.json().get("status", {}).get("errorResult")
        if error:
            raise RuntimeError(f"load job failed: {error}")

    def delete_rows(self, where, table="tokens", project=PUBLIC_PROJECT, dataset=DATASET):
        """Runs a DML DELETE on the source, as rows disappearing upstream would."""
        self.run(f"DELETE FROM `{project}.{dataset}.{table}` WHERE {where}")

    def add_column(self, name, kind, table="tokens", project=PUBLIC_PROJECT, dataset=DATASET):
        """Adds a NULLABLE column to the source, as a table gaining a field upstream would.
        The emulator's ALTER TABLE changes the stored rows but not the schema tables.get
        returns, and tables.patch the schema but not the rows: both, as BigQuery's one DDL."""
        self.run(f"ALTER TABLE `{project}.{dataset}.{table}` ADD COLUMN {name} {kind}")
        url = self.api(f"{project}/datasets/{dataset}/tables/{table}")
        fields = requests.get(url).json()["schema"]["fields"]
        legacy = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN"}.get(kind, kind)
        fields.append({"name": name, "type": legacy, "mode": "NULLABLE"})
        requests.patch(url, json={"schema": {"fields": fields}}).raise_for_status()

    def run(self, statement):
        response = requests.post(self.api(f"{self.billing_project}/queries"), json={
            "query": statement, "useLegacySql": False,
        })
        response.raise_for_status()
        if response.json().get("errors"):
            raise RuntimeError(response.json()["errors"])


def bq_timestamp(moment):
    """A TIMESTAMP as the emulator's insertAll accepts it."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def sample_rows(day, count):
    """Deterministic token rows for one UTC day, shaped like the real table's."""
    rng = random.Random(day.toordinal())
    names = ["Tether USD", "Wrapped Ether", "Uniswap", "Chainlink Token", "Dai Stablecoin",
             "Shiba Inu", "Pepe", "Maker", "Aave Token", "Ampleforth"]
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    first_block = 18_000_000 + (day.toordinal() - dt.date(2023, 1, 1).toordinal()) * 7200
    rows = []
    for i in range(count):
        moment = start + dt.timedelta(microseconds=rng.randrange(86_400 * 1_000_000))
        name = rng.choice(names)
        rows.append({
            "address": "0x%040x" % rng.getrandbits(160),
            "symbol": "".join(w[0] for w in name.split()).upper() if i % 11 else None,
            "name": name if i % 17 else name + "\u0000\u0000",
            "decimals": rng.choice(["18", "6", "8", "0", None, "-1"]),
            "total_supply": str(rng.getrandbits(rng.choice([64, 128, 256]))),
            "block_timestamp": bq_timestamp(moment),
            "block_number": first_block + int((moment - start).total_seconds() // 12),
            "block_hash": "0x%064x" % rng.getrandbits(256),
        })
    return rows


def serve(args):
    # Stop the emulator child too when this process is told to stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    emulator = Emulator(args.port, args.grpc_port, args.billing_project, log_path=args.log).start()
    emulator.create_table()
    last_day = dt.date.fromisoformat(args.end_day) if args.end_day else \
        dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    total = 0
    for offset in range(args.seed_days):
        day = last_day - dt.timedelta(days=offset)
        rows = sample_rows(day, args.rows_per_day)
        emulator.insert_rows(rows)
        total += len(rows)
    print(f"bqemulator on {emulator.base_url}: {total} sample rows for "
          f"{last_day - dt.timedelta(days=args.seed_days - 1)}..{last_day}", flush=True)
    try:
        emulator.process.wait()
    finally:
        emulator.stop()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "launch":
        launch(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="start the emulator, seed sample rows, run until killed")
    serve_parser.add_argument("--port", type=int, default=9050)
    serve_parser.add_argument("--grpc-port", type=int, default=None)
    serve_parser.add_argument("--billing-project", default="billing")
    serve_parser.add_argument("--seed-days", type=int, default=8)
    serve_parser.add_argument("--rows-per-day", type=int, default=500)
    serve_parser.add_argument("--end-day", default=None, help="last seeded day, default yesterday (UTC)")
    serve_parser.add_argument("--log", default=None)
    args = parser.parse_args()
    serve(args)


if __name__ == "__main__":
    main()
