"""A BigQuery REST source for the benchmark: serves one generated day of a table
(bench/day_data.py: tokens, transactions or wide) through tables.get, jobs.query and
jobs.getQueryResults (page tokens and startIndex) at wire speed, every row encoded once up
front, the day's summary (the comparison a re-sync makes) and its partition's metadata
(INFORMATION_SCHEMA.PARTITIONS: its rows and last write, which POST /bench/written moves to
now, as a write in BigQuery would, changing a row in the middle of the day if its body is
{"change": "one row"}, or the first row of each hour with {"change": "every hour"};
POST /bench/metadata {"readable": false} makes it answer 403 Access Denied), each query
job's creationTime, with an optional fixed latency per request to model real BigQuery's
round trips.

    python bench/source_server.py --rows 1000000 --port 9070 --latency-ms 200 [--table transactions|wide]
"""

import argparse
import datetime as dt
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import day_data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
from fake_google import fingerprint, is_partitions_query, is_summary_query, summary_answer  # noqa: E402
MAX_PAGE_ROWS = 100_000
# BigQuery caps a result page at about 10 MB, whatever maxResults asks for.
MAX_PAGE_BYTES = 10 * 1024 * 1024
DESTINATION = {"projectId": "billing", "datasetId": "_bench", "tableId": "result"}
# How a write in BigQuery changes a row: its column, and what is appended to the value.
CHANGE = {"tokens": ("name", " changed"), "transactions": ("input", "00"), "wide": ("payload", "00")}
HOUR_MICROS = 3_600_000_000


def cells(row):
    """A row as the REST API's JSON, once."""
    return json.dumps({"f": [{"v": None if v is None else str(v)} for v in row]},
                      ensure_ascii=False, separators=(",", ":")).encode()


def table_resource(table):
    return {"kind": "bigquery#table", "type": "TABLE", "schema": {"fields": day_data.schema(table)},
            "timePartitioning": {"type": "DAY", "field": "block_timestamp"}}


def job_resource(job_id, schema):
    return {"kind": "bigquery#job", "id": f"billing:US.{job_id}",
            "jobReference": {"projectId": "billing", "jobId": job_id, "location": "US"},
            "status": {"state": "DONE"},
            "configuration": {"query": {"query": "SELECT", "destinationTable": DESTINATION}},
            "statistics": {"query": {"totalBytesProcessed": "0", "schema": schema}}}


