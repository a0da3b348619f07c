"""End-to-end gRPC: `retrieval-serve` on the ScaNN export under 1..N
closed-loop clients, beside the same requests in process and a model-less
gRPC round trip."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import queue  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent import futures  # noqa: E402
from pathlib import Path  # noqa: E402

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: E402

from benchmarks.serving_latency import settings  # noqa: E402
from benchmarks.serving_latency.timing import (  # noqa: E402
    cpu_counters,
    cpu_usage,
    process_cpu_seconds,
    summarize_ms,
    time_single,
)
from serving.client import build_request, query  # noqa: E402
from serving.session_model import SessionModel  # noqa: E402


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

class ServerProcess:
    """``python -m serving.server`` on a free 127.0.0.1 port; a context manager
    that waits for the ready line and always stops the server with SIGTERM."""

    def __init__(self, base_path: Path, log_path: Path, extra_args: tuple[str, ...] = ()):
        self.base_path = base_path
        self.log_path = log_path
        self.extra_args = tuple(extra_args)
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.proc: subprocess.Popen | None = None
        self.ready_s = 0.0

    def __enter__(self) -> ServerProcess:
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONUNBUFFERED="1")
        start = time.perf_counter()
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "serving.server", "--host", "127.0.0.1",
                 "--port", str(self.port), "--model_base_path", str(self.base_path),
                 "--file_system_poll_wait_seconds", "0", *self.extra_args],
                cwd=settings.REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.perf_counter() - start
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + settings.SERVER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"retrieval-serve exited ({self.proc.wait()}) before "
                                   f"it was ready; log:\n{self.log_tail()}")
            if line.startswith(settings.READY_PREFIX):
                return
        raise TimeoutError(f"retrieval-serve not ready within {settings.SERVER_READY_TIMEOUT_S}s; "
                           f"log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's stderr log."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

def make_requests(count: int, seed: int = settings.SEED) -> list[tuple[str, list[str]]]:
    """`count` (user id, 10-item history) pairs over the synthetic catalogue."""
    rng = np.random.default_rng(seed + 1)
    return [(f"user_{i}", [f"item_{j}" for j in rng.integers(0, settings.NUM_ITEMS,
                                                               settings.HISTORY_LEN)])
            for i in range(count)]

def check_response(target: str, user: str) -> dict:
    """Checks answers through `serving.client.query`: K items, best first, and the
    user's top 3 items gone once they are in the request's history."""
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        first = query(stub, [user], [[]])[0]
        history = [item for item, _ in first[:3]]
        second = query(stub, [user], [history])[0]
    scores = [score for _, score in second]
    check = {"items": len(second), "sorted": scores == sorted(scores, reverse=True),
             "history_excluded": not set(history) & {item for item, _ in second},
             "next_items_kept": [item for item, _ in second[:3]]
             == [item for item, _ in first[3:6]]}
    check["ok"] = check["items"] == settings.K and all(v for k, v in check.items() if k != "items")
    return check

class LoadLevel:
    """Shared state of one concurrency level: request budget, deadline, results."""

    def __init__(self, concurrency: int):
        self.lock = threading.Lock()
        self.issued = 0
        self.start = 0.0
        self.deadline = 0.0
        self.latencies: list[float] = []
        self.failures = 0
        self.errors: dict[str, int] = {}
        self.barrier = threading.Barrier(concurrency, action=self._begin)

    def _begin(self) -> None:
        self.start = time.perf_counter()
        self.deadline = self.start + settings.GRPC_SECONDS

    def claim(self) -> bool:
        """Takes one request from the budget; False once it or the time is spent."""
        with self.lock:
            if self.issued >= settings.GRPC_MAX_REQUESTS or time.perf_counter() >= self.deadline:
                return False
            self.issued += 1
            return True

    def record(self, latencies: list[float], errors: list[str]) -> None:
        with self.lock:
            self.latencies.extend(latencies)
            self.failures += len(errors)
            for code in errors:
                self.errors[code] = self.errors.get(code, 0) + 1

def client_loop(target: str, requests: list, offset: int, level: LoadLevel) -> None:
    """One client thread: own channel and stub, warm-up, then timed Predicts."""
    latencies, errors = [], []
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for i in range(settings.GRPC_WARMUP_PER_THREAD):
            try:
                stub.Predict(requests[(offset + i) % len(requests)],
                             timeout=settings.GRPC_TIMEOUT_S)
            except grpc.RpcError:
                pass  # the timed loop counts failures
        level.barrier.wait()
        i = offset
        while level.claim():
            request = requests[i % len(requests)]
            i += 1
            start = time.perf_counter()
            try:
                stub.Predict(request, timeout=settings.GRPC_TIMEOUT_S)
            except grpc.RpcError as err:
                errors.append(err.code().name)
                continue
            latencies.append((time.perf_counter() - start) * 1000.0)
    level.record(latencies, errors)

def run_level(target: str, requests: list, concurrency: int, server_pid: int) -> dict:
    """Runs `concurrency` client threads for up to GRPC_SECONDS / GRPC_MAX_REQUESTS.

    Also records the server's CPU time per answered request: unlike latency it
    barely moves with machine load, so it shows the server's own cost per call.
    """
    level = LoadLevel(concurrency)
    cpu_before = process_cpu_seconds(server_pid)
    threads = [threading.Thread(target=client_loop,
                                args=(target, requests, n * 97, level), daemon=True)
               for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(settings.GRPC_SECONDS + settings.GRPC_TIMEOUT_S * 3 + 60)
    seconds = time.perf_counter() - level.start
    cpu_after = process_cpu_seconds(server_pid)
    server_cpu_ms = (round((cpu_after - cpu_before) * 1000.0 / max(len(level.latencies), 1), 3)
                     if cpu_before is not None and cpu_after is not None else None)
    return {"concurrency": concurrency, "requests": level.issued, "seconds": round(seconds, 2),
            "server_cpu_ms_per_request": server_cpu_ms,
            "throughput_rps": round(len(level.latencies) / seconds, 1),
            "failed": level.failures + sum(t.is_alive() for t in threads),
            "errors": level.errors, "latency": summarize_ms(level.latencies)}

def in_process_serving_default(version_dir: Path, pairs: list) -> dict:
    """Batch-1 latency of the served signature called in this process.

    The same (user id, history) requests the gRPC clients send, through the
    server's own call path (``serving.session_model``: graph-mode session, one
    C++ RunCallable per call) and through the eager
    ``loaded.signatures["serving_default"]``: what the server adds on top of
    the first is the gRPC + request handling overhead.
    """
    signature = SessionModel(str(version_dir)).signatures["serving_default"]
    arrays = [{"user_id": np.array([user.encode()], dtype=object),
               "history": np.array([[item.encode() for item in history]], dtype=object)}
              for user, history in pairs]
    session = time_single(signature, arrays)
    loaded = tf.saved_model.load(str(version_dir))
    eager_signature = loaded.signatures["serving_default"]
    inputs = [(tf.constant([user]), tf.constant([history])) for user, history in pairs]

    def call(one):
        return eager_signature(user_id=one[0], history=one[1])

    return {"batch1_latency": session, "call_path": "session RunCallable (as the server)",
            "eager_signature_batch1_latency": time_single(call, inputs)}

class ConstantPredict(prediction_service_pb2_grpc.PredictionServiceServicer):
    """A PredictionService whose Predict returns a fixed answer of the served
    size (100 ids + 100 scores) without any model: the gRPC + Python floor."""

    def __init__(self, response):
        self.response = response

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        return self.response

def grpc_floor(response, requests: list) -> dict:
    """Batch-1 latency of one client against `ConstantPredict` in this process.

    What a Predict round trip costs on this machine at this load before any
    model runs; the served model's latency sits on top of it.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        ConstantPredict(response), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            def call(request):
                return stub.Predict(request, timeout=settings.GRPC_TIMEOUT_S)

            return {"batch1_latency": time_single(call, requests)}
    finally:
        server.stop(0)

