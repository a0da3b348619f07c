"""Merging the channels' ranked lists by the request's history bucket.

Weighted reciprocal-rank fusion: each channel ranks the catalogue without
the request's history items; its item at rank r (1-based) adds
`weight / (rrf_k + r)` to that item if r is within the channel's quota. The
weight and quota of a channel depend on the request's history bucket (none,
short, long: `topk_metrics.history_bucket`). A channel that cannot answer a
request (no history for item_cf or wals) adds nothing. The sum ranks the
merged list; items no channel put forward follow in trending order, so the
list is always full. An item put forward by several channels appears once.

`search` chooses the weights and quotas of each bucket on eval clicks:
starting from the best of "every channel at weight 1" and "each channel
alone", coordinate ascent over `weight_grid` and `quota_grid` on the hit
rate@k, keeping a change only if it raises the rate. A bucket's merge is
therefore never below its best single channel on the clicks it was chosen on.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse

from models.channels.config import MergeConfig
from models.topk_metrics import HISTORY_BUCKETS

# Scale of the trending tie-break under the fused scores: far below the
# smallest difference between two contributions (about 1e-5).
TIE_SCALE = 1e-7
# Rows fused at once (dense `[rows, N]` scores).
CHUNK_ROWS = 2048


@dataclasses.dataclass(frozen=True)
class MergeSetting:
    """{bucket: {channel: weight}} and {bucket: {channel: quota}}."""

    weights: dict
    quotas: dict

    def to_dict(self) -> dict:
        return {"weights": self.weights, "quotas": self.quotas}

    @classmethod
    def uniform(cls, channels, weight: float, quota: int) -> MergeSetting:
        return cls({b: {c: weight for c in channels} for b in HISTORY_BUCKETS},
                   {b: {c: quota for c in channels} for b in HISTORY_BUCKETS})

    def replace(self, bucket: str, channel: str, weight: float | None = None,
                quota: int | None = None) -> MergeSetting:
        weights = {b: dict(w) for b, w in self.weights.items()}
        quotas = {b: dict(q) for b, q in self.quotas.items()}
        if weight is not None:
            weights[bucket][channel] = weight
        if quota is not None:
            quotas[bucket][channel] = quota
        return MergeSetting(weights, quotas)


def tie_break(trending: np.ndarray) -> np.ndarray:
    """float32 `[N]`: the trending counts scaled to at most `TIE_SCALE`, added
    under fused (or related-item) scores so trending orders what they leave tied."""
    trending = np.asarray(trending, np.float64)
    return (TIE_SCALE * trending / max(trending.max(), 1e-12)).astype(np.float32)


def bucket_index(lengths: np.ndarray, short_history_max: int) -> np.ndarray:
    """int `[Q]`: index in `HISTORY_BUCKETS` of each request's history length."""
    lengths = np.asarray(lengths)
    return np.where(lengths <= 0, 0, np.where(lengths <= short_history_max, 1, 2))


def ranked_lists(scores: np.ndarray, answered: np.ndarray, seen: scipy.sparse.csr_matrix,
                 depth: int) -> np.ndarray:
    """int `[Q, depth]`: each request's best `depth` unseen candidates, best
    first; -1 throughout for a request the channel does not answer."""
    scores = np.array(scores, np.float32, copy=True)
    rows, cols = seen.nonzero()
    scores[rows, cols] = -np.inf
    depth = min(depth, scores.shape[1])
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    ranked = np.take_along_axis(top, order, axis=1)
    ranked[~np.asarray(answered, bool)] = -1
    return ranked


