"""Full-catalog top-K metrics, computed in batches with TF.

For each eval click: score every candidate, remove the items of the click's
history (already seen), take the top K and check whether the clicked item is
among them. Hit rate@K (= recall@K with one relevant item per click) is the
share of clicks whose item is retrieved. A clicked item outside the candidate
vocabulary is a miss for every method.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

NOT_A_CANDIDATE = -1


def mask_seen(scores: tf.Tensor, seen_index: tf.Tensor) -> tf.Tensor:
    """Sets the scores of already-seen candidates to -inf.

    Args:
      scores: float32 `[B, N]`.
      seen_index: int `[B, E]` candidate indices, `NOT_A_CANDIDATE` as padding.

    Returns:
      float32 `[B, N]`.
    """
    seen_index = tf.cast(seen_index, tf.int64)
    rows = tf.broadcast_to(tf.range(tf.shape(seen_index, out_type=tf.int64)[0])[:, None],
                           tf.shape(seen_index, out_type=tf.int64))
    valid = seen_index >= 0
    coordinates = tf.stack([tf.boolean_mask(rows, valid), tf.boolean_mask(seen_index, valid)],
                           axis=1)
    updates = tf.fill(tf.shape(coordinates)[:1], tf.constant(float("-inf"), scores.dtype))
    return tf.tensor_scatter_nd_update(scores, coordinates, updates)


def hits_at_k(scores: tf.Tensor, target_index: tf.Tensor, seen_index: tf.Tensor,
              ks: list[int]) -> dict[int, int]:
    """Counts clicks whose target is in the top K, for each K.

    Args:
      scores: float32 `[B, N]` candidate scores.
      target_index: int `[B]` index of the clicked item, `NOT_A_CANDIDATE` if
        it is not a candidate.
      seen_index: int `[B, E]` indices to exclude, `NOT_A_CANDIDATE` padding.
      ks: cut-offs; a K larger than N counts as N.

    Returns:
      {K: number of hits}. Ties are broken by candidate index (lower first),
      as `tf.math.top_k` does.
    """
    masked = mask_seen(scores, seen_index)
    num_candidates = int(scores.shape[1])
    max_k = min(max(ks), num_candidates)
    _, top = tf.math.top_k(masked, k=max_k)  # [B, max_k]
    target = tf.cast(target_index, top.dtype)[:, None]
    # A seen target was masked to -inf; it can still sit in the top K when
    # fewer than K unseen candidates exist, so require a finite score too.
    found = tf.logical_and(tf.equal(top, target),
                           tf.math.is_finite(tf.gather(masked, top, batch_dims=1)))
    rank = tf.where(tf.reduce_any(found, axis=1),
                    tf.argmax(tf.cast(found, tf.int32), axis=1, output_type=tf.int32), max_k)
    return {k: int(tf.reduce_sum(tf.cast(rank < min(k, max_k), tf.int32))) for k in ks}


class HitCounter:
    """Accumulates hits over batches for several named scorers."""

    def __init__(self, ks: list[int]):
        self.ks = sorted(ks)
        self.examples = 0
        self.hits: dict[str, dict[int, int]] = {}

    def add(self, name: str, scores, target_index, seen_index) -> None:
        counts = hits_at_k(scores, target_index, seen_index, self.ks)
        into = self.hits.setdefault(name, {k: 0 for k in self.ks})
        for k, n in counts.items():
            into[k] += n

    def hit_rates(self) -> dict[str, dict[str, float]]:
        """{scorer: {"hit_rate@K": value}} over all examples added."""
        denominator = max(self.examples, 1)
        return {name: {f"hit_rate@{k}": hits[k] / denominator for k in self.ks}
                for name, hits in self.hits.items()}


def index_lookup(item_ids: list[str]) -> tf.lookup.StaticHashTable:
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(item_ids), tf.range(len(item_ids), dtype=tf.int64)),
        default_value=NOT_A_CANDIDATE)


def popularity_scores(counts: list[float], batch_size: int) -> tf.Tensor:
    """Popularity as scores `[B, N]` (counts, broadcast to the batch)."""
    row = tf.constant(np.asarray(counts, np.float32))[None, :]
    return tf.tile(row, [batch_size, 1])
