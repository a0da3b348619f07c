"""Full-catalog top-K ranking metrics, streamed over batches of eval clicks.

Every eval click has exactly one relevant item, the clicked one. A scorer
gives each click a score row over the whole candidate catalogue; the click's
already-seen items are removed (score -inf); the clicked item's 0-based rank
among the remaining candidates (ties: lower candidate index first, as
`tf.math.top_k` orders them) decides every metric. With rank r and hit = r < K:

  recall@K (= hit rate@K)  hit
  precision@K              hit / K
  F1@K                     2 P R / (P + R) = hit * 2 / (K + 1), per click
  AP@K                     hit / (r + 1)   (one relevant item)
  NDCG@K                   hit / log2(r + 2)   (ideal DCG = 1)
  reciprocal rank          1 / (r + 1), no cut-off
  coverage@K               share of the catalogue in at least one top-K list

All are averaged over clicks (MAP@K, MRR are the means of AP@K and RR). A
clicked item that is not a candidate, or that is among the excluded seen
items, is a miss for every scorer. Only per-metric sums and one `[N]` array
are kept between batches, so memory does not grow with the number of clicks.

`rank_clicks` is the one loop that ranks eval clicks: the evaluator (model,
baselines, last blessed model), early stopping and the trending prior's
calibration all call it with their own scorers.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from collections.abc import Callable, Iterable, Iterator  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402

NOT_A_CANDIDATE = -1
# Rank of a click whose item cannot be retrieved (seen or not a candidate).
MISS = np.iinfo(np.int64).max
POPULARITY_BUCKETS = ("head", "torso", "tail")
# How much history a query has: none, short (1 .. short_history_max items), long.
HISTORY_BUCKETS = ("none", "short", "long")
# Whether the clicked item had training clicks (`known`) or not (`new`).
ITEM_FRESHNESS = ("known", "new")


def history_bucket(length: int, short_history_max: int) -> str:
    """`none`, `short` or `long` for a query with `length` history items."""
    if length <= 0:
        return "none"
    return "short" if length <= short_history_max else "long"


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


def target_ranks(masked_scores: tf.Tensor, target_index: tf.Tensor) -> np.ndarray:
    """0-based rank of each click's item among its unseen candidates.

    Args:
      masked_scores: float32 `[B, N]`, seen candidates at -inf (`mask_seen`).
      target_index: int `[B]` clicked item's candidate index or `NOT_A_CANDIDATE`.

    Returns:
      int64 `[B]`: the number of candidates ranked before the item (higher
      score, or equal score and lower index); `MISS` for a seen or unknown item.
    """
    target_index = tf.cast(target_index, tf.int64)
    known = target_index >= 0
    safe_index = tf.maximum(target_index, 0)
    target_score = tf.gather(masked_scores, safe_index, batch_dims=1)[:, None]  # [B, 1]
    candidate_index = tf.range(tf.shape(masked_scores, out_type=tf.int64)[1])[None, :]
    before = tf.logical_or(
        masked_scores > target_score,
        tf.logical_and(tf.equal(masked_scores, target_score),
                       candidate_index < safe_index[:, None]))
    ranks = tf.reduce_sum(tf.cast(before, tf.int64), axis=1).numpy()
    retrievable = tf.logical_and(known, tf.math.is_finite(target_score[:, 0])).numpy()
    return np.where(retrievable, ranks, MISS)


def top_candidates(masked_scores: tf.Tensor, k: int) -> np.ndarray:
    """Candidate indices of each row's top `k` unseen candidates, best first.

    Returns:
      int64 `[B, min(k, N)]`; `NOT_A_CANDIDATE` where a row has fewer than k
      unseen candidates.
    """
    k = min(k, int(masked_scores.shape[1]))
    values, indices = tf.math.top_k(masked_scores, k=k)
    return np.where(np.isfinite(values.numpy()), indices.numpy().astype(np.int64),
                    NOT_A_CANDIDATE)


def per_click_metrics(ranks: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The cut-off metrics of each click at K (formulas in the module docstring).

    Args:
      ranks: int64 `[B]` from `target_ranks`.
      k: cut-off.

    Returns:
      {"recall", "precision", "f1", "ap", "ndcg"}: float64 `[B]` each.
    """
    hit = ranks < k
    position = np.where(hit, ranks, 0).astype(np.float64) + 1.0
    return {
        "recall": hit.astype(np.float64),
        "precision": hit / k,
        "f1": hit * 2.0 / (k + 1),
        "ap": hit / position,
        "ndcg": hit / np.log2(position + 1.0),
    }


