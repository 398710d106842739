"""A BigQuery Storage Read API source for the benchmark: serves one generated day of a table
(bench/day_data.py) through CreateReadSession and ReadRows on a loopback gRPC port at wire
speed: the rows are built into Arrow record batches and serialized once up front, as
BigQuery's types map them (STRING as utf8, INT64 as int64, NUMERIC as decimal128(38, 9),
TIMESTAMP as timestamp[us, UTC]), 4,096 rows or about 4 MB to a batch, whichever comes
first. A session of n streams gives stream i every n-th batch.
The REST API beside it (tables.get, and the summary query of a re-sync) is
bench/source_server.py's.

    python bench/storage_server.py --rows 1000000 --port 9080 [--table transactions|wide]
"""

import argparse
import datetime as dt
import sys
import time
from concurrent import futures
from decimal import Decimal
from pathlib import Path

import grpc
import pyarrow as pa
from google.cloud.bigquery_storage_v1 import types

import day_data

SERVICE = "/google.cloud.bigquery.storage.v1.BigQueryRead"
BATCH_ROWS = 4096
BATCH_BYTES = 4 << 20
ARROW_TYPES = {"STRING": pa.string(), "INTEGER": pa.int64(), "NUMERIC": pa.decimal128(38, 9),
               "TIMESTAMP": pa.timestamp("us", "UTC")}


def arrow_value(value, kind):
    if value is None:
        return None
    if kind == "NUMERIC":
        return Decimal(value)
    return value


class Day:
    def __init__(self, count, day, table):
        fields = day_data.schema(table)
        self.schema = pa.schema([pa.field(f["name"], ARROW_TYPES[f["type"]], f["mode"] != "REQUIRED") for f in fields])
        self.serialized_schema = self.schema.serialize().to_pybytes()
        self.batches = []
        chunk, size = [], 0
        for row in day_data.rows(count, day, table):
            chunk.append(row)
            size += sum(len(str(value)) for value in row if value is not None)
            if len(chunk) == BATCH_ROWS or size >= BATCH_BYTES:
                self.add(chunk, fields)
                chunk, size = [], 0
        if chunk:
            self.add(chunk, fields)

    def add(self, rows, fields):
        columns = [pa.array([arrow_value(row[i], f["type"]) for row in rows], ARROW_TYPES[f["type"]])
                   for i, f in enumerate(fields)]
        batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        self.batches.append(types.ReadRowsResponse.serialize(types.ReadRowsResponse(
            row_count=batch.num_rows,
            arrow_record_batch=types.ArrowRecordBatch(serialized_record_batch=batch.serialize().to_pybytes()))))


class Handler(grpc.GenericRpcHandler):
    def __init__(self, day):
        self.day = day
        self.sessions = 0

    def service(self, details):
        if details.method == f"{SERVICE}/CreateReadSession":
            return grpc.unary_unary_rpc_method_handler(self.create)
        if details.method == f"{SERVICE}/ReadRows":
            return grpc.unary_stream_rpc_method_handler(self.read)
        return None

    def create(self, request, context):
        request = types.CreateReadSessionRequest.deserialize(request)
        self.sessions += 1
        name = f"projects/billing/locations/US/sessions/bench{self.sessions}"
        streams = max(1, min(request.max_stream_count or 1, len(self.day.batches) or 1))
        return types.ReadSession.serialize(types.ReadSession(
            name=name, table=request.read_session.table, data_format=types.DataFormat.ARROW,
            arrow_schema=types.ArrowSchema(serialized_schema=self.day.serialized_schema),
            streams=[types.ReadStream(name=f"{name}/streams/{i}.{streams}") for i in range(streams)]))

    def read(self, request, context):
        request = types.ReadRowsRequest.deserialize(request)
        index, count = (int(n) for n in request.read_stream.rsplit("/", 1)[1].split("."))
        yield from self.day.batches[index::count]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--day", default="2026-11-20")
    parser.add_argument("--port", type=int, default=9080)
    parser.add_argument("--table", choices=sorted(day_data.SOURCES), default="tokens")
    args = parser.parse_args()
    day = Day(args.rows, dt.date.fromisoformat(args.day), args.table)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_send_message_length", 256 * 1024 * 1024)])
    server.add_generic_rpc_handlers([Handler(day)])
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"serving {args.rows} rows of {args.table} in {len(day.batches)} Arrow batches on 127.0.0.1:{args.port}",
          flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
