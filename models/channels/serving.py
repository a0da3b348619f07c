"""The merged recall list as a serving SavedModel module (TF ops only).

`MergedServingModule` wraps the two-tower serving module (ScaNN or brute
force, `models.serving_export.RetrievalServingModule`) and answers with
every channel of a fitted `Recall`, fused in the graph exactly as
`models.channels.merge.fuse` does:

  * the request's history items are looked up in the catalogue (unknown
    items and repeats dropped); their count picks the history bucket;
  * trending: the half-life counts; item_cf: the sum of the history items'
    neighbour weights (each item's kept neighbours, padded to the longest
    row); wals: the user factor solved from the history, scored against
    every item factor; item2vec: the mean unit vector of the `pool_items`
    most recent history items that have one, against every item vector
    (items without one at `item2vec.NO_VECTOR`); content: the mean of the
    history items' TF-IDF rows against every row (sparse products);
    two_tower: the wrapped module's search;
  * each channel's best `depth` items not in the history, fused by weighted
    reciprocal rank with the bucket's weights and quotas, then trending
    order for the rest, history items excluded;
  * `channels` names, for each returned item, the channel that added most
    to its score (`trending` for an item only the trending fill ranked).

`reranked` (with a ranker, `models.ranking.ranker.Ranker`): the same inputs
and outputs as `serving_default`; the merged list's best `rerank_depth`
items are ordered by the ranker's logits (its `scores`), and the top K
returned with the channel of each.

`related_items(item_id [B]) -> item_ids [B, K], scores [B, K]`: the item's
neighbours (`Recall.related`: item2vec's, or item_cf's, with content's for
items without) by weight, then trending order; never the item itself;
trending order alone for an item outside the catalogue or without
neighbours.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.channels.item2vec import NO_VECTOR  # noqa: E402
from models.channels.merge import tie_break  # noqa: E402
from models.channels.recall import Recall  # noqa: E402
from models.topk_metrics import HISTORY_BUCKETS  # noqa: E402

FILL = "trending"


def padded_neighbours(weights: scipy.sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(int64 `[N, M]` neighbour indices, float32 `[N, M]` weights), each row
    padded with (0, 0.0) to the longest row's M (at least 1)."""
    weights = scipy.sparse.csr_matrix(weights)
    width = max(int(np.diff(weights.indptr).max(initial=0)), 1)
    index = np.zeros((weights.shape[0], width), np.int64)
    value = np.zeros((weights.shape[0], width), np.float32)
    for row in range(weights.shape[0]):
        start, stop = weights.indptr[row], weights.indptr[row + 1]
        index[row, :stop - start] = weights.indices[start:stop]
        value[row, :stop - start] = weights.data[start:stop]
    return index, value


