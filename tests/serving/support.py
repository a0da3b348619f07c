"""Test helpers: a real toy retrieval SavedModel and a retrieval-serve subprocess."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from serving.saved_model_loader import READY_MARKER

REPO_ROOT = Path(__file__).resolve().parents[2]
ITEMS = [f"item_{i}" for i in range(8)]
TOP_K = 4
NUM_USER_BUCKETS = 16
EMBEDDING_DIM = 4


class ToyRetrieval(tf.Module):
    """Scores a fixed item list by dot product of hashed-user and item embeddings.

    Args:
        seed: Seeds the embeddings, so different versions rank differently.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.items = tf.constant(ITEMS)
        self.item_embeddings = tf.Variable(
            rng.normal(size=(len(ITEMS), EMBEDDING_DIM)).astype(np.float32)
        )
        self.user_embeddings = tf.Variable(
            rng.normal(size=(NUM_USER_BUCKETS, EMBEDDING_DIM)).astype(np.float32)
        )

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None, None], tf.string, name="history"),
        ]
    )
    def serve(self, user_id, history):
        """user_id [B], history [B, L] -> item_ids str [B, K], scores f32 [B, K]."""
        tf.debugging.assert_equal(
            tf.shape(user_id)[0],
            tf.shape(history)[0],
            message="user_id and history must have the same batch size",
        )
        buckets = tf.strings.to_hash_bucket_fast(user_id, NUM_USER_BUCKETS)
        users = tf.gather(self.user_embeddings, buckets)  # [B, D]
        scores = tf.matmul(users, self.item_embeddings, transpose_b=True)  # [B, N]
        seen = tf.reduce_any(
            tf.equal(history[:, :, None], self.items[None, None, :]), axis=1
        )  # [B, N]
        # Seen items sink to the bottom; N - L >= K in tests so they never surface.
        scores = tf.where(seen, tf.fill(tf.shape(scores), -1e9), scores)
        top = tf.math.top_k(scores, k=TOP_K)
        return {"item_ids": tf.gather(self.items, top.indices), "scores": top.values}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None, None], tf.string, name="history"),
            tf.TensorSpec([], tf.int32, name="k"),
        ]
    )
    def serve_k(self, user_id, history, k):
        """Like ``serve`` but returns the best ``k`` (scalar) items per row."""
        buckets = tf.strings.to_hash_bucket_fast(user_id, NUM_USER_BUCKETS)
        scores = tf.matmul(
            tf.gather(self.user_embeddings, buckets), self.item_embeddings, transpose_b=True
        )
        top = tf.math.top_k(scores, k=k)
        return {"item_ids": tf.gather(self.items, top.indices), "scores": top.values}


class FailsWarmup(ToyRetrieval):
    """Loads fine but its serving_default rejects empty user ids, as a broken
    model would fail its first (warm-up) query."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None, None], tf.string, name="history"),
        ]
    )
    def serve(self, user_id, history):
        tf.debugging.assert_greater(
            tf.reduce_min(tf.strings.length(user_id)), 0, message="broken model"
        )
        return {"item_ids": tf.fill(tf.shape(history), "x"),
                "scores": tf.zeros(tf.shape(history))}


class SlowRetrieval(ToyRetrieval):
    """ToyRetrieval whose serving_default first sleeps 0.1 s per character of
    the first user id (the empty warm-up id: no sleep), to hold a request in
    flight while a test changes the server's config."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None, None], tf.string, name="history"),
        ]
    )
    def serve(self, user_id, history):
        # tf.data's test-only sleep: a real wait that burns no CPU.
        from tensorflow.python.data.experimental.ops import testing

        micros = tf.cast(tf.strings.length(user_id[0]), tf.int64) * 100_000
        slept = tf.data.Dataset.range(1).apply(testing.sleep(micros)).reduce(
            tf.constant(0, tf.int64), lambda total, x: total + x)
        with tf.control_dependencies([slept]):
            return ToyRetrieval.serve.python_function(self, user_id, history)


