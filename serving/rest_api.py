"""TF Serving's REST API on ``--rest_api_port`` (stdlib ``http.server``).

Endpoints, as ``tensorflow_model_server`` has them::

    GET  /v1/models/<name>[/versions/<v> | /labels/<label>]            model status
    GET  /v1/models/<name>[/versions/<v> | /labels/<label>]/metadata   signature defs
    POST /v1/models/<name>[/versions/<v> | /labels/<label>]:predict    predict (JSON)

Errors answer ``{"error": "<message>"}`` with the HTTP code TF Serving maps the
gRPC status to (INVALID_ARGUMENT -> 400, NOT_FOUND -> 404, ...). Connections
are served by a bounded pool of ``--rest_api_num_threads`` workers; bodies over
``--max_message_bytes`` are refused with 413 without being read.
"""

from __future__ import annotations

import http.server
import json
import logging
import re
import socket
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import rest_json, tensors
from serving.serving_core import ModelSpec, ServingCore, ServingError

log = logging.getLogger(__name__)

PATH_PATTERN = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<action>/metadata|:predict|:classify|:regress)?/?$"
)

# tensorflow_model_server's gRPC status -> HTTP status mapping.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class HttpError(Exception):
    """An HTTP-level failure (bad path, method, body size) with its status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _to_dict(message) -> dict:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, including_default_value_fields=True
    )


class RestHandlers:
    """The endpoint logic: (method, path, body) -> (HTTP status, JSON object)."""

    def __init__(self, core: ServingCore):
        self.core = core

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        try:
            return 200, self._dispatch(method, path, body)
        except HttpError as err:
            return err.status, {"error": err.message}
        except ServingError as err:
            return HTTP_STATUS.get(err.code, 500), {"error": err.details}
        except tensors.InvalidInputError as err:
            return 400, {"error": str(err)}
        except Exception as err:  # a bug: report it and keep serving
            log.exception("REST %s %s failed with an internal error", method, path)
            return 500, {"error": f"internal error: {type(err).__name__}: {err}"}

    def _dispatch(self, method: str, path: str, body: bytes) -> dict:
        match = PATH_PATTERN.match(path.split("?", 1)[0])
        if match is None:
            raise HttpError(
                404,
                f"malformed request: {method} {path}; expected /v1/models/<name>"
                "[/versions/<version>|/labels/<label>][/metadata|:predict]",
            )
        version = match["version"]
        spec = ModelSpec(
            match["name"], int(version) if version else None, match["label"] or ""
        )
        action = match["action"] or ""
        expected_method = "POST" if action.startswith(":") else "GET"
        if method != expected_method:
            raise HttpError(
                405, f"{method} {path} is not supported; expected {expected_method}"
            )
        if action == ":predict":
            return self.predict(spec, body)
        if action in (":classify", ":regress"):
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{action[1:]} is not implemented by retrieval-serve; use :predict",
            )
        if action == "/metadata":
            return self.metadata(spec)
        return _to_dict(self.core.model_status(spec))

    def metadata(self, spec: ModelSpec) -> dict:
        response = self.core.model_metadata(spec)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {
            "model_spec": _to_dict(response.model_spec),
            "metadata": {
                "signature_def": json_format.MessageToDict(
                    signature_map, preserving_proto_field_name=True
                )
            },
        }

    def predict(self, spec: ModelSpec, body: bytes) -> dict:
        core = self.core
        with core.using(spec) as (registry, model):
            parsed = rest_json.parse_body(body)
            signature_name = parsed.get("signature_name", "")
            function, specs = core.signature(
                model, registry.name,
                signature_name if isinstance(signature_name, str) else "",
            )
            request = rest_json.parse_predict(parsed, list(specs))
            tensors.check_names(request.values, specs)
            arrays = {}
            for name, input_spec in specs.items():
                array = rest_json.to_array(name, request.values[name], input_spec.dtype)
                tensors.check_dtype_and_shape(
                    name, input_spec.dtype.name, list(array.shape), input_spec,
                    core.limits.max_batch_size,
                )
                arrays[name] = array
            outputs = core.run(function, arrays)
        return rest_json.format_predict(outputs, request.row_format)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    """One connection; keep-alive (HTTP/1.1) so clients can reuse it."""

    protocol_version = "HTTP/1.1"
    server_version = "retrieval-serve"
    timeout = 30  # seconds an idle keep-alive connection may hold a worker

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        server: RestServer = self.server  # type: ignore[assignment]
        with server.tracker:
            try:
                body = self._read_body(server.max_body_bytes)
            except HttpError as err:
                self.close_connection = True
                self._reply(err.status, {"error": err.message})
                return
            status, payload = server.handlers.handle(method, self.path, body)
            self._reply(status, payload)

    def _read_body(self, max_bytes: int) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            if self.headers.get("Transfer-Encoding"):
                raise HttpError(411, "chunked bodies are not supported; send Content-Length")
            return b""
        try:
            length = int(length_header)
        except ValueError as err:
            raise HttpError(400, f"Content-Length {length_header!r} is not an integer") from err
        if length > max_bytes:
            self._discard(length, max_bytes)
            raise HttpError(
                413,
                f"request body has {length} bytes, expected at most {max_bytes} "
                "(--max_message_bytes)",
            )
        return self.rfile.read(length) if length > 0 else b""

    def _discard(self, length: int, max_bytes: int) -> None:
        """Reads and drops a refused body so the client sees the 413 instead of a
        broken pipe; a body far over the limit is cut off instead."""
        if length > 16 * max_bytes:
            return
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        log.debug("REST %s " + format, self.address_string(), *args)


class _InFlight:
    """Counts requests being processed so shutdown can wait for them."""

    def __init__(self):
        self._count = 0
        self._cond = threading.Condition()

    def __enter__(self):
        with self._cond:
            self._count += 1

    def __exit__(self, *exc):
        with self._cond:
            self._count -= 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._count == 0, timeout)


class RestServer(http.server.HTTPServer):
    """HTTP server whose connections run on a bounded thread pool.

    Args:
        address: (host, port); port 0 picks a free port.
        core: Shared request logic.
        max_threads: Worker threads (connections served at once).
        max_body_bytes: Largest accepted request body.
    """

    daemon_threads = True

    def __init__(self, address, core: ServingCore, max_threads: int, max_body_bytes: int):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.handlers = RestHandlers(core)
        self.max_body_bytes = max_body_bytes
        self.tracker = _InFlight()
        self._pool = futures.ThreadPoolExecutor(max_threads, thread_name_prefix="rest-worker")
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, _RequestHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        self._pool.submit(self._process, request, client_address)

    def _process(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)
            self.shutdown_request(request)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2},
            name="rest-accept", daemon=True,
        )
        self._thread.start()

    def stop_accepting(self) -> None:
        """Stops the accept loop and closes the listening socket, so new
        connections are refused at once; open connections go on."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.socket.close()

    def stop(self, grace: float) -> None:
        """Stops accepting, lets in-flight requests finish (up to ``grace`` s),
        then closes idle keep-alive connections."""
        self.stop_accepting()
        deadline = time.monotonic() + grace
        self.tracker.wait_idle(max(0.0, deadline - time.monotonic()))
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.server_close()
