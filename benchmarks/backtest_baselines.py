"""The backtest's baselines, each fitted on the clicks before a cut-off.

Every scorer maps a batch of request histories (item ids, most recent last)
to float scores `[Q, N]` over the candidate items:

  * `popularity`: all-time click counts;
  * `recent_popularity`: click counts in the last `recent_fraction` of the
    training period (VocabStats' recent window);
  * `ease`: EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse
    Data", WWW 2019), the closed-form item-item model
    `B = I - P diag(1 / diag(P))`, `P = (X'X + lambda I)^-1`, with lambda
    chosen on the last `recent_fraction` of the training period; a query
    without history falls back to popularity. Over `EASE_MAX_ITEMS`
    candidates, item-kNN instead (cosine over the click vectors, the 100
    nearest neighbours of each item);
  * `last_item`: the transition counts from the user's most recent item to
    the next one, popularity breaking ties and answering queries without
    history.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from benchmarks.ranking import top_k

EASE_LAMBDAS = (50.0, 200.0, 500.0, 1000.0)
EASE_MAX_ITEMS = 20_000
KNN_NEIGHBOURS = 100
# Added to a model's scores so that popularity breaks ties (and answers an
# empty history) without reordering any non-tied pair.
TIE_BREAK = 1e-9


class Candidates:
    """The candidate items (in column order) and their index."""

    def __init__(self, item_ids: list[str]):
        self.item_ids = list(item_ids)
        self.index = {item: n for n, item in enumerate(self.item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)

    def rows(self, histories: list[list[str]]) -> scipy.sparse.csr_matrix:
        """Binary `[Q, N]` matrix of each history's known items."""
        indices, indptr = [], [0]
        for history in histories:
            known = sorted({self.index[i] for i in history if i in self.index})
            indices += known
            indptr.append(len(indices))
        return scipy.sparse.csr_matrix(
            (np.ones(len(indices), np.float32), indices, indptr), shape=(len(histories), len(self)))


def user_item_matrix(users: list[str], items: list[str],
                     candidates: Candidates) -> scipy.sparse.csr_matrix:
    """Binary `[U, N]` clicks of the users on the candidates."""
    user_index: dict[str, int] = {}
    rows = [user_index.setdefault(u, len(user_index)) for u in users]
    cols = [candidates.index[i] for i in items]
    matrix = scipy.sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                                     shape=(len(user_index), len(candidates)))
    matrix.data[:] = 1.0  # repeated clicks count once
    return matrix


def counts(items: list[str], candidates: Candidates) -> np.ndarray:
    out = np.zeros(len(candidates), np.float64)
    for item in items:
        out[candidates.index[item]] += 1
    return out


def ease_weights(matrix: scipy.sparse.csr_matrix, lam: float) -> np.ndarray:
    """EASE's item-item weights `[N, N]` (zero diagonal)."""
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


def knn_weights(matrix: scipy.sparse.csr_matrix, neighbours: int = KNN_NEIGHBOURS
                ) -> scipy.sparse.csr_matrix:
    """Item-kNN: cosine of the items' click vectors, each item's top neighbours."""
    norms = np.sqrt(np.asarray(matrix.power(2).sum(axis=0)).ravel()) + 1e-9
    similarity = (matrix.T @ matrix).tocsr().astype(np.float32)
    similarity = similarity.multiply(1.0 / norms[:, None]).multiply(1.0 / norms[None, :]).tocsr()
    similarity.setdiag(0.0)
    rows = []
    for r in range(similarity.shape[0]):
        row = similarity.getrow(r)
        if row.nnz > neighbours:
            keep = np.argpartition(-row.data, neighbours)[:neighbours]
            row = scipy.sparse.csr_matrix((row.data[keep], row.indices[keep], [0, neighbours]),
                                          shape=row.shape)
        rows.append(row)
    return scipy.sparse.vstack(rows).tocsr()


def _hit_rate(scores: np.ndarray, targets: np.ndarray, seen: scipy.sparse.csr_matrix,
              k: int) -> float:
    scores = np.where(seen.toarray() > 0, -np.inf, scores)
    top = top_k(scores, k)
    return float(np.mean([t in row for t, row in zip(targets, top, strict=True)]))