def save_version(
    base_path: Path, version: int, seed: int = 0, module_class=ToyRetrieval
) -> ToyRetrieval:
    """Saves a ToyRetrieval as ``base_path/<version>``, appearing atomically
    with the ready marker, so a server loads it without waiting for it to settle."""
    module = module_class(seed)
    staging = base_path / f".staging-{version}"
    tf.saved_model.save(
        module,
        str(staging),
        signatures={"serving_default": module.serve, "serve_k": module.serve_k},
    )
    (staging / READY_MARKER).write_bytes(b"")
    # Rename so the poller never sees a half-written version.
    os.rename(staging, base_path / str(version))
    return module


def write_corrupt_version(base_path: Path, version: int) -> None:
    """Creates ``base_path/<version>/saved_model.pb`` holding garbage bytes (and
    the ready marker: complete, but corrupt)."""
    staging = base_path / f".staging-{version}"
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(
        b"\xff\xfe this is not a SavedModel \x00\x01"
    )
    (staging / READY_MARKER).write_bytes(b"")
    os.rename(staging, base_path / str(version))


def free_port() -> int:
    """Returns a port that was free a moment ago (bind to port 0, then release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def predict_request(
    user_ids, histories, model_name="retrieval"
) -> predict_pb2.PredictRequest:
    """Builds a PredictRequest with user_id string [B] and history string [B, L]."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.inputs["user_id"].CopyFrom(tf.make_tensor_proto(user_ids, dtype=tf.string))
    history = np.array(histories, dtype=object).reshape(len(histories), -1)
    request.inputs["history"].CopyFrom(
        tf.make_tensor_proto(history, dtype=tf.string, shape=list(history.shape))
    )
    return request


def subprocess_env() -> dict[str, str]:
    env = dict(
        os.environ,
        TF_USE_LEGACY_KERAS="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",
    )
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])
    )
    return env


class ServerProcess:
    """``python -m serving.server`` in a subprocess; waits for its ready line.

    Args:
        base_path: ``--model_base_path``; None when ``extra_args`` hold
            ``--model_config_file``.
        log_path: File receiving the server's stderr (inspect it on failure).
        extra_args: More flags.
        wait_ready: Block until the ready line appears (else see ``wait()``).
        rest: Also start the REST API on a free port (``rest_url``).
    """

    READY_PREFIX = "retrieval-serve: serving model"
    REST_PREFIX = "retrieval-serve: REST API on "

    def __init__(
        self,
        base_path: Path | None,
        log_path: Path,
        extra_args=(),
        wait_ready=True,
        rest: bool = False,
    ):
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.rest_url = None
        base_args = ["--model_base_path", str(base_path)] if base_path else []
        if rest:
            base_args.append(f"--rest_api_port={free_port()}")
        self.log_path = log_path
        self.lines: queue.Queue[str | None] = queue.Queue()
        # Stays open for the process lifetime; closed in terminate().
        self._log = open(log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "serving.server",
                f"--port={self.port}",
                *base_args,
                "--file_system_poll_wait_seconds=1",
                *extra_args,
            ],
            cwd=REPO_ROOT,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self.ready_line = self.wait_for_line(self.READY_PREFIX) if wait_ready else None
        if rest and wait_ready:
            self.rest_url = self.wait_for_line(self.REST_PREFIX)[len(self.REST_PREFIX):]

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_line(self, prefix: str, timeout: float = 60.0) -> str:
        """Returns the first stdout line starting with ``prefix``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(
                    f"server exited ({self.proc.wait()}) before printing "
                    f"{prefix!r}; stderr:\n{self.stderr()}"
                )
            if line.startswith(prefix):
                return line
        raise TimeoutError(
            f"no {prefix!r} line within {timeout}s; stderr:\n{self.stderr()}"
        )

    def stderr(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def terminate(self, timeout: float = 20.0) -> int:
        """Sends SIGTERM and returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()


def http_json(
    method: str, url: str, body=None, raw: bytes | None = None, timeout: float = 10.0
):
    """Sends a JSON (or ``raw``) body; returns (HTTP status, decoded JSON answer)."""
    import json
    import urllib.error
    import urllib.request

    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
