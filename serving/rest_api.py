"""TF Serving's REST API on ``--rest_api_port`` (tornado's HTTP/1.1 server).

Endpoints, as ``tensorflow_model_server`` has them::

    GET  /v1/models/<name>[/versions/<v> | /labels/<label>]            model status
    GET  /v1/models/<name>[/versions/<v> | /labels/<label>]/metadata   signature defs
    POST /v1/models/<name>[/versions/<v> | /labels/<label>]:predict    predict (JSON)

Errors answer ``{"error": "<message>"}`` with the HTTP code TF Serving maps the
gRPC status to (INVALID_ARGUMENT -> 400, NOT_FOUND -> 404, ...).

Design: one thread runs an asyncio event loop that accepts connections and
reads requests; only a request whose body has fully arrived is handed to the
bounded pool of ``--rest_api_num_threads`` workers, so idle keep-alive
connections and slow clients hold no worker. Each connection must send the
complete headers of its next request within ``idle_timeout_seconds`` of being
accepted or of its previous answer, else it is closed (idle and slow-header
clients alike); a body must then arrive within ``read_timeout_seconds``, else
the request is answered 408 and the connection closed. Beyond
``max_connections`` open connections new ones are answered 503 and closed.
Bodies over ``--max_request_bytes`` are answered 400 (INVALID_ARGUMENT, as
gRPC answers an oversized request) before they are read and
the connection is closed (a body up to 16 times the limit is read and dropped
first, within the read deadline, so the client gets to read the answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2
from tornado import httpserver, httputil, iostream, netutil

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
                    core.limits.max_batch_size, core.limits.history_length(model),
                )
                arrays[name] = array
            tensors.check_batch_sizes(
                {name: list(array.shape) for name, array in arrays.items()}
            )
            outputs = core.run(function, arrays)
        return rest_json.format_predict(outputs, request.row_format)


SERVER_NAME = "retrieval-serve"
# A refused body up to this many times --max_message_bytes is read and dropped
# (within the read deadline) so the client, which sends it before reading the
# answer, sees the answer rather than a reset connection.
DRAIN_FACTOR = 16
MAX_HEADER_BYTES = 64 * 1024


def _reason(status: int) -> str:
    return httputil.responses.get(status, "Client Closed Request" if status == 499 else "")


def _response_headers(length: int, close: bool) -> httputil.HTTPHeaders:
    headers = httputil.HTTPHeaders({
        "Content-Type": "application/json",
        "Content-Length": str(length),
        "Server": SERVER_NAME,
        "Date": httputil.format_timestamp(time.time()),
    })
    if close:
        headers["Connection"] = "close"
    return headers


def _raw_response(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 error answer that closes the connection."""
    data = json.dumps({"error": message}).encode("utf-8")
    head = "".join(
        f"{name}: {value}\r\n"
        for name, value in _response_headers(len(data), close=True).get_all()
    )
    return f"HTTP/1.1 {status} {_reason(status)}\r\n{head}\r\n".encode("latin-1") + data


