"""Items related to an item: the `related_items` answer, and the next-click
measure that judges it against a co-occurrence baseline.

`related_items` ranks the item's neighbours by weight, then the rest in
trending order, never the item itself (models/channels/serving.py does the
same in TF). The neighbours (`related_weights`) come from item2vec (largest
logit `v_item . u`) when it runs, else from item_cf; an item without any
(no click in the fit) takes its content neighbours when the content channel
runs. The baseline ranks by co-occurrence: how many users clicked
both items in the fit, each item's `neighbours` largest counts kept. The
measure: for each eval click with a catalogue item in its history, is the
clicked item among the top k related to the history's most recent item.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from models.channels.merge import tie_break


def keep_row_largest(matrix: scipy.sparse.csr_matrix, neighbours: int
                     ) -> scipy.sparse.csr_matrix:
    """Each row's `neighbours` largest entries (sparse in, sparse out)."""
    matrix = scipy.sparse.csr_matrix(matrix)
    rows = []
    for r in range(matrix.shape[0]):
        row = matrix.getrow(r)
        if row.nnz > neighbours:
            keep = np.argpartition(-row.data, neighbours - 1)[:neighbours]
            row = scipy.sparse.csr_matrix((row.data[keep], row.indices[keep], [0, neighbours]),
                                          shape=row.shape)
        rows.append(row)
    return scipy.sparse.vstack(rows).tocsr().astype(np.float32)


def cooccurrence(matrix: scipy.sparse.csr_matrix, neighbours: int) -> scipy.sparse.csr_matrix:
    """`[N, N]` users who clicked both items (zero diagonal), each row's
    `neighbours` largest counts."""
    counts = (matrix.T @ matrix).tocsr().astype(np.float32)
    counts.setdiag(0.0)
    counts.eliminate_zeros()
    return keep_row_largest(counts, neighbours)


def related_weights(channels: dict, neighbours: int
                    ) -> tuple[scipy.sparse.csr_matrix | None, dict]:
    """(`[N, N]` neighbour weights of `related_items`, or None without a
    channel that relates items; {"source", "fallback", rows of each})."""
    content = channels.get("content")
    if "item2vec" in channels:
        weights, source = channels["item2vec"].neighbours(neighbours), "item2vec"
    elif "item_cf" in channels:
        weights, source = scipy.sparse.csr_matrix(channels["item_cf"].weights), "item_cf"
    elif content is not None:
        weights = content.neighbours(np.arange(content.vectors.shape[0]), neighbours)
        return weights, {"source": "content", "items": int((np.diff(weights.indptr) > 0).sum())}
    else:
        return None, {}
    weights = scipy.sparse.csr_matrix(weights, dtype=np.float32)
    empty = np.flatnonzero(np.diff(weights.indptr) == 0)
    report = {"source": source, "items": int(weights.shape[0] - len(empty))}
    if content is not None and len(empty):
        fallback = content.neighbours(empty, neighbours)
        weights = (weights + fallback).tocsr()
        report["fallback"] = "content"
        report["fallback_items"] = int((np.diff(fallback.indptr) > 0).sum())
    return weights, report


def describe_source(source: dict) -> str:
    """`related_weights`' report as words: "item2vec neighbours, content for
    items without", or the like."""
    text = f"{source.get('source', 'item_cf')} neighbours"
    if source.get("fallback"):
        text += f", {source['fallback']} for items without"
    return text


def related_scores(weights: scipy.sparse.csr_matrix, items: np.ndarray, trending: np.ndarray
                   ) -> np.ndarray:
    """float32 `[Q, N]`: each item's weights row, trending order under it,
    the item itself at -inf."""
    scores = weights[items].toarray().astype(np.float32) + tie_break(trending)[None, :]
    scores[np.arange(len(items)), items] = -np.inf
    return scores


def next_click_hits(weights, items: np.ndarray, targets: np.ndarray, trending: np.ndarray,
                    k: int) -> int:
    """Clicks whose target is in the top k related to their item."""
    if not len(items):
        return 0
    scores = related_scores(weights, items, trending)
    k = min(k, scores.shape[1] - 1)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return int((top == targets[:, None]).any(axis=1).sum())