def reciprocal_ranks(ranks: np.ndarray) -> np.ndarray:
    """float64 `[B]`: 1 / (rank + 1), 0 for a miss."""
    found = ranks != MISS
    return np.where(found, 1.0 / (np.where(found, ranks, 0) + 1.0), 0.0)


def popularity_buckets(item_counts, head_click_share: float,
                       torso_click_share: float) -> np.ndarray:
    """Head/torso/tail bucket of every candidate by its share of training clicks.

    Items are taken most clicked first (ties by index); an item is head while
    the clicks of the items before it are under `head_click_share` of all
    clicks, torso while under `head_click_share + torso_click_share`, else
    tail. E.g. counts [5, 3, 1, 1] with shares 0.5/0.3: shares before each
    item are 0, .5, .8, .9 -> head, torso, tail, tail.

    Returns:
      int64 `[N]` index into `POPULARITY_BUCKETS`.
    """
    counts = np.asarray(item_counts, np.float64)
    order = np.lexsort((np.arange(len(counts)), -counts))
    total = counts.sum()
    before = (np.cumsum(counts[order]) - counts[order]) / (total if total > 0 else 1.0)
    bucket_sorted = np.where(before < head_click_share, 0,
                             np.where(before < head_click_share + torso_click_share, 1, 2))
    buckets = np.empty(len(counts), np.int64)
    buckets[order] = bucket_sorted
    return buckets


class RankingAccumulator:
    """Streaming sums of every metric for one scorer."""

    def __init__(self, ks, num_candidates: int):
        self.ks = sorted(ks)
        self.max_k = self.ks[-1]
        self.num_candidates = num_candidates
        self.examples = 0
        self.sums: dict[str, float] = {}
        self.rank_counts = np.zeros(self.max_k, np.int64)  # clicks found at each rank
        # Best (lowest) position each candidate reached in any top list.
        self.best_position = np.full(num_candidates, self.max_k, np.int64)
        self.groups: dict[tuple[str, str], dict[str, float]] = {}

    def add(self, ranks: np.ndarray, top: np.ndarray,
            groups: dict[str, list[str]] | None = None) -> None:
        """Adds one batch.

        Args:
          ranks: int64 `[B]` from `target_ranks`.
          top: int64 `[B, <= max K]` from `top_candidates`.
          groups: {breakdown: `[B]` group names}, e.g. {"history":
            ["cold", "warm", ...]}; `None` entries are left out of it.
        """
        self.examples += len(ranks)
        for k in self.ks:
            for name, values in per_click_metrics(ranks, k).items():
                key = f"{name}@{k}"
                self.sums[key] = self.sums.get(key, 0.0) + float(values.sum())
        self.sums["rr"] = self.sums.get("rr", 0.0) + float(reciprocal_ranks(ranks).sum())
        self.rank_counts += np.bincount(ranks[ranks < self.max_k], minlength=self.max_k)
        positions = np.broadcast_to(np.arange(top.shape[1]), top.shape)
        valid = top >= 0
        np.minimum.at(self.best_position, top[valid], positions[valid])
        for breakdown, names in (groups or {}).items():
            for group in set(n for n in names if n is not None):
                chosen = np.array([n == group for n in names])
                into = self.groups.setdefault((breakdown, group), {"num_examples": 0})
                into["num_examples"] += int(chosen.sum())
                for k in self.ks:
                    key = f"recall@{k}"
                    into[key] = into.get(key, 0) + int((ranks[chosen] < k).sum())

    def metrics(self) -> dict[str, float]:
        """{"recall@K", "precision@K", "f1@K", "map@K", "ndcg@K", "coverage@K", "mrr"}."""
        n = max(self.examples, 1)
        out = {}
        for k in self.ks:
            for name, total_name in (("recall", "recall"), ("precision", "precision"),
                                     ("f1", "f1"), ("map", "ap"), ("ndcg", "ndcg")):
                out[f"{name}@{k}"] = self.sums.get(f"{total_name}@{k}", 0.0) / n
            out[f"coverage@{k}"] = float((self.best_position < k).sum()) / self.num_candidates
        out["mrr"] = self.sums.get("rr", 0.0) / n
        return out

    def recall_curve(self) -> list[float]:
        """recall@1 .. recall@max K."""
        return (np.cumsum(self.rank_counts) / max(self.examples, 1)).tolist()

    def breakdowns(self) -> dict[str, dict[str, dict[str, float]]]:
        """{breakdown: {group: {"num_examples", "recall@K"}}}; recall within the group."""
        out: dict = {}
        for (breakdown, group), sums in sorted(self.groups.items()):
            n = sums["num_examples"]
            out.setdefault(breakdown, {})[group] = {
                "num_examples": n, **{f"recall@{k}": sums[f"recall@{k}"] / n if n else 0.0
                                      for k in self.ks}}
        return out


