"""token_sync's backfill benchmark: a year of days (--days, default 365) of generated tokens
(--rows a day, default 2,000), from a local BigQuery REST source that answers each day's
query with that day's rows and waits as real BigQuery does: --job-ms (default 2,000) per
query job, --page-ms (default 100) per page or metadata request. Timed, side by side in one
run: `token_backfill(from_day, to_day, parallel)` at parallel 1, 4 and 8, each on an
emptied table, each checked (every day succeeded, every row arrived), --runs times (the
median counts). At parallel 1 the days are one after another, as the two-argument call.

    target/venv/bin/python bench/backfill.py [--days 365] [--rows 2000] [--runs 3]
"""

import argparse
import datetime as dt
import json
import statistics
import sys
import threading
import time
import urllib.parse
from http.server import ThreadingHTTPServer
from pathlib import Path

import source_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from cluster import DATABASE, Cluster, free_port  # noqa: E402

LAST_DAY = dt.date(2026, 11, 30)


class Days:
    """Each day's generated rows, made when first asked for, and the day of each job."""

    def __init__(self, rows):
        self.rows = rows
        self.lock = threading.Lock()
        self.sources = {}
        self.job_days = {}
        self.table = source_server.table_resource("tokens")

    def source(self, day):
        with self.lock:
            if day not in self.sources:
                self.sources[day] = source_server.Source(self.rows, day, 0, "tokens")
            return self.sources[day]

    def job(self, day):
        with self.lock:
            job_id = f"backfill_{len(self.job_days) + 1}"
            self.job_days[job_id] = day
            return job_id


def query_day(body):
    for parameter in body.get("queryParameters", []):
        if parameter.get("parameterType", {}).get("type") == "DATE":
            return dt.date.fromisoformat(parameter["parameterValue"]["value"])
    raise ValueError("a query without its day")


def handler(days, job_seconds, page_seconds):
    class Handler(source_server.handler(None)):
        """source_server's, answering each request from its day's rows."""

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not urllib.parse.urlsplit(self.path).path.endswith("/queries"):
                return self.send(b'{"error":{"code":404,"message":"not served"}}', 404)
            day = query_day(body)
            source = days.source(day)
            job_id = days.job(day)
            if source_server.is_partitions_query(body) or source_server.is_summary_query(body):
                time.sleep(page_seconds)
                reference = {"projectId": "billing", "jobId": job_id, "location": "US"}
                answer = source_server.partitions_answer(reference, len(source.rows), source.written) \
                    if source_server.is_partitions_query(body) else source_server.summary_answer(reference, *source.summary)
                return self.send(json.dumps(answer).encode())
            time.sleep(job_seconds)
            self.send(source.page(job_id, 0, int(body.get("maxResults") or source_server.MAX_PAGE_ROWS)))

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            time.sleep(page_seconds)
            parts = url.path.strip("/").split("/")
            if "queries" in parts:  # jobs.getQueryResults
                start = int(query.get("startIndex", query.get("pageToken", ["0"]))[0])
                size = int(query.get("maxResults", [str(source_server.MAX_PAGE_ROWS)])[0])
                day = days.job_days.get(parts[-1])
                if day is None:
                    return self.send(b'{"error":{"code":404,"message":"no such job"}}', 404)
                return self.send(days.source(day).page(parts[-1], start, size))
            if "tables" in parts:  # tables.get
                return self.send(json.dumps({**days.table, "numRows": "0"}).encode())
            self.send(b'{"error":{"code":404,"message":"not served"}}', 404)
    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--job-ms", type=int, default=2000)
    parser.add_argument("--page-ms", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    first_day = LAST_DAY - dt.timedelta(days=args.days - 1)
    days = Days(args.rows)
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler(days, args.job_ms / 1000, args.page_ms / 1000))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    # Room for 8 workers, each with a moment of a ledger writer, beside pg_cron.
    cluster = Cluster().start("max_worker_processes=24", "shared_buffers=512MB")
    results = {}
    try:
        with cluster.connect() as conn:
            for name, value in [("billing_project", "billing"), ("credentials", "none"), ("api_url", url),
                                ("http_timeout", "600"), ("read_api", "query"),
                                ("source_table", "bigquery-public-data.crypto_ethereum.tokens")]:
                conn.execute(f"ALTER DATABASE {DATABASE} SET token_sync.{name} = '{value}'")
        with cluster.connect() as conn:
            conn.execute("SELECT token_sync_day(%s)", (first_day - dt.timedelta(days=1),))  # creates the table
        for run in range(1, args.runs + 1):
            for parallel in args.parallel:
                with cluster.connect() as conn:
                    conn.execute("TRUNCATE public.raw_tokens")
                    started = time.monotonic()
                    statuses = conn.execute(
                        "SELECT status, count(*) FROM token_backfill(%s, %s, %s) GROUP BY 1",
                        (first_day, LAST_DAY, parallel)).fetchall()
                    seconds = time.monotonic() - started
                    rows = conn.execute("SELECT count(*) FROM public.raw_tokens").fetchone()[0]
                if statuses != [("succeeded", args.days)] or rows != args.days * args.rows:
                    raise SystemExit(f"parallel {parallel}: {statuses}, {rows} rows")
                results.setdefault(parallel, []).append(seconds)
                print(f"run {run}, parallel {parallel}: {seconds:.1f} s", flush=True)
    finally:
        cluster.stop()
        server.shutdown()
    base = statistics.median(results[args.parallel[0]])
    print(f"\n{args.days} days of {args.rows} rows, {args.job_ms} ms a job, {args.page_ms} ms a page, "
          f"median of {args.runs}")
    print("| parallel | seconds | days/minute | × parallel 1 |")
    print("|---|---|---|---|")
    for parallel in args.parallel:
        median = statistics.median(results[parallel])
        print(f"| {parallel} | {median:.1f} | {args.days / median * 60:.1f} | {median / base:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "seconds": results}, indent=1))


if __name__ == "__main__":
    main()
