"""The content channel: the catalog's item features as TF-IDF vectors, and
a request's profile from its history.

Each token is prefixed by its feature's name (`genres:Drama`,
`title:rim`); tokens on fewer than `min_items` candidates are dropped. An
item's vector is its distinct tokens weighted by the smoothed inverse
document frequency `log((1 + N) / (1 + df)) + 1`, unit length (zero for an
item without tokens). A request scores every candidate by the cosine with
the mean of its history items' vectors, so an item without a click is
reached through the tokens it shares with the history; a request without a
history item that has tokens is not answered.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from models.channels.base import Requests
from models.channels.config import ContentChannelConfig
from models.channels.related import keep_row_largest


def item_vectors(item_features: dict[str, list[list[str]]], min_items: int
                 ) -> tuple[scipy.sparse.csr_matrix, list[str]]:
    """(float32 `[N, V]` unit TF-IDF rows, the V tokens)."""
    names = sorted(item_features)
    num_items = len(item_features[names[0]]) if names else 0
    items_tokens = [sorted({f"{name}:{token}" for name in names
                            for token in item_features[name][n]})
                    for n in range(num_items)]
    frequency: dict[str, int] = {}
    for tokens in items_tokens:
        for token in tokens:
            frequency[token] = frequency.get(token, 0) + 1
    vocabulary = sorted(t for t, df in frequency.items() if df >= min_items)
    column = {token: c for c, token in enumerate(vocabulary)}
    idf = np.array([np.log((1 + num_items) / (1 + frequency[t])) + 1 for t in vocabulary],
                   np.float32)
    rows, cols = [], []
    for n, tokens in enumerate(items_tokens):
        for token in tokens:
            if token in column:
                rows.append(n)
                cols.append(column[token])
    cols = np.asarray(cols, np.int64)
    matrix = scipy.sparse.csr_matrix((idf[cols], (np.asarray(rows, np.int64), cols)),
                                     shape=(num_items, len(vocabulary)), dtype=np.float32)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    matrix = scipy.sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix
    return scipy.sparse.csr_matrix(matrix, dtype=np.float32), vocabulary


class ContentChannel:
    name = "content"

    def __init__(self, vectors: scipy.sparse.csr_matrix, report: dict | None = None):
        self.vectors = scipy.sparse.csr_matrix(vectors, dtype=np.float32)  # [N, V]
        self.has_tokens = np.diff(self.vectors.indptr) > 0
        self.report = report or {}

    @classmethod
    def fit(cls, item_features: dict[str, list[list[str]]], config: ContentChannelConfig
            ) -> ContentChannel:
        vectors, vocabulary = item_vectors(item_features, config.min_items)
        return cls(vectors, {"features": sorted(item_features), "tokens": len(vocabulary),
                             "items_with_tokens": int((np.diff(vectors.indptr) > 0).sum())})

    def score(self, requests: Requests) -> tuple[np.ndarray, np.ndarray]:
        rows = requests.rows.multiply(self.has_tokens[None, :].astype(np.float32)).tocsr()
        rows.eliminate_zeros()
        counts = np.maximum(np.diff(rows.indptr), 1).astype(np.float32)
        profile = scipy.sparse.diags(1.0 / counts) @ rows @ self.vectors  # [Q, V]
        scores = np.asarray((profile @ self.vectors.T).todense(), np.float32)
        return scores, np.diff(rows.indptr) > 0

    def neighbours(self, items: np.ndarray, count: int) -> scipy.sparse.csr_matrix:
        """Rows `items` of the item-item cosine `[N, N]` (other rows empty),
        each with its `count` largest positive entries, zero diagonal."""
        items = np.asarray(items, np.int64)
        select = scipy.sparse.csr_matrix(
            (np.ones(len(items), np.float32), (items, items)),
            shape=(self.vectors.shape[0],) * 2)
        similarity = (select @ self.vectors @ self.vectors.T).tocsr()
        similarity = (similarity - scipy.sparse.diags(similarity.diagonal())).tocsr()
        similarity.eliminate_zeros()
        return keep_row_largest(similarity, count)
