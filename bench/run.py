"""token_sync's benchmark: one generated day of N rows of tokens (or, with --table
transactions, of a transactions-like table; bench/day_data.py), loaded into the same table
in one run, side by side:

  1. token_sync_day from a local BigQuery REST source at wire speed (bench/source_server.py),
     and at the default settings: a first load, a re-sync of the unchanged day, a re-sync
     after BigQuery changed one row (its partition written: one hour rewritten), and after it
     changed a row in every hour (the whole day rewritten from its files), and one
     after a local change where the partition's metadata cannot be read (compared); and a
     first load from a local Storage Read API at wire speed (bench/storage_server.py: Arrow
     batches serialized up front), at the defaults;
  2. the same with a fixed latency per page request, fetch_concurrency 1 and 8;
  3. psql \\copy of the same rows from a file (the ceiling);
  4. the old pipeline: the BigQuery Python client into pandas, DataFrame.to_sql (tokens);
  5. token_sync_day from the bqemulator emulator (a real REST implementation; tokens).

Each is run --runs times (the median counts) on an emptied table, and each run checks that
all N rows arrived. For token_sync it also samples the backend's private resident memory
(RssAnon in /proc/PID/status) every 5 ms during the call and reports the peak growth.

    bash bench/run.sh                      # 1,000,000 rows, 3 runs, 200 ms latency
    bash bench/run.sh --rows 20000 --runs 1
    bash bench/run.sh --table transactions
"""

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import day_data  # noqa: E402
import requests  # noqa: E402
from bq_emulator import Emulator  # noqa: E402
from cluster import DATABASE, Cluster, free_port  # noqa: E402

DAY = dt.date(2026, 11, 20)
# A local change to one row of the day, which a comparison must notice and rewrite.
CHANGE_ONE_ROW = {"tokens": "name = name || ' changed'", "transactions": "input = input || '00'",
                  "wide": "payload = payload || '00'"}


def start_source(rows, latency_ms, table):
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "source_server.py"), "--rows", str(rows),
                                "--port", str(port), "--latency-ms", str(latency_ms), "--day", str(DAY),
                                "--table", table], stdout=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{port}"


def start_storage(rows, table):
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "storage_server.py"), "--rows", str(rows),
                                "--port", str(port), "--day", str(DAY), "--table", table], stdout=subprocess.PIPE, text=True)
    return process, f"http://127.0.0.1:{port}"


def wait_serving(process, timeout=900):
    """Waits for the storage source's first line, which it prints once its batches are ready."""
    line = process.stdout.readline()
    if not line.startswith("serving"):
        raise RuntimeError(f"the storage source did not start: {line!r}")


