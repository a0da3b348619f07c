"""How far the served ANN index is from exact search, and how fast it answers.

Both exports answer the same eval requests (`user_id`, `history`) through their
`serving_default` signature; recall@K is the share of the brute-force export's
top K that the ScaNN export also returns (the "bqml-scann" check). Latency is
measured on single-request calls of the ScaNN export, in process.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def _load(path: str):
    from scann.scann_ops.py import scann_ops  # noqa: F401  registers Scann> ops

    return tf.saved_model.load(path).signatures["serving_default"]


def ann_check(scann_dir: str, brute_force_dir: str, user_ids: list[str],
              histories: list[list[str]], latency_calls: int = 200,
              batch_size: int = 256) -> dict:
    """Recall@K of the ScaNN export against the brute-force export, and latency.

    Args:
      scann_dir: the ScaNN serving SavedModel.
      brute_force_dir: the brute-force serving SavedModel of the same towers.
      user_ids: `[Q]` request user ids (eval clicks).
      histories: `[Q]` request histories (any lengths; padded here).
      latency_calls: single-request calls timed after a warm-up.
      batch_size: requests per recall batch.

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
    overlaps, k = [], None
    for start in range(0, len(users), batch_size):
        request = {"user_id": tf.constant(users[start:start + batch_size]),
                   "history": tf.constant(padded[start:start + batch_size])}
        got = scann(**request)["item_ids"].numpy()
        want = exact(**request)["item_ids"].numpy()
        k = want.shape[1]
        overlaps += [len(set(a) & set(b)) / k for a, b in zip(got, want, strict=True)]
    timings = []
    for i in range(latency_calls + 10):
        index = i % len(users)
        request = {"user_id": tf.constant(users[index:index + 1]),
                   "history": tf.constant(padded[index:index + 1])}
        start = time.perf_counter()
        scann(**request)
        if i >= 10:  # the first calls build caches
            timings.append((time.perf_counter() - start) * 1000.0)
    p50, p95, p99 = np.percentile(timings, [50, 95, 99])
    return {f"recall@{k}": float(np.mean(overlaps)), "num_queries": len(overlaps),
            "latency_ms_p50": float(p50), "latency_ms_p95": float(p95),
            "latency_ms_p99": float(p99), "latency_calls": len(timings)}
