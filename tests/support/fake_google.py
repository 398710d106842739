"""A small fake of Google's OAuth token endpoint and of BigQuery's tables.get and query calls.

It covers what the emulator cannot: bearer tokens and the service-account JWT grant,
HTTP errors, slow and cut responses, jobs that are not complete at once, float-seconds
TIMESTAMPs, and counting the pages a client asked for. It serves rows kept in memory,
filtered by the DATE parameter the client sends, the way BigQuery does.
"""

import base64
import hashlib
import datetime as dt
import json
import threading
import time
import urllib.parse
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DAY_MICROS = 86_400 * 1_000_000
SCHEMA = [("address", "STRING"), ("symbol", "STRING"), ("name", "STRING"), ("decimals", "STRING"),
          ("total_supply", "STRING"), ("block_timestamp", "TIMESTAMP"), ("block_number", "INTEGER"),
          ("block_hash", "STRING")]
# The columns crypto_ethereum.tokens declares REQUIRED; the others are NULLABLE.
REQUIRED = {"address", "block_timestamp", "block_number", "block_hash"}


def unix_micros(moment):
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def float_seconds(micros):
    """BigQuery's default TIMESTAMP rendering, e.g. 1.6409952E9."""
    text = format(Decimal(micros) / Decimal(1_000_000), "E")  # 1.640995200E+9
    mantissa, exponent = text.split("E")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{mantissa}E{int(exponent)}"


