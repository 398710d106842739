"""A small Storage Read API of our own (gRPC on a loopback port), for what the emulator
cannot do: a stream cut mid-way (and read again from an offset, which the emulator
ignores), PERMISSION_DENIED, UNAVAILABLE, RESOURCE_EXHAUSTED with RetryInfo, an expired
session, a stream that stalls, and a snapshot time. It serves a pyarrow table, split into
`streams` streams of `batch_rows`-row messages; it applies no row restriction (the tests
give it the day's rows only) and records every request.
"""

import threading
import time
from concurrent import futures

import grpc
import pyarrow as pa
from google.cloud.bigquery_storage_v1 import types
from google.protobuf import any_pb2, duration_pb2, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

SERVICE = "/google.cloud.bigquery.storage.v1.BigQueryRead"
SESSION = "projects/billing/locations/US/sessions/fake"
SNAPSHOT_SECONDS = 1_795_230_000  # 2026-11-21 02:20:00 UTC


def status(code, message, retry_seconds=None):
    """A google.rpc.Status as gRPC trailers, with a RetryInfo detail if asked."""
    details = []
    if retry_seconds is not None:
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
            seconds=int(retry_seconds), nanos=int(retry_seconds % 1 * 1e9)))
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
    return rpc_status.to_status(status_pb2.Status(code=getattr(code_pb2, code), message=message, details=details))


class FakeStorage:
    def __init__(self):
        self.table = pa.table({})
        self.streams = 1
        self.batch_rows = 2
        # Statuses to answer the next CreateReadSession calls with, in turn.
        self.create_faults = []
        # stream index -> [(after this many rows of the stream, status)], each used once.
        self.read_faults = {}
        self.stall_seconds = 0.0     # before each ReadRows call's first message
        self.requests = []           # ("create", read options) or ("read", stream index, offset), with times
        self._lock = threading.Lock()

    def start(self):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self.server.add_generic_rpc_handlers([_Handler(self)])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self):
        self.server.stop(grace=None)

    def record(self, *request):
        with self._lock:
            self.requests.append((*request, time.monotonic()))

    def stream_rows(self, index):
        """The rows of stream `index`: an even share of the table, in order."""
        share = -(-self.table.num_rows // self.streams) if self.table.num_rows else 0
        return self.table.slice(index * share, share)

    def create(self, request, context):
        request = types.CreateReadSessionRequest.deserialize(request)
        options = request.read_session.read_options
        self.record("create", list(options.selected_fields), options.row_restriction, request.max_stream_count)
        if self.create_faults:
            context.abort_with_status(self.create_faults.pop(0))
        names = list(options.selected_fields)
        table = self.table.select(names) if names else self.table
        self.table = table
        session = types.ReadSession(
            name=SESSION, table=request.read_session.table, data_format=types.DataFormat.ARROW,
            arrow_schema=types.ArrowSchema(serialized_schema=table.schema.serialize().to_pybytes()),
            streams=[types.ReadStream(name=f"{SESSION}/streams/{i}") for i in range(self.streams)
                     if self.stream_rows(i).num_rows or i == 0],
            table_modifiers=types.ReadSession.TableModifiers(
                snapshot_time=timestamp_pb2.Timestamp(seconds=SNAPSHOT_SECONDS, nanos=123456000)),
            estimated_row_count=table.num_rows)
        return types.ReadSession.serialize(session)

    def read(self, request, context):
        request = types.ReadRowsRequest.deserialize(request)
        index = int(request.read_stream.rsplit("/", 1)[1])
        self.record("read", index, request.offset)
        if self.stall_seconds:
            time.sleep(self.stall_seconds)
        rows = self.stream_rows(index)
        position = request.offset
        while position < rows.num_rows:
            faults = self.read_faults.get(index, [])
            if faults and position >= faults[0][0]:
                context.abort_with_status(faults.pop(0)[1])
            batch = rows.slice(position, self.batch_rows).combine_chunks().to_batches()
            for piece in batch:
                yield types.ReadRowsResponse.serialize(types.ReadRowsResponse(
                    row_count=piece.num_rows,
                    arrow_record_batch=types.ArrowRecordBatch(serialized_record_batch=piece.serialize().to_pybytes())))
                position += piece.num_rows


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, fake):
        self.fake = fake

    def service(self, details):
        if details.method == f"{SERVICE}/CreateReadSession":
            return grpc.unary_unary_rpc_method_handler(self.fake.create)
        if details.method == f"{SERVICE}/ReadRows":
            return grpc.unary_stream_rpc_method_handler(self.fake.read)
        return None