class _Request(httputil.HTTPMessageDelegate):
    """One request: refused before its body, or read, answered by a worker."""

    def __init__(self, rest: RestServer, connection: httputil.HTTPConnection):
        self.rest = rest
        self.connection = connection
        self.method = ""
        self.path = ""
        self.chunks: list[bytes] = []
        self.tracked = False  # counted as in flight until answered or gone
        self.answered = False
        self.deadline_timer: asyncio.TimerHandle | None = None

    def headers_received(self, start_line, headers):
        self.method, self.path = start_line.method, start_line.path
        rest = self.rest
        length_header = headers.get("Content-Length")
        if "Transfer-Encoding" in headers:
            if length_header is None:
                return self._refuse(
                    411, "chunked bodies are not supported; send Content-Length"
                )
            return self._refuse(
                400, "request has both Transfer-Encoding and Content-Length; "
                "expected Content-Length only",
            )
        if length_header is None:
            length = 0
        else:
            # Repeated identical values ("5, 5") come from some proxies.
            values = {value.strip() for value in length_header.split(",")}
            if len(values) != 1 or not re.fullmatch("[0-9]+", next(iter(values))):
                return self._refuse(
                    400, f"Content-Length {length_header!r} is not an integer"
                )
            length = int(values.pop())
        if length > rest.max_body_bytes:
            return self._refuse(
                400,
                f"request body has {length} bytes, expected at most {rest.max_body_bytes} "
                "(--max_request_bytes)",
                drain=length if length <= DRAIN_FACTOR * rest.max_body_bytes else 0,
            )
        rest.request_started()
        self.tracked = True
        self.deadline_timer = asyncio.get_running_loop().call_later(
            rest.read_timeout_seconds, self._read_timed_out, length
        )
        return None

    def _refuse(self, status: int, message: str, drain: int = 0) -> None:
        """Answers before the body and closes; the stream leaves tornado's hands."""
        stream = self.connection.detach()
        self.rest.send_and_close(stream, _raw_response(status, message), drain)

    def data_received(self, chunk: bytes):
        self.chunks.append(chunk)

    def finish(self) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
        if self.answered:
            return
        body = b"".join(self.chunks)
        self.chunks = []
        asyncio.ensure_future(self._answer(body))

    async def _answer(self, body: bytes) -> None:
        rest = self.rest
        try:
            status, payload = await asyncio.get_running_loop().run_in_executor(
                rest.pool, rest.handlers.handle, self.method, self.path, body
            )
        except RuntimeError:  # the pool is shut down: the server is stopping
            status, payload = 503, {"error": "the server is shutting down; retry"}
        self._reply(status, payload)

    def _read_timed_out(self, length: int) -> None:
        received = sum(len(chunk) for chunk in self.chunks)
        log.info("REST %s %s: body not received in time; answering 408", self.method, self.path)
        self._reply(
            408,
            {"error": f"request body arrived too slowly: {received} of {length} bytes "
                      f"received; expected the whole body within "
                      f"{self.rest.read_timeout_seconds:g} s of the headers"},
        )

    def _reply(self, status: int, payload: dict) -> None:
        if self.answered:
            return
        self.answered = True
        log.debug("REST %s %s -> %d", self.method, self.path, status)
        data = json.dumps(payload).encode("utf-8")
        try:
            self.connection.write_headers(
                httputil.ResponseStartLine("HTTP/1.1", status, _reason(status)),
                _response_headers(len(data), close=status == 408),
                data if self.method != "HEAD" else None,
            )
            # Answering before the whole body arrived (408) closes the connection.
            self.connection.finish()
        except (iostream.StreamClosedError, httputil.HTTPOutputError):
            pass  # the client went away
        finally:
            self._untrack()

    def on_connection_close(self) -> None:
        """The client left before its body was read (tornado calls this only
        then, or after a 408)."""
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
        self.answered = True
        self._untrack()

    def _untrack(self) -> None:
        if self.tracked:
            self.tracked = False
            self.rest.request_finished()


class _HttpServer(httpserver.HTTPServer):
    """tornado's HTTPServer routing every request to :class:`_Request`, with a
    cap on open connections."""

    rest: RestServer
    _last_refusal_log = float("-inf")

    def handle_stream(self, stream: iostream.IOStream, address) -> None:
        rest = self.rest
        if len(self._connections) + len(rest.detached) >= rest.max_connections:
            now = time.monotonic()
            if now - self._last_refusal_log >= 10:  # one line per 10 s at most
                self._last_refusal_log = now
                log.warning("REST: %d connections open, the limit; refusing new ones",
                            rest.max_connections)
            rest.send_and_close(stream, _raw_response(
                503, f"the server has {rest.max_connections} open connections, its "
                     "limit; retry later"), 0)
            return
        super().handle_stream(stream, address)

    def start_request(self, server_conn, request_conn) -> httputil.HTTPMessageDelegate:
        return _Request(self.rest, request_conn)