class FakeGoogle:
    def __init__(self):
        self.rows = []                 # dicts with block_timestamp as unix micros
        self.schema = list(SCHEMA)
        self.float_timestamps = False
        self.incomplete_polls = 0      # getQueryResults answers with jobComplete=false this often first
        # kind: "token" | "query" | "results" -> None, or a dict of delay (s, then answer as
        # usual unless another key is given), status and body, raw (bytes), or cut (True).
        self.fault = lambda kind, ordinal: None
        self.requests = []             # (kind, path, headers, body)
        self.queries = []              # the query string of each request, in the same order
        self.token_requests = []       # parsed form bodies
        self.bigquery_connections = []  # the client port of each BigQuery request
        self.access_token = "fake-access-token-0123456789"
        self.token_failure = None      # (status, body) to answer the token endpoint with
        self.total_rows_override = None
        self.ignore_day_filter = False  # serve every row, as a broken source would
        self.page_cap = None            # at most this many rows a page, as BigQuery's 10 MB cap does
        # As BigQuery does, when True: jobs.query answers carry the job's creationTime, and
        # INFORMATION_SCHEMA.PARTITIONS says when each day's partition was last written
        # (`written`, set by `write_day`), with the rows it holds now.
        self.partition_metadata = False
        self.written = {}
        self.time_partitioning = {"type": "DAY", "field": "block_timestamp"}
        self.streaming_buffer = False  # tables.get says rows wait in the streaming buffer
        self.partition_queries = []    # (view, table_name) of each PARTITIONS query
        self._jobs = {}
        self._counts = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                fake._handle(self, "POST")

            def do_GET(self):
                fake._handle(self, "GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def token_uri(self):
        return f"{self.base_url}/token"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def count(self, kind):
        return self._counts.get(kind, 0)

    # -- request handling -------------------------------------------------------------

    def _handle(self, handler, method):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(handler.path)
        request = None
        if url.path == "/token":
            kind = "token"
        elif method == "POST" and url.path.endswith("/queries"):
            # token_verify_day's summary, which a re-sync also asks for first, or the day's rows.
            request = json.loads(body)
            kind = ("partitions" if is_partitions_query(request) else
                    "summary" if is_summary_query(request) else "query")
        elif method == "GET" and "/queries/" in url.path:
            kind = "results"
        elif method == "GET" and "/tables/" in url.path:
            kind = "table"
        else:
            return self._send(handler, 404, {"error": {"code": 404, "message": "no such path"}})
        with self._lock:
            ordinal = self._counts.get(kind, 0)
            self._counts[kind] = ordinal + 1
            self.requests.append((kind, url.path, {k.lower(): v for k, v in handler.headers.items()}, body))
            self.queries.append(url.query)
            if kind != "token":
                self.bigquery_connections.append(handler.client_address[1])
        fault = self.fault(kind, ordinal)
        if fault:
            time.sleep(fault.get("delay", 0))
            if fault.keys() - {"delay"}:
                return self._fault(handler, fault)
        if kind == "token":
            return self._token(handler, body)
        if kind == "table":
            resource = table_resource(self.schema, self.time_partitioning)
            # The table's size, as BigQuery reports it beside the schema (its logical bytes).
            resource["numRows"] = str(len(self.rows))
            resource["numBytes"] = str(sum(len(str(value)) + 2 for row in self.rows for value in row.values()
                                           if value is not None))
            if self.streaming_buffer:
                resource["streamingBuffer"] = {"estimatedRows": "1", "estimatedBytes": "100"}
            return self._send(handler, 200, resource)
        query = urllib.parse.parse_qs(url.query)
        if kind == "partitions":
            return self._partitions(handler, request)
        if kind == "summary":
            return self._summary(handler, request)
        if kind == "query":
            return self._query(handler, request)
        return self._results(handler, url.path.rsplit("/", 1)[1], query)

    def _fault(self, handler, fault):
        if fault.get("cut"):
            payload = b'{"kind": "bigquery#queryResponse", "rows": [{"f": [{"v": "0x'
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload) + 500))
            handler.end_headers()
            handler.wfile.write(payload)
            handler.wfile.flush()
            handler.close_connection = True
            return
        if "raw" in fault:
            handler.send_response(fault.get("status", 200))
            handler.send_header("Content-Length", str(len(fault["raw"])))
            handler.end_headers()
            handler.wfile.write(fault["raw"])
            return
        if "status" in fault:
            return self._send(handler, fault["status"], fault.get("body", {}))

    def _token(self, handler, body):
        form = urllib.parse.parse_qs(body.decode())
        self.token_requests.append(form)
        if self.token_failure:
            status, payload = self.token_failure
            return self._send(handler, status, payload)
        self._send(handler, 200, {"access_token": self.access_token, "expires_in": 3600,
                                  "token_type": "Bearer"})

    def _query(self, handler, request):
        selected = self._day(request)
        job_id = f"fake_job_{len(self._jobs) + 1}"
        self._jobs[job_id] = {"rows": selected, "polls_left": self.incomplete_polls}
        page_size = int(request.get("maxResults") or 100_000)
        if self.incomplete_polls:
            return self._send(handler, 200, self._created({"kind": "bigquery#queryResponse", "jobComplete": False,
                                                           "jobReference": self._job_ref(job_id)}))
        self._send(handler, 200, self._created(self._page(job_id, 0, page_size)))

    def write_day(self, day, rows=None):
        """BigQuery writes to the day's partition now (its rows become `rows`, if given)."""
        if rows is not None:
            self.rows = rows
        self.written[day] = unix_micros(dt.datetime.now(dt.timezone.utc))
        time.sleep(0.002)  # a job created after this write starts later than it

    def _created(self, answer):
        if self.partition_metadata:
            answer["creationTime"] = str(unix_micros(dt.datetime.now(dt.timezone.utc)) // 1000)
        return answer

    def _partitions(self, handler, request):
        params = {p["name"]: p["parameterValue"]["value"] for p in request.get("queryParameters", [])}
        day = dt.date.fromisoformat(params["day"])
        view = request["query"].split(" FROM ", 1)[1].split()[0]
        self.partition_queries.append((view, params.get("table_name")))
        rows = self._day(request)
        job_id = f"fake_job_{len(self._jobs) + 1}"
        self._jobs[job_id] = {"rows": [], "polls_left": 0}
        written = self.written.get(day) if rows else None
        self._send(handler, 200, self._created({
            "kind": "bigquery#queryResponse", "jobReference": self._job_ref(job_id), "jobComplete": True,
            "schema": {"fields": [{"name": "total_rows", "type": "INTEGER"},
                                  {"name": "modified_micros", "type": "INTEGER"}]},
            "totalRows": "1", "totalBytesProcessed": "0", "totalBytesBilled": str(10 * 1024 * 1024),
            "rows": [{"f": [{"v": str(len(rows))}, {"v": None if written is None else str(written)}]}]}))

    def _day(self, request):
        params = {p["name"]: p["parameterValue"]["value"] for p in request.get("queryParameters", [])}
        day = dt.date.fromisoformat(params["day"])
        start = unix_micros(dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc))
        return [r for r in self.rows
                if self.ignore_day_filter or start <= r["block_timestamp"] < start + DAY_MICROS]

    def _summary(self, handler, request):
        rows = self._day(request)
        job_id = f"fake_job_{len(self._jobs) + 1}"
        self._jobs[job_id] = {"rows": [], "polls_left": 0}
        self._send(handler, 200, self._created(summary_answer(
            self._job_ref(job_id), len(rows), [r["block_timestamp"] for r in rows],
            sum(fingerprint([r.get(name) for name, _ in self.schema], self.schema) for r in rows))))

    def _results(self, handler, job_id, query):
        job = self._jobs[job_id]
        if job["polls_left"]:
            job["polls_left"] -= 1
            return self._send(handler, 200, {"kind": "bigquery#getQueryResultsResponse",
                                             "jobComplete": False, "jobReference": self._job_ref(job_id)})
        start = int(query.get("pageToken", ["0"])[0] or 0)
        if "startIndex" in query:
            start = int(query["startIndex"][0])
        self._send(handler, 200, self._page(job_id, start, int(query.get("maxResults", ["100000"])[0])))

    def _job_ref(self, job_id):
        return {"projectId": "billing", "jobId": job_id, "location": "US"}

    def _page(self, job_id, start, size):
        size = min(size, self.page_cap or size)
        rows = self._jobs[job_id]["rows"]
        chunk = rows[start:start + size]
        answer = {
            "kind": "bigquery#queryResponse",
            "jobReference": self._job_ref(job_id),
            "jobComplete": True,
            "schema": table_resource(self.schema)["schema"],
            "totalRows": str(self.total_rows_override if self.total_rows_override is not None else len(rows)),
            "totalBytesProcessed": "10485760",
            "totalBytesBilled": "10485760",
            "rows": [{"f": [{"v": self._cell(row, name)} for name, _ in self.schema]} for row in chunk],
        }
        if start + size < len(rows):
            answer["pageToken"] = str(start + size)
        return answer

    def _cell(self, row, name):
        value = row.get(name)
        if value is None:
            return None
        if name == "block_timestamp" and self.float_timestamps:
            return float_seconds(value)
        return str(value)

    def _send(self, handler, status, payload):
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def table_resource(schema, time_partitioning=None):
    """tables.get's answer for a table of `schema`, (name, type) pairs, partitioned by day
    on block_timestamp unless `time_partitioning` says otherwise."""
    return {"kind": "bigquery#table", "type": "TABLE",
            "schema": {"fields": [{"name": n, "type": t, "mode": "REQUIRED" if n in REQUIRED else "NULLABLE"}
                                  for n, t in schema]},
            "timePartitioning": time_partitioning or {"type": "DAY", "field": "block_timestamp"}}