def wait_ready(url, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/bigquery/v2/projects/billing/tables/x", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


def private_rss_kib(pid):
    """The backend's private resident memory. Not VmHWM/VmRSS: those count every page of
    shared_buffers the backend touches, which COPY into a table does by design."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


class PeakSampler:
    """Samples a process's private RSS every few milliseconds until stopped; keeps the peak."""

    def __init__(self, pid, interval=0.005):
        self.pid, self.interval = pid, interval
        self.peak = private_rss_kib(pid)
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            self.peak = max(self.peak, private_rss_kib(self.pid))
            time.sleep(self.interval)

    def stop(self):
        self.running = False
        self.thread.join()
        return max(self.peak, private_rss_kib(self.pid))


class Bench:
    def __init__(self, args, cluster):
        self.args = args
        self.cluster = cluster
        self.results = {}
        self.target = f"raw_{args.table}"

    def empty_table(self):
        with self.cluster.connect() as conn:
            if conn.execute(f"SELECT to_regclass('{self.target}')").fetchone()[0]:
                conn.execute(f"TRUNCATE {self.target}")
            conn.execute("CHECKPOINT")

    def count(self):
        with self.cluster.connect() as conn:
            return conn.execute(f"SELECT count(*) FROM {self.target}").fetchone()[0]

    def record(self, name, seconds, rss_kib=None, billed=None):
        rows = self.count()
        if rows != self.args.rows:
            raise RuntimeError(f"{name}: {rows} rows arrived, expected {self.args.rows}")
        self.results.setdefault(name, []).append({"seconds": seconds, "rss_kib": rss_kib, "billed": billed})
        rss = f", peak private RSS +{rss_kib / 1024:.1f} MiB" if rss_kib is not None else ""
        bill = f", {billed / 1024 / 1024:.0f} MB billed" if billed is not None else ""
        print(f"  {name}: {seconds:.3f} s{rss}{bill}", flush=True)

    def token_sync(self, name, url, concurrency=None, empty=True, expect_status="succeeded", storage_url=None,
                   expect_read_api="query", expect_notice=None):
        """Times one token_sync_day; concurrency None keeps the default settings. With a
        Storage Read API (`storage_url`), read_api's default (auto) reads through it. A
        NOTICE starting `expect_notice` must be raised (the path the day took)."""
        if empty:
            self.empty_table()
        with self.cluster.connect() as conn:
            notices = []
            conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
            conn.execute(f"SET token_sync.api_url = '{url}'")
            if storage_url:
                conn.execute(f"SET token_sync.storage_api_url = '{storage_url}'")
            if concurrency is not None:
                conn.execute(f"SET token_sync.fetch_concurrency = {concurrency}")
            pid = conn.info.backend_pid
            conn.execute("SELECT 1")
            before = private_rss_kib(pid)
            sampler = PeakSampler(pid)
            started = time.monotonic()
            conn.execute(f"SELECT token_sync_day('{DAY}')")
            seconds = time.monotonic() - started
            growth = sampler.stop() - before
            status, read_api, billed = conn.execute(
                "SELECT status, read_api, bytes_billed FROM token_sync.runs ORDER BY run_id DESC LIMIT 1").fetchone()
        if status != expect_status:
            raise RuntimeError(f"{name}: the day ended {status}, expected {expect_status}")
        if expect_notice and not any(notice.startswith(expect_notice) for notice in notices):
            raise RuntimeError(f"{name}: no NOTICE starting {expect_notice!r} (raised: {notices})")
        if status == "succeeded" and read_api != expect_read_api:
            raise RuntimeError(f"{name}: read through {read_api}, expected {expect_read_api}")
        self.record(name, seconds, growth, billed)

    def resyncs(self, url):
        """At the default settings: a first load, a re-sync of the day as it is (unchanged:
        its partition not written since), a re-sync after a write to the partition that
        changed one row (its hour rewritten), one after a row changed in every hour (all
        rewritten), and one after a local change where the partition's metadata cannot be
        read (compared, both sides at once, then rewritten)."""
        self.token_sync("token_sync_day, defaults: first load", url)
        with self.cluster.connect() as conn:
            conn.execute("CHECKPOINT")
        self.token_sync("token_sync_day, defaults: re-sync, unchanged day", url, empty=False,
                        expect_status="unchanged")
        for change, hours, name in [("one row", 1, "one row changed"), ("every hour", 24, "a row changed every hour")]:
            # BigQuery writes to the day's partition (the metadata says so), changing rows.
            requests.post(f"{url}/bench/written", json={"change": change}, timeout=60).raise_for_status()
            self.checkpoint()
            self.token_sync(f"token_sync_day, defaults: re-sync, {name}", url, empty=False,
                            expect_notice=f"token_sync: {DAY} differs from what the last load wrote in {hours} of its 24 hours")
        requests.post(f"{url}/bench/metadata", json={"readable": False}, timeout=60).raise_for_status()
        try:
            self.change_one_row()
            self.token_sync("token_sync_day, defaults: re-sync, one row changed, metadata unreadable (compared)",
                            url, empty=False, expect_notice="token_sync: BigQuery's metadata of the partition")
        finally:
            requests.post(f"{url}/bench/metadata", json={"readable": True}, timeout=60).raise_for_status()

    def change_one_row(self):
        with self.cluster.connect() as conn:
            conn.execute(f"UPDATE {self.target} SET {CHANGE_ONE_ROW[self.args.table]} WHERE ctid = "
                         f"(SELECT ctid FROM {self.target} ORDER BY block_number LIMIT 1)")
        self.checkpoint()

    def checkpoint(self):
        with self.cluster.connect() as conn:
            conn.execute(f"VACUUM {self.target}")
            conn.execute("CHECKPOINT")

    def psql_copy(self, path):
        columns = ", ".join(f["name"] for f in day_data.schema(self.args.table))
        self.empty_table()
        started = time.monotonic()
        subprocess.run(["psql", "-X", "-q", "-h", str(self.cluster.root), "-p", str(self.cluster.port), "-U", "postgres",
                        "-d", DATABASE, "-c", f"\\copy {self.target} ({columns}) FROM '{path}'"], check=True)
        self.record("psql \\copy", time.monotonic() - started)

    def old_pipeline(self, url):
        self.empty_table()
        started = time.monotonic()
        subprocess.run([sys.executable, str(ROOT / "bench" / "old_pipeline.py"), "--endpoint", url,
                        "--host", str(self.cluster.root), "--port", str(self.cluster.port), "--dbname", DATABASE],
                       check=True, stdout=subprocess.DEVNULL)
        self.record("python client + to_sql", time.monotonic() - started)

    def report(self):
        medians = {name: statistics.median(r["seconds"] for r in runs) for name, runs in self.results.items()}
        ceiling, old = medians.get("psql \\copy"), medians.get("python client + to_sql")
        print(f"\n{self.args.rows} rows, median of {self.args.runs} run(s), all in this run:\n")
        header = ("path", "seconds", "rows/s", "x copy", "vs to_sql", "RSS +MiB")
        print("{:44} {:>9} {:>10} {:>8} {:>10} {:>9}".format(*header))
        for name, seconds in medians.items():
            rss = [r["rss_kib"] for r in self.results[name] if r["rss_kib"] is not None]
            print(f"{name:44} {seconds:9.3f} {self.args.rows / seconds:10.0f} "
                  f"{seconds / ceiling if ceiling else float('nan'):8.2f} "
                  f"{old / seconds if old else float('nan'):9.1f}x "
                  f"{(max(rss) / 1024 if rss else float('nan')):9.1f}")
        return medians


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--table", choices=sorted(day_data.SOURCES), default="tokens")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--only-token-sync", action="store_true",
                        help="skip psql \\copy, the old pipeline and the emulator (quick memory checks)")
    parser.add_argument("--skip-slow", action="store_true",
                        help="skip the paths with latency, the old pipeline and the emulator (quick ratios to \\copy)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="token_sync_bench_"))
    os.chmod(workdir, 0o755)
    copy_file = workdir / "day.tsv"
    tokens = args.table == "tokens"
    print(f"generating {args.rows} rows of {args.table} on {DAY}", flush=True)
    with open(copy_file, "w", encoding="utf-8") as out:
        for row in day_data.rows(args.rows, DAY, args.table):
            out.write(day_data.copy_line(row, args.table))
    os.chmod(copy_file, 0o644)

    fast, fast_url = start_source(args.rows, 0, args.table)
    slow, slow_url = start_source(args.rows, args.latency_ms, args.table)
    storage, storage_url = start_storage(args.rows, args.table)
    emulator = Emulator(free_port(), free_port(), "billing", log_path=str(workdir / "emulator.log")).start()
    cluster = Cluster().start("max_wal_size=4GB", "shared_buffers=512MB")
    try:
        emulator.create_table()
        batch = []
        emulated = tokens and not (args.skip_slow or args.only_token_sync)
        for row in day_data.rows(args.rows if emulated else 0, DAY):
            values = dict(zip(["address", "symbol", "name", "decimals", "total_supply", "block_timestamp",
                               "block_number", "block_hash"], row))
            values["block_timestamp"] = (day_data.EPOCH + dt.timedelta(microseconds=row[5])).strftime(
                "%Y-%m-%d %H:%M:%S.%f UTC")
            batch.append(values)
            if len(batch) == 200_000:
                emulator.load_rows(batch)
                batch = []
        if batch:
            emulator.load_rows(batch)
        wait_ready(fast_url)
        wait_ready(slow_url)
        wait_serving(storage)
        with cluster.connect() as conn:
            for name, value in [("billing_project", "billing"), ("credentials", "none"),
                                ("http_timeout", "600"),
                                ("source_table", f"bigquery-public-data.crypto_ethereum.{args.table}"),
                                ("target_table", f"public.raw_{args.table}")]:
                conn.execute(f"ALTER DATABASE {DATABASE} SET token_sync.{name} = '{value}'")
        bench = Bench(args, cluster)
        print(f"warm-up (creates raw_{args.table})", flush=True)
        bench.token_sync("warm-up", fast_url, args.concurrency)
        del bench.results["warm-up"]
        for run in range(1, args.runs + 1):
            print(f"run {run}", flush=True)
            bench.token_sync(f"token_sync_day, no latency, concurrency {args.concurrency}", fast_url, args.concurrency)
            bench.resyncs(fast_url)
            bench.token_sync("token_sync_day, Storage Read API, defaults: first load", fast_url,
                             storage_url=storage_url, expect_read_api="storage")
            if not args.skip_slow:
                bench.token_sync(f"token_sync_day, {args.latency_ms} ms/page, concurrency 1", slow_url, 1)
                bench.token_sync(f"token_sync_day, {args.latency_ms} ms/page, concurrency {args.concurrency}",
                                 slow_url, args.concurrency)
            if args.only_token_sync:
                continue
            bench.psql_copy(copy_file)
            if not tokens or args.skip_slow:
                continue  # the old pipeline and the emulator's table are tokens'
            bench.old_pipeline(fast_url)
            bench.token_sync(f"token_sync_day from bqemulator, concurrency {args.concurrency}",
                             emulator.base_url, args.concurrency)
        medians = bench.report()
        size = day_data.logical_bytes(args.table, args.rows, DAY)
        print(f"\nthe day's logical size as BigQuery bills it: {size / 1e9:.3f} GB; at list prices "
              f"(on-demand, US): a query ${size / 2**40 * 6.25:.5f}, the Storage Read API ${size / 2**40 * 1.10:.5f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"table": args.table, "rows": args.rows, "runs": bench.results,
                                                   "medians": medians}, indent=1))
    finally:
        cluster.stop()
        emulator.stop()
        for process in (fast, slow, storage):
            process.terminate()


if __name__ == "__main__":
    main()