class RestServer:
    """The REST API: an event-loop thread for connections, a bounded worker
    pool for requests (see the module docstring).

    Args:
        address: (host, port); port 0 picks a free port. Bound on construction.
        core: Shared request logic.
        max_threads: Worker threads (requests processed at once).
        max_body_bytes: Largest accepted request body.
        read_timeout_seconds: Time a request's body gets to arrive after its
            headers; a late one is answered 408 and its connection closed.
        idle_timeout_seconds: Time a connection gets, from being accepted or
            from its previous answer, to send the complete headers of its next
            request; it is closed after that (idle keep-alive and slow-header
            clients alike).
        max_connections: Open connections beyond which new ones are answered
            503 and closed.

    Raises:
        OSError: If the address cannot be bound.
    """

    def __init__(
        self,
        address,
        core: ServingCore,
        max_threads: int,
        max_body_bytes: int,
        *,
        read_timeout_seconds: float = 30.0,
        idle_timeout_seconds: float = 30.0,
        max_connections: int = 512,
    ):
        for name, value in (("max_threads", max_threads), ("max_body_bytes", max_body_bytes),
                            ("max_connections", max_connections)):
            if value < 1:
                raise ValueError(f"{name}={value}; expected >= 1")
        for name, value in (("read_timeout_seconds", read_timeout_seconds),
                            ("idle_timeout_seconds", idle_timeout_seconds)):
            if not value > 0:
                raise ValueError(f"{name}={value}; expected > 0")
        self.handlers = RestHandlers(core)
        self.max_body_bytes = max_body_bytes
        self.read_timeout_seconds = read_timeout_seconds
        self.idle_timeout_seconds = idle_timeout_seconds
        self.max_connections = max_connections
        host, port = address[0], address[1]
        # "::" (like "") means every interface, IPv4 included.
        self._sockets = netutil.bind_sockets(port, None if host in ("", "::") else host)
        self.server_address = self._sockets[0].getsockname()
        self.pool = futures.ThreadPoolExecutor(max_threads, thread_name_prefix="rest-worker")
        # Streams answered before their body, being drained then closed.
        self.detached: set[iostream.IOStream] = set()
        self._in_flight = 0
        self._idle: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: _HttpServer | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    # ------------------------------------------- called on the event loop only

    def request_started(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def request_finished(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    def send_and_close(self, stream: iostream.IOStream, data: bytes, drain: int) -> None:
        """Writes ``data``, reads and drops up to ``drain`` bytes within the read
        deadline, then closes ``stream``."""
        self.detached.add(stream)
        asyncio.ensure_future(self._send_and_close(stream, data, drain))

    async def _send_and_close(self, stream, data: bytes, drain: int) -> None:
        try:
            await stream.write(data)
            remaining = drain
            deadline = time.monotonic() + self.read_timeout_seconds
            while remaining > 0:
                chunk = await asyncio.wait_for(
                    stream.read_bytes(min(remaining, 1 << 16), partial=True),
                    max(0.0, deadline - time.monotonic()),
                )
                remaining -= len(chunk)
        except (iostream.StreamClosedError, asyncio.TimeoutError):
            pass
        finally:
            stream.close()
            self.detached.discard(stream)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopped = asyncio.Event()
        self._http = _HttpServer(
            None,  # requests go to _HttpServer.start_request
            idle_connection_timeout=self.idle_timeout_seconds,
            max_header_size=MAX_HEADER_BYTES,
            max_body_size=self.max_body_bytes,
            decompress_request=False,
        )
        self._http.rest = self
        self._http.add_sockets(self._sockets)
        self._ready.set()
        await self._stopped.wait()

    async def _shutdown(self, grace: float) -> None:
        self._http.stop()  # stops accepting; closes the listening sockets
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except asyncio.TimeoutError:
            log.warning("REST: %d request(s) still running after %g s; closing their "
                        "connections", self._in_flight, grace)
        for stream in list(self.detached):
            stream.close()
        await self._http.close_all_connections()
        self._stopped.set()

    # ------------------------------------------------------------- any thread

    def start(self) -> None:
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(),), name="rest-io", daemon=True
        )
        self._thread.start()
        self._ready.wait()

    def stop_accepting(self) -> None:
        """Closes the listening sockets, so new connections are refused at
        once; open connections and in-flight requests go on."""
        if self._thread is None:
            for sock in self._sockets:
                sock.close()
            return
        done = threading.Event()

        def stop_http():
            self._http.stop()
            done.set()

        self._loop.call_soon_threadsafe(stop_http)
        done.wait(5)

    def stop(self, grace: float) -> None:
        """Stops accepting, lets in-flight requests finish (up to ``grace`` s),
        then closes every connection."""
        if self._thread is None:
            for sock in self._sockets:
                sock.close()
        else:
            asyncio.run_coroutine_threadsafe(self._shutdown(grace), self._loop).result()
            self._thread.join()
        self.pool.shutdown(wait=True, cancel_futures=True)
