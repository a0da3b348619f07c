"""REST connection handling: idle and slow clients hold no worker, deadlines
close them, and the connection cap and shutdown behave (live servers)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import statistics
import threading
import time

import pytest

from serving.model_config import single_model
from serving.model_manager import ModelManager
from serving.rest_api import RestServer
from serving.serving_core import RequestLimits, ServingCore
from tests.serving import support

GOOD = {"instances": [{"user_id": "u", "history": ["item_0"]}]}
PARTIAL_HEADER = b"POST /v1/models/retrieval:predict HTTP/1.1\r\nHost: x\r\nX-Slow: "


def _predict_seconds(url: str, count: int = 7) -> float:
    """Median wall time of ``count`` predicts, each on a new connection."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        status, answer = support.http_json("POST", url, GOOD, timeout=5)
        times.append(time.perf_counter() - start)
        assert status == 200, answer
    return statistics.median(times)


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


class SlowLoris(threading.Thread):
    """Sends a partial request header one byte per ``interval`` until stopped
    or until the server closes the connection (``closed_after`` seconds)."""

    def __init__(self, url: str, interval: float):
        super().__init__(daemon=True)
        self.sock = _connect(url)
        self.interval = interval
        self.stop = threading.Event()
        self.closed_after: float | None = None

    def run(self):
        start = time.monotonic()
        data = PARTIAL_HEADER + b"a" * 10_000
        for index in range(len(data)):
            if self.stop.wait(self.interval):
                break
            try:
                self.sock.sendall(data[index:index + 1])
            except OSError:
                self.closed_after = time.monotonic() - start
                break
            if _peer_closed(self.sock):
                self.closed_after = time.monotonic() - start
                break
        self.sock.close()


def _peer_closed(sock: socket.socket) -> bool:
    """True once the peer closed (or reset) the connection; never blocks."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def test_idle_and_slow_loris_connections_do_not_delay_predict(server):
    url = f"{server.rest_url}/v1/models/retrieval:predict"
    _predict_seconds(url, count=3)  # warm up
    unloaded = _predict_seconds(url)
    idle = [_connect(server.rest_url) for _ in range(64)]
    loris = SlowLoris(server.rest_url, interval=0.2)
    loris.start()
    try:
        time.sleep(0.5)  # the server has accepted them all
        loaded = _predict_seconds(url)
    finally:
        loris.stop.set()
        loris.join()
        for sock in idle:
            sock.close()
    assert loaded - unloaded < 0.1, (unloaded, loaded)


# --------------------------------------------- a dedicated server, short deadlines

READ_TIMEOUT = 0.5
IDLE_TIMEOUT = 1.0
MAX_CONNECTIONS = 8
MAX_BODY = 1 << 16


@pytest.fixture(scope="module")
def strict_rest(model_base):
    base, _ = model_base
    manager = ModelManager(single_model("retrieval", str(base)), 0)
    manager.load_initial()
    core = ServingCore(manager, RequestLimits(max_batch_size=8, max_k=4))
    rest = RestServer(
        ("127.0.0.1", 0), core, 2, MAX_BODY,
        read_timeout_seconds=READ_TIMEOUT,
        idle_timeout_seconds=IDLE_TIMEOUT,
        max_connections=MAX_CONNECTIONS,
    )
    rest.start()
    yield rest, f"http://127.0.0.1:{rest.port}"
    rest.stop(1.0)
    manager.stop()


def _read_response(sock: socket.socket, timeout: float) -> tuple[int | None, dict | None]:
    """Reads until the peer closes; returns (status, JSON body) or (None, None)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 16):
            data += chunk
    if not data:
        return None, None
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _wait_closed(sock: socket.socket, timeout: float) -> float:
    """Seconds until the peer closes ``sock`` (reading and dropping any data)."""
    start = time.monotonic()
    sock.settimeout(timeout)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(1 << 16):
            pass
    return time.monotonic() - start


def _assert_serves(url: str) -> None:
    status, answer = support.http_json("POST", f"{url}/v1/models/retrieval:predict", GOOD)
    assert status == 200, answer


def test_slow_loris_header_is_closed_after_the_deadline(strict_rest):
    _, url = strict_rest
    loris = SlowLoris(url, interval=0.05)
    loris.start()
    loris.join(timeout=IDLE_TIMEOUT + 5)
    loris.stop.set()
    assert loris.closed_after is not None, "slow-loris connection still open"
    assert IDLE_TIMEOUT - 0.1 <= loris.closed_after <= IDLE_TIMEOUT + 1.0
    _assert_serves(url)


