"""The benchmark's data: clustered item and query embeddings, exact top K."""

from __future__ import annotations

import numpy as np

from benchmarks.ranking import top_k
from benchmarks.serving_latency import settings


def make_data(seed: int = settings.SEED) -> tuple[np.ndarray, np.ndarray]:
    """Returns float32 items `[NUM_ITEMS, DIM]` and queries `[NUM_QUERIES, DIM]`.

    Both are a random centre plus Gaussian noise, so items cluster like trained
    embeddings and queries fall in the same clusters.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((settings.NUM_CENTRES, settings.DIM), dtype=np.float32)

    def draw(n: int) -> np.ndarray:
        points = centres[rng.integers(0, settings.NUM_CENTRES, size=n)]
        points += settings.NOISE * rng.standard_normal((n, settings.DIM), dtype=np.float32)
        return points

    return draw(settings.NUM_ITEMS), draw(settings.NUM_QUERIES)

def exact_top_k(items: np.ndarray, queries: np.ndarray, k: int = settings.K) -> np.ndarray:
    """Indices `[Q, k]` of the exact top-k items by dot product, best first."""
    rows = []
    for start in range(0, len(queries), settings.RECALL_BATCH):
        scores = queries[start:start + settings.RECALL_BATCH] @ items.T
        rows.append(top_k(scores, k))
    return np.concatenate(rows)

def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of `truth` present in the same row of `found`."""
    k = truth.shape[1]
    hits = [len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / k)