def run_levels(server: ServerProcess, requests: list) -> list[dict]:
    levels = []
    for concurrency in settings.GRPC_CONCURRENCY:
        levels.append(run_level(server.target, requests, concurrency, server.proc.pid))
        print(f"  grpc {levels[-1]}", flush=True)
    return levels

def bench_grpc(base_path: Path, log_path: Path) -> dict:
    """Serves `base_path` with retrieval-serve and measures each concurrency level,
    without and then with ``--enable_batching``."""
    pairs = make_requests(256)
    requests = [build_request([user], [history]) for user, history in pairs]
    in_process = in_process_serving_default(base_path / "1", pairs)
    counters = cpu_counters()
    with ServerProcess(base_path, log_path) as server:
        check = check_response(server.target, pairs[0][0])
        with grpc.insecure_channel(server.target) as channel:
            sample = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                requests[0], timeout=settings.GRPC_TIMEOUT_S)
        floor = grpc_floor(sample, requests)
        print(f"  grpc floor {floor}", flush=True)
        levels = run_levels(server, requests)
        ready_s = server.ready_s
    batching_file = log_path.parent / "batching.txt"
    batching_file.write_text(settings.BATCHING_PARAMETERS)
    print("  with --enable_batching ...", flush=True)
    with ServerProcess(base_path, log_path.with_suffix(".batching.log"),
                       ("--enable_batching", f"--batching_parameters_file={batching_file}"),
                       ) as batching_server:
        batched = run_levels(batching_server, requests)
    return {"server_ready_s": round(ready_s, 1), "server_exit": server.proc.returncode,
            "response_check": check, "history_len": settings.HISTORY_LEN, "batch_size": 1,
            "in_process_serving_default": in_process, "grpc_floor_no_model": floor,
            "server_overhead_p50_ms": round(levels[0]["latency"]["p50_ms"]
                                            - in_process["batch1_latency"]["p50_ms"], 3),
            "levels": levels,
            "batching": {"parameters_file": settings.BATCHING_PARAMETERS,
                         "server_exit": batching_server.proc.returncode, "levels": batched},
            "cpu": cpu_usage(counters, cpu_counters())}