class MergedServingModule(tf.Module):
    """Serving signatures over the merged channels (module docstring)."""

    def __init__(self, two_tower_module, recall: Recall, top_k: int, ranker=None):
        super().__init__()
        self.two_tower_module = two_tower_module
        self.query_specs = two_tower_module.query_specs
        self._example_spec = two_tower_module._example_spec
        item_ids = list(recall.catalogue.item_ids)
        num_items = len(item_ids)
        self.top_k = min(top_k, num_items)
        self.names = list(recall.channels)
        setting = recall.setting
        self.depth = min(max(max(q.values()) for q in setting.quotas.values()), num_items)
        self.item_ids = tf.Variable(tf.constant(item_ids), trainable=False)
        self.lookup = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(item_ids),
                                                tf.range(num_items, dtype=tf.int64)), -1)
        self.channel_names = tf.constant(self.names + [FILL])
        trending = np.asarray(recall.tie, np.float64)
        self.trending = tf.Variable(trending.astype(np.float32), trainable=False)
        self.tie = tf.Variable(tie_break(trending), trainable=False)
        self.weights = tf.constant([[setting.weights[b].get(c, 0.0) for c in self.names]
                                    for b in HISTORY_BUCKETS], tf.float32)
        self.quotas = tf.constant([[setting.quotas[b].get(c, 0) for c in self.names]
                                   for b in HISTORY_BUCKETS], tf.float32)
        self.rrf_k = float(recall.config.merge.rrf_k)
        self.short_history_max = int(recall.config.merge.short_history_max)
        self.neighbour_index = self.neighbour_value = None
        if "item_cf" in recall.channels:
            index, value = padded_neighbours(recall.channels["item_cf"].weights)
            self.neighbour_index = tf.Variable(index, trainable=False)
            self.neighbour_value = tf.Variable(value, trainable=False)
        self.item_factors = None
        if "wals" in recall.channels:
            wals = recall.channels["wals"]
            factors = np.asarray(wals.item_factors, np.float64)
            gram = factors.T @ factors + (wals.regularization + 1e-6) * np.eye(factors.shape[1])
            self.item_factors = tf.Variable(factors.astype(np.float32), trainable=False)
            self.factor_gram = tf.Variable(gram.astype(np.float32), trainable=False)
            self.alpha = float(wals.alpha)
        if "item2vec" in recall.channels:
            item2vec = recall.channels["item2vec"]
            self.item_vectors = tf.Variable(item2vec.vectors, trainable=False)
            self.item_context = tf.Variable(item2vec.context, trainable=False)
            self.has_vector = tf.Variable(item2vec.has_vector, trainable=False)
            self.pool_items = int(item2vec.pool_items)
        if "content" in recall.channels:
            vectors = recall.channels["content"].vectors.tocoo()
            self.content_index = tf.Variable(
                np.stack([vectors.row, vectors.col], axis=1).astype(np.int64), trainable=False)
            self.content_value = tf.Variable(vectors.data.astype(np.float32), trainable=False)
            self.content_shape = [int(d) for d in vectors.shape]
            self.has_tokens = tf.Variable(
                recall.channels["content"].has_tokens.astype(np.float32), trainable=False)
        self.related_index = None
        if recall.related is not None:
            index, value = padded_neighbours(recall.related)
            self.related_index = tf.Variable(index, trainable=False)
            self.related_value = tf.Variable(value, trainable=False)
        self.serve = tf.function(self._retrieve, input_signature=self.query_specs)
        if ranker is not None:
            if list(ranker.item_ids) != item_ids:
                raise ValueError("reranked signature: the ranker's catalogue is not the one the "
                                 "channels rank (train it on the same towers)")
            self.ranker_model = ranker.model
            users = list(ranker.user_ids) or [""]
            self.ranker_users = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                tf.constant(users), tf.range(1, len(users) + 1, dtype=tf.int64)), 0)
            self.rerank_depth = min(int(ranker.config.rerank_depth), num_items)
            self.ranker_history = int(ranker.config.max_history)
            self.reranked = tf.function(self._reranked, input_signature=self.query_specs)
        self.query_embedding = two_tower_module.query_embedding
        if self.related_index is not None:
            self.related_items = tf.function(
                self._related, input_signature=[tf.TensorSpec([None], tf.string, name="item_id")])

    # -- the request's history -------------------------------------------------------------
    def _history(self, history: tf.Tensor):
        """(candidate index `[B, L]` (0 where not valid), valid `[B, L]` (an
        item's first position), distinct count `[B]`, seen `[B, N]` 1.0 at
        history items, latest `[B, L]` (an item's last position))."""
        index = self.lookup.lookup(history)
        valid = index >= 0
        length = tf.shape(index)[1]
        same = tf.logical_and(tf.equal(index[:, :, None], index[:, None, :]),
                              tf.logical_and(valid[:, :, None], valid[:, None, :]))
        # Position j repeats an item if some i < j holds it.
        earlier = tf.cast(tf.linalg.band_part(tf.ones([length, length]), -1, 0)
                          - tf.eye(length), tf.bool)
        repeat = tf.reduce_any(tf.logical_and(same, earlier[None]), axis=2)
        later = tf.reduce_any(tf.logical_and(same, tf.transpose(earlier)[None]), axis=2)
        latest = tf.logical_and(valid, tf.logical_not(later))
        valid = tf.logical_and(valid, tf.logical_not(repeat))
        safe = tf.where(valid, index, tf.zeros_like(index))
        count = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        seen = self._scatter(safe, tf.cast(valid, tf.float32), tf.shape(index)[0])
        return safe, valid, count, tf.minimum(seen, 1.0), latest

    def _scatter(self, index: tf.Tensor, values: tf.Tensor, rows) -> tf.Tensor:
        """float32 `[rows, N]`: `values` `[B, ...]` added at candidate `index` of each row."""
        num_items = tf.shape(self.trending)[0]
        row = tf.broadcast_to(
            tf.reshape(tf.range(rows, dtype=tf.int64), [-1] + [1] * (index.shape.rank - 1)),
            tf.shape(index))
        positions = tf.stack([tf.reshape(row, [-1]), tf.reshape(index, [-1])], axis=1)
        return tf.tensor_scatter_nd_add(tf.zeros([rows, num_items]), positions,
                                        tf.reshape(values, [-1]))

    # -- channels --------------------------------------------------------------------------
    def _top(self, scores: tf.Tensor, answered: tf.Tensor, seen: tf.Tensor) -> tf.Tensor:
        """int64 `[B, depth]` best unseen candidates, -1 for unanswered rows."""
        scores = tf.where(seen > 0, tf.constant(float("-inf")), scores)
        values, index = tf.math.top_k(scores, k=self.depth)
        keep = tf.logical_and(values > float("-inf"), answered[:, None])
        return tf.where(keep, tf.cast(index, tf.int64), tf.constant(-1, tf.int64))

    def _item_cf(self, safe, valid):
        neighbours = tf.gather(self.neighbour_index, safe)  # [B, L, M]
        values = tf.gather(self.neighbour_value, safe) * tf.cast(valid, tf.float32)[:, :, None]
        return self._scatter(neighbours, values, tf.shape(safe)[0])

    def _wals(self, safe, valid):
        factors = tf.gather(self.item_factors, safe) * tf.cast(valid, tf.float32)[:, :, None]
        system = self.factor_gram[None] + (self.alpha - 1.0) * tf.einsum(
            "bld,ble->bde", factors, factors)
        user = tf.linalg.solve(system, self.alpha * tf.reduce_sum(factors, axis=1)[:, :, None])
        return tf.matmul(user[:, :, 0], self.item_factors, transpose_b=True)

    def _item2vec(self, safe, latest):
        """(scores `[B, N]`, answered `[B]`) of item2vec (`latest`: each
        distinct history item at its most recent position)."""
        use = tf.logical_and(latest, tf.gather(self.has_vector, safe))
        # Position j is among the `pool_items` most recent usable items.
        from_end = tf.cumsum(tf.cast(use, tf.int32), axis=1, reverse=True)
        use = tf.logical_and(use, from_end <= self.pool_items)
        vectors = tf.gather(self.item_vectors, safe) * tf.cast(use, tf.float32)[:, :, None]
        used = tf.reduce_sum(tf.cast(use, tf.float32), axis=1)
        pooled = tf.reduce_sum(vectors, axis=1) / tf.maximum(used, 1.0)[:, None]
        scores = tf.matmul(pooled, self.item_context, transpose_b=True)
        scores = tf.where(self.has_vector[None], scores, NO_VECTOR)
        return scores, used > 0

    def _content(self, seen):
        """(scores `[B, N]`, answered `[B]`) of content: cosine with the mean
        history row, as two sparse products."""
        rows = seen * self.has_tokens[None]
        used = tf.reduce_sum(rows, axis=1)
        weights = rows / tf.maximum(used, 1.0)[:, None]
        vectors = tf.sparse.SparseTensor(self.content_index, self.content_value,
                                         self.content_shape)
        profile = tf.sparse.sparse_dense_matmul(vectors, weights, adjoint_a=True,
                                                adjoint_b=True)  # [V, B]
        scores = tf.transpose(tf.sparse.sparse_dense_matmul(vectors, profile))
        return scores, used > 0

    def _lists(self, inputs, safe, valid, count, seen, latest) -> list[tf.Tensor]:
        rows = tf.shape(safe)[0]
        everyone = tf.ones([rows], tf.bool)
        with_history = count > 0
        lists = []
        for name in self.names:
            if name == "two_tower":
                found = self.two_tower_module._retrieve(*inputs)
                index = self.lookup.lookup(found["item_ids"])
                keep = tf.logical_and(index >= 0, found["scores"] > float("-inf"))
                lists.append(tf.where(keep, index, tf.constant(-1, tf.int64))[:, :self.depth])
            elif name == "trending":
                lists.append(self._top(tf.tile(self.trending[None], [rows, 1]), everyone, seen))
            elif name == "item_cf":
                lists.append(self._top(self._item_cf(safe, valid), with_history, seen))
            elif name == "wals":
                lists.append(self._top(self._wals(safe, valid), with_history, seen))
            elif name == "item2vec":
                lists.append(self._top(*self._item2vec(safe, latest), seen))
            elif name == "content":
                lists.append(self._top(*self._content(seen), seen))
        return lists

    # -- merge -----------------------------------------------------------------------------
    def _merged(self, inputs):
        """(merged scores `[B, N]` with history items at -inf, the channel
        that added most to each item `[B, N]`)."""
        history = tf.convert_to_tensor(inputs[1], tf.string)
        safe, valid, count, seen, latest = self._history(history)
        rows = tf.shape(safe)[0]
        bucket = tf.where(count <= 0, 0, tf.where(count <= self.short_history_max, 1, 2))
        weight = tf.gather(self.weights, bucket)  # [B, C]
        quota = tf.gather(self.quotas, bucket)
        merged = tf.tile(self.tie[None], [rows, 1])
        best = tf.zeros_like(merged)
        source = tf.fill(tf.shape(merged), len(self.names))  # FILL
        for c, ranked in enumerate(self._lists(inputs, safe, valid, count, seen, latest)):
            rank = tf.range(1, tf.shape(ranked)[1] + 1, dtype=tf.float32)[None, :]
            use = tf.logical_and(tf.logical_and(ranked >= 0, rank <= quota[:, c:c + 1]),
                                 weight[:, c:c + 1] > 0)
            added = self._scatter(tf.where(use, ranked, tf.zeros_like(ranked)),
                                  tf.where(use, weight[:, c:c + 1] / (self.rrf_k + rank), 0.0),
                                  rows)
            merged += added
            source = tf.where(added > best, c, source)
            best = tf.maximum(best, added)
        return tf.where(seen > 0, tf.constant(float("-inf")), merged), source

    def _answer(self, scores, index, source):
        """The outputs for the chosen candidates `index` `[B, K]` and their scores."""
        real = scores > float("-inf")
        return {"item_ids": tf.where(real, tf.gather(self.item_ids, index), features.PADDING),
                "scores": scores,
                "channels": tf.where(real, tf.gather(self.channel_names,
                                                     tf.gather(source, index, batch_dims=1)),
                                     features.PADDING)}

    def _retrieve(self, *inputs):
        merged, source = self._merged(inputs)
        scores, index = tf.math.top_k(merged, k=self.top_k)
        return self._answer(scores, index, source)

    def _reranked(self, *inputs):
        merged, source = self._merged(inputs)
        values, top = tf.math.top_k(merged, k=self.rerank_depth)
        # The ranker's history: the `max_history` most recent catalogue items.
        index = self.lookup.lookup(tf.convert_to_tensor(inputs[1], tf.string))
        known = index >= 0
        recent = tf.cumsum(tf.cast(known, tf.int32), axis=1, reverse=True) <= self.ranker_history
        history = tf.where(tf.logical_and(known, recent), index + 1, tf.zeros_like(index))
        logits = self.ranker_model({"user": self.ranker_users.lookup(inputs[0]),
                                    "history": history,
                                    "candidates": tf.cast(top, tf.int64) + 1}, training=False)
        logits = tf.where(values > float("-inf"), logits, tf.constant(float("-inf")))
        scores, order = tf.math.top_k(logits, k=min(self.top_k, self.rerank_depth))
        return self._answer(scores, tf.gather(top, order, batch_dims=1), source)

    def _related(self, item_id):
        index = self.lookup.lookup(item_id)
        known = index >= 0
        safe = tf.where(known, index, tf.zeros_like(index))
        values = tf.gather(self.related_value, safe) * tf.cast(known, tf.float32)[:, None]
        scores = self._scatter(tf.gather(self.related_index, safe), values, tf.shape(safe)[0])
        has = tf.reduce_any(values > 0, axis=1)
        scores = tf.where(has[:, None], scores + self.tie[None], self.trending[None])
        itself = tf.logical_and(
            tf.equal(tf.range(tf.shape(self.trending)[0], dtype=tf.int64)[None], safe[:, None]),
            known[:, None])
        scores = tf.where(itself, tf.constant(float("-inf")), scores)
        best, top = tf.math.top_k(scores, k=min(self.top_k, int(self.trending.shape[0]) - 1))
        return {"item_ids": tf.gather(self.item_ids, top), "scores": best}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(self, examples):
        return self._retrieve(*features.query_inputs_from_examples(
            examples, self._example_spec, self.query_specs))