class Source:
    def __init__(self, count, day, latency, table):
        self.day = day
        self.latency = latency
        self.table = table_resource(table)
        self.schema = self.table["schema"]
        fields = self.schema["fields"]
        time_index = [f["name"] for f in fields].index("block_timestamp")
        self.rows = []
        stamps, fingerprint_sum = [], 0
        # The rows a write may change, by index: the middle one, and the first of each hour.
        self.middle, self.hour_firsts, self.changeable = count // 2, {}, {}
        for index, row in enumerate(day_data.rows(count, day, table)):
            self.rows.append(cells(row))
            stamps.append(row[time_index])
            fingerprint_sum += fingerprint(row, fields)
            self.hour_firsts.setdefault(row[time_index] // HOUR_MICROS, index)
            if index == self.middle or index == self.hour_firsts[row[time_index] // HOUR_MICROS]:
                self.changeable[index] = list(row)
        self.change_at = [f["name"] for f in fields].index(CHANGE[table][0])
        self.table_name = table
        # What token_verify_day's summary query answers, which a re-sync asks for first.
        self.summary = (len(self.rows), stamps, fingerprint_sum)
        # The table's size beside its schema, as tables.get reports it (logical bytes).
        self.table["numRows"] = str(count)
        self.table["numBytes"] = str(day_data.logical_bytes(table, count, day))
        self.jobs = 0
        self.lock = threading.Lock()
        self.written = now_micros()
        self.metadata_readable = True

    def change(self, which):
        """Rows change, as an UPDATE in BigQuery would: their summary with them."""
        indexes = [self.middle] if which == "one row" else sorted(self.hour_firsts.values())
        fields = self.schema["fields"]
        count, stamps, fingerprint_sum = self.summary
        for index in indexes:
            row = self.changeable[index]
            fingerprint_sum -= fingerprint(row, fields)
            row[self.change_at] = (row[self.change_at] or "") + CHANGE[self.table_name][1]
            fingerprint_sum += fingerprint(row, fields)
            self.rows[index] = cells(row)
        self.summary = (count, stamps, fingerprint_sum)

    def page(self, job_id, start, size):
        size = max(1, min(size, MAX_PAGE_ROWS))
        chunk, total = [], 0
        for row in self.rows[start:start + size]:
            total += len(row) + 1
            if chunk and total > MAX_PAGE_BYTES:
                break
            chunk.append(row)
        size = len(chunk)
        head = {"kind": "bigquery#queryResponse", "jobComplete": True, "schema": self.schema,
                "jobReference": {"projectId": "billing", "jobId": job_id, "location": "US"},
                "totalRows": str(len(self.rows)), "totalBytesProcessed": "0", "cacheHit": False,
                "creationTime": str(now_micros() // 1000)}
        if start + size < len(self.rows):
            head["pageToken"] = str(start + size)
        prefix = json.dumps(head, separators=(",", ":"))[:-1].encode()
        return prefix + b',"rows":[' + b",".join(chunk) + b"]}"


def now_micros():
    return time.time_ns() // 1000


# What BigQuery answers a caller who may not list the dataset's tables.
METADATA_DENIED = {"error": {"code": 403, "message": "Access Denied: bigquery.tables.list",
                             "errors": [{"reason": "accessDenied"}]}}


def partitions_answer(reference, rows, written):
    return {"kind": "bigquery#queryResponse", "jobReference": reference, "jobComplete": True,
            "creationTime": str(now_micros() // 1000),
            "schema": {"fields": [{"name": "total_rows", "type": "INTEGER"},
                                  {"name": "modified_micros", "type": "INTEGER"}]},
            "totalRows": "1", "totalBytesProcessed": "0", "totalBytesBilled": str(10 * 1024 * 1024),
            "rows": [{"f": [{"v": str(rows)}, {"v": str(written)}]}]}


def handler(source):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, body, status=200):
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            time.sleep(source.latency)
            path = urllib.parse.urlsplit(self.path).path
            if path == "/bench/written":
                if body.get("change"):
                    source.change(body["change"])
                source.written = now_micros()
                return self.send(b"{}")
            if path == "/bench/metadata":
                source.metadata_readable = bool(body.get("readable"))
                return self.send(b"{}")
            if not path.endswith("/queries"):
                return self.send(b'{"error":{"code":404,"message":"not served"}}', 404)
            with source.lock:
                source.jobs += 1
                job_id = f"bench_{source.jobs}"
            reference = {"projectId": "billing", "jobId": job_id, "location": "US"}
            if is_partitions_query(body):
                if not source.metadata_readable:
                    return self.send(json.dumps(METADATA_DENIED).encode(), 403)
                return self.send(json.dumps(partitions_answer(reference, len(source.rows), source.written)).encode())
            if is_summary_query(body):
                answer = {**summary_answer(reference, *source.summary), "creationTime": str(now_micros() // 1000)}
                return self.send(json.dumps(answer).encode())
            self.send(source.page(job_id, 0, int(body.get("maxResults") or MAX_PAGE_ROWS)))

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            time.sleep(source.latency)
            start = int(query.get("startIndex", query.get("pageToken", ["0"]))[0])
            size = int(query.get("maxResults", [str(MAX_PAGE_ROWS)])[0])
            parts = url.path.strip("/").split("/")
            if "queries" in parts:  # jobs.getQueryResults
                return self.send(source.page(parts[-1], start, size))
            if "jobs" in parts:  # jobs.get, as the Python client asks after jobs.query
                return self.send(json.dumps(job_resource(parts[-1], source.schema)).encode())
            if parts[-1] == "data":  # tabledata.list of the job's destination table
                return self.send(source.page("destination", start, size))
            if "tables" in parts:  # tables.get, of the source (token_sync) or the job's destination
                return self.send(json.dumps({**source.table, "tableReference": DESTINATION,
                                             "numRows": str(len(source.rows))}).encode())
            self.send(b'{"error":{"code":404,"message":"not served"}}', 404)
    return Handler


def serve(count, day, port, latency_ms, table="tokens", ready=None):
    source = Source(count, day, latency_ms / 1000, table)
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(source))
    server.daemon_threads = True
    if ready:
        ready.set()
    print(f"serving {count} rows of {table} on {day} on 127.0.0.1:{port}, {latency_ms} ms per request", flush=True)
    server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--day", default="2026-11-20")
    parser.add_argument("--port", type=int, default=9070)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--table", choices=sorted(day_data.SOURCES), default="tokens")
    args = parser.parse_args()
    serve(args.rows, dt.date.fromisoformat(args.day), args.port, args.latency_ms, args.table)


if __name__ == "__main__":
    sys.exit(main())