def test_idle_connection_is_closed_after_the_idle_timeout(strict_rest):
    _, url = strict_rest
    with _connect(url) as sock:
        closed_after = _wait_closed(sock, IDLE_TIMEOUT + 5)
    assert IDLE_TIMEOUT - 0.1 <= closed_after <= IDLE_TIMEOUT + 1.0


def test_keep_alive_connection_serves_requests_then_idles_out(strict_rest):
    _, url = strict_rest
    body = json.dumps(GOOD).encode()
    request = (
        b"POST /v1/models/retrieval:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with _connect(url) as sock:
        for _ in range(3):
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(1 << 16)
            assert data.startswith(b"HTTP/1.1 200"), data
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(next(
                line.split(b":")[1] for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ))
            while len(rest) < length:
                rest += sock.recv(1 << 16)
            assert len(json.loads(rest)["predictions"]) == 1
        assert _wait_closed(sock, IDLE_TIMEOUT + 5) <= IDLE_TIMEOUT + 1.0


def test_slow_body_answers_408_after_the_read_deadline(strict_rest):
    _, url = strict_rest
    with _connect(url) as sock:
        sock.sendall(
            b"POST /v1/models/retrieval:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"instances": '
        )
        start = time.monotonic()
        status, answer = _read_response(sock, READ_TIMEOUT + 5)
        elapsed = time.monotonic() - start
    assert status == 408, answer
    assert "body" in answer["error"] and "within" in answer["error"]
    assert READ_TIMEOUT - 0.1 <= elapsed <= READ_TIMEOUT + 1.0
    _assert_serves(url)


def test_oversized_body_answers_400_without_reading_it(strict_rest):
    _, url = strict_rest
    with _connect(url) as sock:
        sock.sendall(
            b"POST /v1/models/retrieval:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: " + str(1 << 40).encode() + b"\r\n\r\n" + b"x" * 1000
        )
        status, answer = _read_response(sock, 5)
    assert status == 400 and "expected at most 65536" in answer["error"], answer


@pytest.mark.parametrize(
    "headers, http_status, fragment",
    [
        (b"Transfer-Encoding: chunked\r\n", 411, "send Content-Length"),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400,
         "expected Content-Length only"),
        (b"Content-Length: 5, 6\r\n", 400, "is not an integer"),
    ],
    ids=["chunked", "chunked_and_length", "two_lengths"],
)
def test_unsupported_framing_is_refused(strict_rest, headers, http_status, fragment):
    _, url = strict_rest
    with _connect(url) as sock:
        sock.sendall(b"POST /v1/models/retrieval:predict HTTP/1.1\r\nHost: x\r\n"
                     + headers + b"\r\n")
        status, answer = _read_response(sock, 5)
    assert status == http_status and fragment in answer["error"], answer


def test_connections_over_the_cap_answer_503(strict_rest):
    _, url = strict_rest
    held = [_connect(url) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        with _connect(url) as extra:
            status, answer = _read_response(extra, 5)
        assert status == 503 and "connections" in answer["error"], answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    _assert_serves(url)


def test_stop_lets_in_flight_request_finish_and_closes_idle_connections(model_base):
    base, _ = model_base
    manager = ModelManager(single_model("retrieval", str(base)), 0)
    manager.load_initial()
    core = ServingCore(manager, RequestLimits(max_batch_size=8, max_k=4))
    rest = RestServer(("127.0.0.1", 0), core, 2, MAX_BODY)
    rest.start()
    url = f"http://127.0.0.1:{rest.port}"
    idle = _connect(url)
    answers = []
    original = core.run

    def slow_run(*args, **kwargs):
        time.sleep(0.5)
        return original(*args, **kwargs)

    core.run = slow_run
    client = threading.Thread(target=lambda: answers.append(support.http_json(
        "POST", f"{url}/v1/models/retrieval:predict", GOOD)))
    client.start()
    time.sleep(0.2)  # the request is in flight
    start = time.monotonic()
    rest.stop(5.0)
    stopped_after = time.monotonic() - start
    client.join()
    manager.stop()
    assert answers and answers[0][0] == 200, answers
    assert stopped_after < 2.0
    assert _wait_closed(idle, 2) < 1.0
    idle.close()
    with pytest.raises(OSError):
        _connect(url)

