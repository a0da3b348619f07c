"""How far the served ANN index is from exact search, and how fast it answers.

Both exports answer the same eval requests (`user_id`, `history` and any extra
query inputs the model takes) through their `serving_default` signature;
recall@K is the share of the brute-force export's top K that the ScaNN export
also returns (the "bqml-scann" check). Latency is
measured on single-request calls of the ScaNN export, in process.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def serving_input_specs(export_dir: str, signature: str = "serving_default"
                        ) -> list[tf.TensorSpec]:
    """The named inputs of an export's signature, read from saved_model.pb
    without loading the model (no ScaNN ops needed)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    inputs = saved.meta_graphs[0].signature_def[signature].inputs
    return [tf.TensorSpec([None] * len(info.tensor_shape.dim), tf.as_dtype(info.dtype),
                          name=name) for name, info in sorted(inputs.items())]


def _padded(values: list, dtype: tf.DType) -> np.ndarray:
    """Per-request values -> one array; token lists padded with `""`."""
    if values and isinstance(values[0], (list, tuple)):
        width = max(1, max(len(v) for v in values))
        return np.array([list(v) + [""] * (width - len(v)) for v in values], dtype=object)
    return np.array(values, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)


def _load(path: str):
    from scann.scann_ops.py import scann_ops  # noqa: F401  registers Scann> ops

    return tf.saved_model.load(path).signatures["serving_default"]


def ann_check(scann_dir: str, brute_force_dir: str, user_ids: list[str],
              histories: list[list[str]], latency_calls: int = 200,
              batch_size: int = 256, extra: dict[str, list] | None = None) -> dict:
    """Recall@K of the ScaNN export against the brute-force export, and latency.

    Args:
      scann_dir: the ScaNN serving SavedModel.
      brute_force_dir: the brute-force serving SavedModel of the same towers.
      user_ids: `[Q]` request user ids (eval clicks).
      histories: `[Q]` request histories (any lengths; padded here).
      latency_calls: single-request calls timed after a warm-up.
      batch_size: requests per recall batch.
      extra: the model's extra query inputs, name -> one value (or token
        list) per request.

    Returns:
      {"recall@K", "num_queries", "latency_ms_p50", "latency_ms_p95",
      "latency_ms_p99", "latency_calls"}.
    """
    if not user_ids or len(user_ids) != len(histories):
        raise ValueError(f"ann_check: got {len(user_ids)} user ids and {len(histories)} "
                         "histories; expected the same non-zero number")
    scann, exact = _load(scann_dir), _load(brute_force_dir)
    width = max(1, max(len(h) for h in histories))
    padded = np.array([list(h) + [""] * (width - len(h)) for h in histories], dtype=object)
    users = np.array(user_ids, dtype=object)
    specs = exact.structured_input_signature[1]
    extra = extra or {}
    wanted = sorted(set(specs) - {"user_id", "history"})
    if sorted(extra) != wanted:
        raise ValueError(f"ann_check: the exports take the extra inputs {wanted}; got "
                         f"{sorted(extra)}")
    arrays = {"user_id": users, "history": padded}
    arrays.update({name: _padded(extra[name], specs[name].dtype) for name in wanted})

    def request_rows(start: int, stop: int) -> dict:
        return {name: tf.constant(array[start:stop], specs[name].dtype)
                for name, array in arrays.items()}

    overlaps, k = [], None
    for start in range(0, len(users), batch_size):
        request = request_rows(start, start + batch_size)
        got = scann(**request)["item_ids"].numpy()
        want = exact(**request)["item_ids"].numpy()
        k = want.shape[1]
        overlaps += [len(set(a) & set(b)) / k for a, b in zip(got, want, strict=True)]
    timings = []
    for i in range(latency_calls + 10):
        index = i % len(users)
        request = request_rows(index, index + 1)
        start = time.perf_counter()
        scann(**request)
        if i >= 10:  # the first calls build caches
            timings.append((time.perf_counter() - start) * 1000.0)
    p50, p95, p99 = np.percentile(timings, [50, 95, 99])
    return {f"recall@{k}": float(np.mean(overlaps)), "num_queries": len(overlaps),
            "latency_ms_p50": float(p50), "latency_ms_p95": float(p95),
            "latency_ms_p99": float(p99), "latency_calls": len(timings)}