def fingerprint(values, schema=SCHEMA):
    """A row's term of token_verify_day's fingerprint, as BigQuery computes it (src/verify.rs):
    `values` in the schema's order, timestamps as Unix microseconds, each value's canonical
    text with its length in front, NULL as ~."""
    def field(value):
        if value is None:
            return "~"
        text = str(value).replace("\0", "")
        return f"{len(text)}:{text}"
    text = "|".join(field(value) for value, _ in zip(values, schema))
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16)


def summary_answer(job_reference, rows, stamps, fingerprint_sum):
    """The one-row answer to token_verify_day's summary query."""
    cells = [rows, min(stamps, default=None), max(stamps, default=None), fingerprint_sum]
    return {
        "kind": "bigquery#queryResponse", "jobReference": job_reference, "jobComplete": True,
        "schema": {"fields": [{"name": n, "type": t} for n, t in [
            ("row_count", "INTEGER"), ("min_micros", "INTEGER"), ("max_micros", "INTEGER"),
            ("fingerprint", "INTEGER")]]},
        "totalRows": "1", "totalBytesProcessed": "1048576", "totalBytesBilled": "1048576",
        "rows": [{"f": [{"v": None if c is None else str(c)} for c in cells]}]}


def is_summary_query(request):
    return request["query"].startswith("SELECT COUNT(*)")


def is_partitions_query(request):
    return ".INFORMATION_SCHEMA.PARTITIONS`" in request["query"]


def decode_jwt(assertion):
    """The (header, claims, signing input, signature) of a compact JWT."""
    def part(text):
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    header, claims, signature = assertion.split(".")
    return (json.loads(part(header)), json.loads(part(claims)),
            f"{header}.{claims}".encode(), part(signature))
