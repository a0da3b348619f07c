"""The SavedModels under test and the ways of calling them.

`BenchmarkRetrieval` stands in for the real export (hashed user -> query,
ScaNN or brute-force top K, history exclusion); `SessionSearch` runs a
signature the way TF Serving's C++ server does; the eager paths are what
`retrieval-serve` calls.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import config_pb2  # noqa: E402

from benchmarks.serving_latency import settings  # noqa: E402
from models.config import ScannConfig  # noqa: E402
from models.scann_index import ScannIndex  # noqa: E402
from models.serving_export import mask_seen  # noqa: E402


class BenchmarkRetrieval(tf.Module):
    """A stand-in for the real retrieval export: hashed-user query + top-K index.

    The query embedding of a request is a row of a fixed user table picked by
    hashing the user id; candidates are searched with a `ScannIndex` (`kind`
    ``scann``) or exactly with matmul + top_k (``brute_force``), and the most
    recent `EXCLUDE_HISTORY` history items are removed from the answer.

    Signatures:
      * ``serving_default(user_id [B], history [B, L]) -> item_ids [B, K], scores [B, K]``;
      * ``search(queries float32 [B, DIM]) -> indices int64 [B, K], scores [B, K]``.
    """

    def __init__(self, items: np.ndarray, users: np.ndarray, kind: str,
                 scann: ScannConfig | None = None):
        super().__init__()
        num_items = items.shape[0]
        self.item_ids = tf.Variable(
            tf.strings.join(["item_", tf.strings.as_string(tf.range(num_items))]),
            trainable=False)
        self.user_embeddings = tf.Variable(users, trainable=False)
        if kind == "scann":
            self.index = ScannIndex(tf.constant(items), tf.range(num_items, dtype=tf.int64),
                                    settings.FETCH_K, scann or ScannConfig())
            self.candidates = None
        elif kind == "brute_force":
            self.index = None
            self.candidates = tf.Variable(items, trainable=False)
        else:
            raise ValueError(f"kind {kind!r}: expected 'scann' or 'brute_force'")
        # The width is the run's (`settings.configure`), so the signature is made here.
        self.search = tf.function(self._search_signature, input_signature=[
            tf.TensorSpec([None, settings.DIM], tf.float32, name="queries")])

    def _search(self, queries: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(scores, int64 item indices), both `[B, FETCH_K]`, best first."""
        if self.index is not None:
            return self.index(queries)
        scores = tf.matmul(queries, self.candidates, transpose_b=True)
        top = tf.math.top_k(scores, k=settings.FETCH_K)
        return top.values, tf.cast(top.indices, tf.int64)

    def _search_signature(self, queries):
        scores, indices = self._search(queries)
        return {"indices": indices[:, :settings.K], "scores": scores[:, :settings.K]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id"),
                                  tf.TensorSpec([None, None], tf.string, name="history")])
    def serve(self, user_id, history):
        buckets = tf.strings.to_hash_bucket_fast(user_id, int(self.user_embeddings.shape[0]))
        scores, indices = self._search(tf.gather(self.user_embeddings, buckets))
        ids = tf.gather(self.item_ids, indices)
        # The export's own history exclusion (models/serving_export.py).
        scores = mask_seen(ids, scores, history, settings.EXCLUDE_HISTORY)
        best, order = tf.math.top_k(scores, k=settings.K)
        return {"item_ids": tf.gather(ids, order, batch_dims=1), "scores": best}

def save_module(module: BenchmarkRetrieval, path: Path, scann: bool) -> float:
    """Traces both signatures (ScaNN builds lazily), saves, returns seconds taken."""
    start = time.perf_counter()
    module.serve(tf.constant(["warmup"]), tf.constant([[""]]))
    module.search(tf.zeros([1, settings.DIM]))
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serve, "search": module.search},
        options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"] if scann else None))
    return time.perf_counter() - start

