"""The item_cf channel: item-to-item collaborative filtering from the fit's
user-item click matrix X (binary).

  * EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data",
    WWW 2019) up to `ease_max_items` candidates: the closed form
    `B = I - P diag(1 / diag(P))`, `P = (X'X + lambda I)^-1`, zero diagonal;
    lambda is the one of `ease_lambdas` with the best hit rate@100 on the
    last `validation_fraction` of the clicks, B fitted on the clicks before;
  * item-kNN beyond: cosine of the items' click vectors.

Either way each item keeps its `neighbours` largest weights (a sparse
matrix: what is saved, served and evaluated). A request scores
`history_row @ B`; an empty history is not answered.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from models.channels.base import Requests
from models.channels.clicks import NOT_A_CANDIDATE, Clicks
from models.channels.config import ItemCfChannelConfig
from models.channels.related import keep_row_largest


def ease_weights(matrix: scipy.sparse.csr_matrix, lam: float) -> np.ndarray:
    """EASE's item-item weights `[N, N]` (zero diagonal)."""
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


def knn_weights(matrix: scipy.sparse.csr_matrix, neighbours: int) -> scipy.sparse.csr_matrix:
    """Item-kNN: cosine of the items' click vectors, each item's top neighbours."""
    norms = np.sqrt(np.asarray(matrix.power(2).sum(axis=0)).ravel()) + 1e-9
    similarity = (matrix.T @ matrix).tocsr().astype(np.float32)
    similarity = similarity.multiply(1.0 / norms[:, None]).multiply(1.0 / norms[None, :]).tocsr()
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    return keep_row_largest(similarity, neighbours)


def keep_largest(weights: np.ndarray, neighbours: int) -> scipy.sparse.csr_matrix:
    """The `neighbours` largest positive entries of each row of a dense matrix, as CSR."""
    count = min(neighbours, weights.shape[1])
    top = np.argpartition(-weights, count - 1, axis=1)[:, :count]
    values = np.take_along_axis(weights, top, axis=1)
    rows = np.repeat(np.arange(weights.shape[0]), count)
    keep = values.ravel() > 0
    return scipy.sparse.csr_matrix((values.ravel()[keep], (rows[keep], top.ravel()[keep])),
                                   shape=weights.shape, dtype=np.float32)


def hit_rate(scores: np.ndarray, targets: np.ndarray, seen: scipy.sparse.csr_matrix,
             k: int) -> float:
    """Share of rows whose target is among the `k` best unseen scores."""
    scores = np.where(seen.toarray() > 0, -np.inf, scores)
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean((top == targets[:, None]).any(axis=1)))


def validation_queries(clicks: Clicks, start: float, limit: int
                       ) -> tuple[list[list[int]], np.ndarray]:
    """The clicks at or after `start` by users with earlier candidate clicks:
    (each one's earlier candidate items, its item), at most `limit`."""
    earlier: dict[int, list[int]] = {}
    queries, targets = [], []
    for user, item, time in zip(clicks.users, clicks.items, clicks.timestamps, strict=True):
        if item == NOT_A_CANDIDATE:
            continue
        if time >= start and earlier.get(user) and len(targets) < limit:
            queries.append(list(earlier[user]))
            targets.append(item)
        earlier.setdefault(user, []).append(item)
    return queries, np.asarray(targets, np.int64)


def choose_ease_lambda(clicks: Clicks, config: ItemCfChannelConfig, k: int = 100
                       ) -> tuple[float, dict]:
    """The lambda of `config.ease_lambdas` with the best hit rate@k on the
    last `validation_fraction` of the clicks' time span."""
    if len(config.ease_lambdas) == 1:
        return config.ease_lambdas[0], {"validation_clicks": 0}
    times = clicks.timestamps
    start = times.max() - config.validation_fraction * (times.max() - times.min())
    queries, targets = validation_queries(clicks, start, config.validation_clicks)
    if not len(targets):
        lam = sorted(config.ease_lambdas)[len(config.ease_lambdas) // 2]
        return lam, {"validation_clicks": 0}
    matrix = clicks.matrix(times < start)
    indptr = np.cumsum([0] + [len(set(q)) for q in queries])
    indices = np.concatenate([sorted(set(q)) for q in queries])
    history = scipy.sparse.csr_matrix((np.ones(len(indices), np.float32), indices, indptr),
                                      shape=(len(queries), clicks.num_items))
    rates = {lam: hit_rate(np.asarray(history @ ease_weights(matrix, lam)), targets, history, k)
             for lam in config.ease_lambdas}
    best = max(sorted(rates), key=lambda lam: rates[lam])
    return best, {"validation_clicks": int(len(targets)),
                  "hit_rate_by_lambda": {f"{lam:g}": round(r, 4) for lam, r in rates.items()}}


class ItemCfChannel:
    name = "item_cf"

    def __init__(self, weights, report: dict):
        self.weights = scipy.sparse.csr_matrix(weights)  # [N, N], zero diagonal
        self.report = report

    @classmethod
    def fit(cls, clicks: Clicks, config: ItemCfChannelConfig) -> ItemCfChannel:
        matrix = clicks.matrix()
        if clicks.num_items <= config.ease_max_items:
            lam, report = choose_ease_lambda(clicks, config)
            return cls(keep_largest(ease_weights(matrix, lam), config.neighbours),
                       {"kind": "ease", "lambda": lam, "neighbours": config.neighbours,
                        **report})
        return cls(knn_weights(matrix, config.neighbours),
                   {"kind": "item_knn", "neighbours": config.neighbours})

    def score(self, requests: Requests) -> tuple[np.ndarray, np.ndarray]:
        scores = (requests.rows @ self.weights).toarray().astype(np.float32)
        return scores, requests.history_lengths() > 0