def choose_ease_lambda(users, items, timestamps, candidates: Candidates,
                       recent_fraction: float, k: int = 100) -> tuple[float, dict]:
    """The lambda of `EASE_LAMBDAS` with the best hit rate@k on the last
    `recent_fraction` of the clicks, EASE fitted on the clicks before them
    (each validation click's query: the user's earlier clicks)."""
    timestamps = np.asarray(timestamps)
    start = timestamps.min() + (1 - recent_fraction) * (timestamps.max() - timestamps.min())
    fit = timestamps < start
    matrix = user_item_matrix([u for u, f in zip(users, fit, strict=True) if f],
                              [i for i, f in zip(items, fit, strict=True) if f], candidates)
    earlier: dict[str, list[str]] = {}
    queries, targets = [], []
    for user, item, is_fit in zip(users, items, fit, strict=True):
        if not is_fit and earlier.get(user):
            queries.append(list(earlier[user]))
            targets.append(candidates.index[item])
        earlier.setdefault(user, []).append(item)
    queries, targets = queries[:5000], np.array(targets[:5000])
    history = candidates.rows(queries)
    rates = {}
    for lam in EASE_LAMBDAS:
        weights = ease_weights(matrix, lam)
        rates[lam] = _hit_rate(np.asarray(history @ weights), targets, history, k)
    best = max(sorted(rates), key=lambda lam: rates[lam])
    return best, {"validation_clicks": len(targets),
                  "hit_rate_by_lambda": {f"{lam:g}": round(r, 4) for lam, r in rates.items()}}


def baselines(users: list[str], items: list[str], timestamps: list[int],
              candidates: Candidates, recent_fraction: float = 0.1) -> tuple[dict, dict]:
    """The scorers fitted on the clicks given (those before the cut-off, in
    time order) and a report of how they were fitted."""
    popularity = counts(items, candidates)
    times = np.asarray(timestamps)
    recent_start = times.max() - recent_fraction * (times.max() - times.min())
    recent = counts([i for i, t in zip(items, times, strict=True) if t >= recent_start],
                    candidates)
    tie = TIE_BREAK * popularity / max(popularity.max(), 1.0)
    matrix = user_item_matrix(users, items, candidates)
    report: dict = {"candidates": len(candidates), "recent_start": int(recent_start)}
    if len(candidates) <= EASE_MAX_ITEMS:
        lam, report["ease"] = choose_ease_lambda(users, items, timestamps, candidates,
                                                 recent_fraction)
        report["ease"]["lambda"] = lam
        weights = ease_weights(matrix, lam)
        similarity_name = "ease"
    else:
        weights = knn_weights(matrix)
        similarity_name = "item_knn"
    transitions = scipy.sparse.lil_matrix((len(candidates), len(candidates)), dtype=np.float32)
    last: dict[str, int] = {}
    for user, item in zip(users, items, strict=True):
        column = candidates.index[item]
        if user in last:
            transitions[last[user], column] += 1
        last[user] = column
    transitions = transitions.tocsr()

    def constant(row: np.ndarray):
        return lambda histories: np.tile(row.astype(np.float32), (len(histories), 1))

    def similarity(histories):
        history = candidates.rows(histories)
        product = history @ weights  # dense with EASE's weights, sparse with item-kNN's
        scores = np.asarray(product.toarray() if scipy.sparse.issparse(product) else product,
                            dtype=np.float32)
        empty = np.asarray(history.sum(axis=1)).ravel() == 0
        scores[empty] = popularity
        return scores + tie

    def last_item(histories):
        scores = np.tile(tie.astype(np.float32), (len(histories), 1))
        for row, history in enumerate(histories):
            known = [candidates.index[i] for i in history if i in candidates.index]
            if known:
                scores[row] += transitions.getrow(known[-1]).toarray().ravel()
            else:
                scores[row] = popularity
        return scores

    scorers = {"popularity": constant(popularity), "recent_popularity": constant(recent),
               similarity_name: similarity, "last_item": last_item}
    return scorers, report
