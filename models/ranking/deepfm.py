"""DeepFM over (request, candidate) pairs: one logit per candidate.

Fields, each an embedding of `embedding_dim` and a first-order weight:
  * user: the user id (index 0: a user unseen in training);
  * history: the mean over the request's history items (a bag);
  * history length: bucket of the history's length (0, 1, 2-5, 6-20, more);
  * item: the candidate;
  * item tokens: the mean over the candidate's catalog tokens (a bag);
  * popularity, recent popularity: log2 buckets of the candidate's clicks
    before the request, all told and in the trailing `trending_days`.
The logit is bias + first-order weights + FM's pairwise interactions
0.5 * sum_d((sum_f v_f)^2 - sum_f v_f^2) + an MLP over the concatenated
field embeddings (Guo et al., IJCAI 2017): the FM and deep parts share the
embeddings. Index 0 is padding or "unknown" in every table.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models.ranking.config import RankingConfig  # noqa: E402

USER, HISTORY, CANDIDATES = "user", "history", "candidates"
# Optional input: the candidates' popularity buckets `[B, C, 2]` (training
# reads them at each click's time); without it, the item table's.
BUCKETS = "buckets"
# Upper edges (exclusive) of the history-length buckets after bucket 0 (empty).
HISTORY_LENGTH_EDGES = (2, 6, 21)
FIELDS = ("user", "history", "history_length", "item", "item_tokens", "popularity",
          "recent_popularity")


def _bag(embeddings: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """Mean of the embeddings of the non-zero ids over the last axis of `ids`."""
    mask = tf.cast(ids > 0, embeddings.dtype)[..., None]
    total = tf.reduce_sum(tf.gather(embeddings, ids) * mask, axis=-2)
    return total / tf.maximum(tf.reduce_sum(mask, axis=-2), 1.0)


class DeepFM(tf.keras.Model):
    """Inputs: `user` int `[B]`, `history` int `[B, L]` (0: padding) and
    `candidates` int `[B, C]` (catalogue index + 1; 0: unknown). Output:
    float32 logits `[B, C]`.

    Args:
      num_users: known users (ids 1..num_users).
      item_tokens: int `[N + 1, T]` token ids (0: padding) of each item; row 0
        is the unknown item.
      num_tokens: token ids 1..num_tokens.
      item_buckets: int `[N + 1, 2]` popularity and recent popularity buckets
        at serving time (used when the inputs carry no `buckets`).
      config: sizes and regularisation.
    """

    def __init__(self, num_users: int, item_tokens: np.ndarray, num_tokens: int,
                 item_buckets: np.ndarray, config: RankingConfig, **kwargs):
        super().__init__(**kwargs)
        dim = self.dim = config.embedding_dim
        num_items = int(item_tokens.shape[0])
        self.item_tokens = tf.constant(np.asarray(item_tokens, np.int32))
        self.item_buckets = tf.constant(np.asarray(item_buckets, np.int32))
        regularizer = tf.keras.regularizers.l2(config.l2) if config.l2 else None
        init = tf.keras.initializers.RandomNormal(stddev=0.01, seed=config.seed)
        sizes = {"user": num_users + 1, "history": num_items,
                 "history_length": len(HISTORY_LENGTH_EDGES) + 2, "item": num_items,
                 "item_tokens": num_tokens + 1,
                 "popularity": config.popularity_buckets + 1,
                 "recent_popularity": config.popularity_buckets + 1}
        self.vectors = {name: self.add_weight(name=f"{name}_embedding", shape=(size, dim),
                                              initializer=init, regularizer=regularizer)
                        for name, size in sizes.items()}
        self.weights_1 = {name: self.add_weight(name=f"{name}_weight", shape=(size, 1),
                                                initializer="zeros", regularizer=regularizer)
                          for name, size in sizes.items()}
        self.bias = self.add_weight(name="bias", shape=(), initializer="zeros")
        self.deep = tf.keras.Sequential(
            [layer for units in config.hidden_units
             for layer in (tf.keras.layers.Dense(units, activation="relu",
                                                 kernel_regularizer=regularizer),
                           tf.keras.layers.Dropout(config.dropout, seed=config.seed))]
            + [tf.keras.layers.Dense(1)])

    def _fields(self, table: dict, user, history, candidates, buckets) -> list[tf.Tensor]:
        """Each field's `[B, C, width]` value from `table` (vectors or weights)."""
        count = tf.reduce_sum(tf.cast(history > 0, tf.int32), axis=1)
        length = tf.where(count == 0, 0, 1 + tf.searchsorted(
            tf.constant(HISTORY_LENGTH_EDGES, tf.int32), count, side="right"))
        shape = tf.shape(candidates)

        def request(value):  # [B, W] -> [B, C, W]
            return tf.broadcast_to(value[:, None, :], [shape[0], shape[1], tf.shape(value)[-1]])

        return [request(tf.gather(table["user"], user)),
                request(_bag(table["history"], history)),
                request(tf.gather(table["history_length"], length)),
                tf.gather(table["item"], candidates),
                _bag(table["item_tokens"], tf.gather(self.item_tokens, candidates)),
                tf.gather(table["popularity"], buckets[..., 0]),
                tf.gather(table["recent_popularity"], buckets[..., 1])]

    def call(self, inputs: dict, training: bool = False) -> tf.Tensor:
        user = tf.cast(inputs[USER], tf.int32)
        history = tf.cast(inputs[HISTORY], tf.int32)
        candidates = tf.cast(inputs[CANDIDATES], tf.int32)
        buckets = (tf.cast(inputs[BUCKETS], tf.int32) if BUCKETS in inputs
                   else tf.gather(self.item_buckets, candidates))
        vectors = tf.stack(self._fields(self.vectors, user, history, candidates, buckets),
                           axis=2)
        first = tf.add_n(self._fields(self.weights_1, user, history, candidates,
                                      buckets))[..., 0]
        total = tf.reduce_sum(vectors, axis=2)
        pairwise = 0.5 * tf.reduce_sum(tf.square(total) - tf.reduce_sum(tf.square(vectors),
                                                                          axis=2), axis=-1)
        shape = tf.shape(vectors)
        flat = tf.reshape(vectors, [shape[0], shape[1], len(FIELDS) * self.dim])
        deep = self.deep(flat, training=training)[..., 0]
        return self.bias + first + pairwise + deep