def directory_mb(path: Path) -> float:
    """Total size of the files under `path` in MiB."""
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)

def savedmodel_search(path: Path):
    """Loads a SavedModel eagerly; returns (loaded, `queries tensor -> indices ndarray`).

    The call goes through `loaded.signatures["search"]` (structured keyword
    input, dict output), as `retrieval-serve` calls `serving_default`.
    """
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["search"]

    def search(queries: tf.Tensor) -> np.ndarray:
        return signature(queries=queries)["indices"].numpy()

    return loaded, search

def eager_flat_search(loaded, check: tf.Tensor):
    """`queries tensor -> indices ndarray` through the eager signature's inner
    function with flat positional arguments (TensorFlow internals:
    `ConcreteFunction.inference_fn.call_flat`), skipping the structured-input
    binding, gradient-tape checks and output dict of the signature call.
    Diagnostic only; None if this TensorFlow lacks those internals.
    """
    signature = loaded.signatures["search"]
    inner = getattr(signature, "inference_fn", None)
    if inner is None or not hasattr(inner, "call_flat"):
        return None
    captured = list(signature.captured_inputs)
    position = sorted(signature.structured_outputs).index("indices")  # flat = sorted keys

    def search(queries: tf.Tensor) -> np.ndarray:
        return inner.call_flat(queries, *captured)[position].numpy()

    if not np.array_equal(search(check), signature(queries=check)["indices"].numpy()):
        return None
    return search

class SessionSearch:
    """The ``search`` signature of a SavedModel loaded the way TF Serving's C++
    server loads it, called with a float32 `[B, DIM]` array -> int64 indices
    `[B, K]`.

    Graph mode: a `tf.compat.v1.Session` imports the MetaGraph tagged ``serve``
    (restoring the variables and running the init op, which builds the ScaNN
    searcher), and each call is one C++ `Session::RunCallable` on the
    signature's input and output tensor names (`CallableOptions`), the C++
    counterpart of TF Serving's `Session::Run` by tensor names. (The public
    `Session.make_callable` with a feed list falls back to `Session.run`,
    whose Python feed/fetch handling costs more than the search: it is kept as
    `run_feed_dict` for comparison.) By default the executor hands the ops to
    the process's inter-op thread pool and the caller waits, as in TF Serving
    by default; with `caller_thread` every op runs on the calling thread
    (`inter_op_parallelism_threads=-1` in the session config).
    """

    def __init__(self, path: Path, caller_thread: bool = False):
        config = tf.compat.v1.ConfigProto(
            inter_op_parallelism_threads=-1 if caller_thread else 0)
        graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=graph, config=config)
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(
                self.session, [tf.saved_model.SERVING], str(path))
        signature = meta_graph.signature_def["search"]
        self.feed = signature.inputs["queries"].name
        self.fetch = signature.outputs["indices"].name
        make = getattr(self.session, "_make_callable_from_options", None)  # TF internals
        self.runs_callable = make is not None
        self._callable = (make(config_pb2.CallableOptions(feed=[self.feed], fetch=[self.fetch]))
                          if make else None)

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        if self._callable is None:
            return self.run_feed_dict(queries)
        return self._callable(queries)[0]

    def run_feed_dict(self, queries: np.ndarray) -> np.ndarray:
        """The same signature through `Session.run(fetch, feed_dict)`."""
        return self.session.run(self.fetch, feed_dict={self.feed: queries})

    def close(self) -> None:
        self.session.close()

class NoOpSearch(tf.Module):
    """A `search` signature that does no search: the fixed cost of calling a
    SavedModel signature from Python, which the ScaNN and brute-force rows include."""

    def __init__(self):
        super().__init__()
        self.search = tf.function(self._search_signature, input_signature=[
            tf.TensorSpec([None, settings.DIM], tf.float32, name="queries")])

    def _search_signature(self, queries):
        return {"indices": tf.cast(queries[:, :1], tf.int64)}