def index_lookup(item_ids: list[str]) -> tf.lookup.StaticHashTable:
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(item_ids), tf.range(len(item_ids), dtype=tf.int64)),
        default_value=NOT_A_CANDIDATE)


def popularity_scorer(counts) -> Callable[[dict], tf.Tensor]:
    """Scores `[B, N]` of a batch: the same per-candidate `counts` in every row."""
    row = tf.constant(np.asarray(counts, np.float32))[None, :]
    return lambda batch: tf.tile(row, [tf.shape(batch[features.ITEM_ID])[0], 1])


# Upper bound of scores held at once per scorer (batch rows x candidates):
# 2^24 float32 = 64 MiB, so a 1M-item catalogue is ranked 16 clicks at a time.
MAX_SCORES_PER_BATCH = 1 << 24

ScoreBatch = Callable[[dict], dict[str, tf.Tensor]]
GroupBatch = Callable[[dict, np.ndarray], dict[str, list]]


def seen_index(history: tf.Tensor, lookup: tf.lookup.StaticHashTable,
               exclude_history: int) -> tf.Tensor:
    """int64 `[B, E]` candidate indices of the `exclude_history` most recent
    history items (`NOT_A_CANDIDATE` for padding and unknown items)."""
    excluded = features.recent_history(history, exclude_history)
    return tf.where(tf.equal(excluded, features.PADDING),
                    tf.constant(NOT_A_CANDIDATE, tf.int64), lookup.lookup(excluded))


def first_clicks(batches: Iterable[dict], count: int) -> Iterator[dict]:
    """The batches cut to their first `count` clicks in all."""
    left = count
    for batch in batches:
        if left <= 0:
            return
        rows = min(left, int(batch[features.ITEM_ID].shape[0]))
        yield {name: values[:rows] for name, values in batch.items()}
        left -= rows


def rank_clicks(batches: Iterable[dict], score_batch: ScoreBatch, item_ids: list[str],
                ks, exclude_history: int, group_batch: GroupBatch | None = None,
                max_rows: int | None = None) -> dict[str, RankingAccumulator]:
    """Ranks every eval click's item among all candidates, for every scorer.

    Args:
      batches: dicts with `item_id` `[B]` and `history` `[B, L]` (most recent
        last, `""` padding) and whatever the scorers read.
      score_batch: batch -> {scorer name: float32 `[B, N]` scores over `item_ids`}.
      item_ids: the N candidates, in score-column order.
      ks: the cut-offs.
      exclude_history: the click's most recent history items removed from
        the ranking (seen items); 0 keeps them.
      group_batch: (batch, clicked item's candidate index `[B]`) ->
        {breakdown: `[B]` group names}, for the accumulators' breakdowns.
      max_rows: clicks scored at once (batches are cut to it); at most
        `MAX_SCORES_PER_BATCH // N` whatever is asked.

    Returns:
      {scorer name: RankingAccumulator} holding every metric's sums.
    """
    lookup = index_lookup(item_ids)
    cap = max(1, MAX_SCORES_PER_BATCH // max(len(item_ids), 1))
    rows = min(max_rows or cap, cap)
    accumulators: dict[str, RankingAccumulator] = {}
    for full_batch in batches:
        size = int(tf.shape(full_batch[features.ITEM_ID])[0])
        for start in range(0, size, rows):
            batch = {key: value[start:start + rows] for key, value in full_batch.items()}
            history = tf.convert_to_tensor(batch[features.HISTORY])
            target = lookup.lookup(batch[features.ITEM_ID])
            seen = seen_index(history, lookup, exclude_history)
            groups = group_batch(batch, target.numpy()) if group_batch else None
            for name, scores in score_batch(batch).items():
                masked = mask_seen(scores, seen)
                accumulator = accumulators.setdefault(
                    name, RankingAccumulator(ks, len(item_ids)))
                accumulator.add(target_ranks(masked, target),
                                top_candidates(masked, max(ks)), groups)
    return accumulators