def fuse(lists: dict[str, np.ndarray], buckets: np.ndarray, setting: MergeSetting,
         tie: np.ndarray, rrf_k: float, seen: scipy.sparse.csr_matrix | None = None
         ) -> np.ndarray:
    """float32 `[Q, N]` merged scores (seen items at -inf when `seen` is given).

    Args:
      lists: {channel: `ranked_lists`' `[Q, D]`}.
      buckets: `bucket_index` of each request.
      setting: weights and quotas per bucket.
      tie: `[N]` trending counts, ordering what no channel put forward.
      rrf_k: the fusion's rank offset.
    """
    merged = np.tile(tie_break(tie), (len(buckets), 1))
    for channel, ranked in lists.items():
        weight = np.array([setting.weights[b].get(channel, 0.0) for b in HISTORY_BUCKETS])
        quota = np.array([setting.quotas[b].get(channel, 0) for b in HISTORY_BUCKETS])
        rank = np.arange(1, ranked.shape[1] + 1)[None, :]
        use = (ranked >= 0) & (rank <= quota[buckets][:, None]) & (weight[buckets][:, None] > 0)
        contribution = weight[buckets][:, None] / (rrf_k + rank)
        rows = np.broadcast_to(np.arange(len(buckets))[:, None], ranked.shape)
        merged[rows[use], ranked[use]] += contribution[use]
    if seen is not None:
        rows, cols = seen.nonzero()
        merged[rows, cols] = -np.inf
    return merged


def merged_hit_rate(lists: dict[str, np.ndarray], buckets: np.ndarray, targets: np.ndarray,
                    seen: scipy.sparse.csr_matrix, setting: MergeSetting, tie: np.ndarray,
                    rrf_k: float, k: int) -> float:
    """Share of the requests whose target is in the merged top k."""
    hits = 0
    for start in range(0, len(targets), CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, len(targets))
        scores = fuse({c: r[start:stop] for c, r in lists.items()}, buckets[start:stop],
                      setting, tie, rrf_k, seen[start:stop])
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        hits += int((top == targets[start:stop, None]).any(axis=1).sum())
    return hits / max(len(targets), 1)


def search(lists: dict[str, np.ndarray], buckets: np.ndarray, targets: np.ndarray,
           seen: scipy.sparse.csr_matrix, tie: np.ndarray, config: MergeConfig, k: int
           ) -> tuple[MergeSetting, dict]:
    """Weights and quotas per bucket (module docstring) and a report:
    {bucket: {"clicks", "hit_rate": chosen, "start": name of the start point,
    "alone": {channel: hit rate alone}}}.

    Args:
      lists: {channel: `ranked_lists`' `[Q, D]`}, D >= max(quota_grid).
      buckets: `bucket_index` `[Q]`.
      targets: `[Q]` clicked candidate index (-1: not a candidate, a miss).
      seen: binary `[Q, N]` history rows.
      tie: `[N]` trending counts.
      k: the hit rate@k maximised.
    """
    channels = list(lists)
    default_weight = 1.0 if 1.0 in config.weight_grid else max(config.weight_grid)
    default_quota = k if k in config.quota_grid else max(config.quota_grid)
    setting = MergeSetting.uniform(channels, default_weight, default_quota)
    report: dict = {}
    for b, bucket in enumerate(HISTORY_BUCKETS):
        rows = np.flatnonzero(buckets == b)
        if not len(rows):
            report[bucket] = {"clicks": 0}
            continue
        part = ({c: r[rows] for c, r in lists.items()}, buckets[rows], targets[rows], seen[rows])

        def rate(candidate: MergeSetting, part=part) -> float:
            return merged_hit_rate(*part, candidate, tie, config.rrf_k, k)

        starts = {"all": setting}
        for channel in channels:
            alone = setting
            for other in channels:
                alone = alone.replace(bucket, other, weight=default_weight if other == channel
                                      else 0.0)
            starts[channel] = alone
        rates = {name: rate(s) for name, s in starts.items()}
        start = max(rates, key=lambda name: rates[name])
        best, best_rate = starts[start], rates[start]
        for _ in range(config.rounds):
            improved = False
            for channel in channels:
                options = ([best.replace(bucket, channel, weight=w) for w in config.weight_grid]
                           + [best.replace(bucket, channel, quota=q) for q in config.quota_grid])
                for option in options:
                    if option.weights[bucket] == best.weights[bucket] and \
                            option.quotas[bucket] == best.quotas[bucket]:
                        continue
                    if not any(option.weights[bucket].values()):
                        continue
                    value = rate(option)
                    if value > best_rate:
                        best, best_rate, improved = option, value, True
            if not improved:
                break
        setting = best
        report[bucket] = {"clicks": int(len(rows)), f"hit_rate@{k}": round(best_rate, 4),
                          "start": start,
                          "alone": {c: round(rates[c], 4) for c in channels}}
    return setting, report
