"""The query tower: the user's recent items (and any query inputs) -> `[B, D]`.

The history items' id embeddings (plus, with `model.history.item_side_features`,
their catalogue tokens) are pooled (`models/towers/pooling`), optionally
concatenated with a user id embedding and the enabled query inputs
(`models/towers/inputs`), then go through a ReLU MLP and a projection to the
shared embedding space. In training, history items are dropped at random
(`model.history.dropout`). `""` in the history is padding.

Unknown user ids and history items (cold start, ids cut from the vocabulary
by its count or size limits) hash into `num_oov_buckets` OOV rows of their
tables instead of sharing one (VocabStatsGen's `vocab.num_oov_buckets`).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.towers.inputs import QUERY_INPUTS, query_input_specs  # noqa: E402
from models.towers.pooling import POOLINGS  # noqa: E402
from models.towers.tokens import item_token_tables, mean_token_embedding  # noqa: E402
from models.vocab import check_oov_buckets  # noqa: E402


def normalise(x: tf.Tensor, similarity: str) -> tf.Tensor:
    """L2-normalised rows for `cosine`, unchanged for `dot`."""
    return tf.math.l2_normalize(x, axis=-1) if similarity == "cosine" else x


def drop_history_items(mask: tf.Tensor, rate: float, seed=None) -> tf.Tensor:
    """`mask` `[B, L, 1]` with each real item dropped (set to 0) with
    probability `rate` (training-time history dropout); the rest stay 1."""
    keep = tf.cast(tf.random.uniform(tf.shape(mask), seed=seed) >= rate, mask.dtype)
    return mask * keep


class QueryTower(tf.keras.Model):
    """Maps the query inputs (`query_input_specs(config)`: user_id `[B]`,
    history `[B, max_history]` and any extra inputs) to embeddings `[B, D]`.

    Args:
      user_ids, item_ids: the vocabularies.
      config: the `ModelConfig`.
      item_features: catalogue tokens per item (for history side features).
      num_oov_buckets: OOV rows of the user and history tables.
    """

    def __init__(self, user_ids: list[str], item_ids: list[str], config,
                 item_features: dict[str, list[list[str]]] | None = None,
                 num_oov_buckets: int = 1):
        super().__init__()
        self._config = config
        self.num_oov_buckets = oov = check_oov_buckets(num_oov_buckets)
        dim = config.towers.embedding_dim
        seed = config.training.seed
        init = tf.keras.initializers.RandomNormal(stddev=0.05, seed=seed)
        # Rows: the OOV buckets 0 .. K - 1, then the vocabulary.
        self.user_lookup = tf.keras.layers.StringLookup(
            vocabulary=user_ids, mask_token=None, num_oov_indices=oov)
        self.user_embedding = tf.keras.layers.Embedding(
            len(user_ids) + oov, dim, embeddings_initializer=init)
        # Index 0 is the padding mask, 1 .. K the OOV buckets, then the vocabulary.
        self.history_lookup = tf.keras.layers.StringLookup(
            vocabulary=item_ids, mask_token=features.PADDING, num_oov_indices=oov)
        self.history_embedding = tf.keras.layers.Embedding(
            len(item_ids) + 1 + oov, dim, embeddings_initializer=init)
        # Per catalogue feature, each history item's tokens (rows in
        # history-lookup order: padding, K OOV, items).
        self.history_side = []
        if config.history.item_side_features and item_features:
            buckets = config.towers.item_feature_buckets
            for n, name, values, splits in item_token_tables(
                    item_features, len(item_ids), buckets, padding_row=True, oov_rows=oov):
                self.history_side.append((tf.constant(values), tf.constant(splits),
                                          tf.keras.layers.Embedding(
                    buckets, dim, name=f"history_{name}_embedding",
                    embeddings_initializer=tf.keras.initializers.RandomNormal(
                        stddev=0.05, seed=seed + 60 + n))))
        self.pooling = POOLINGS[config.history.pooling](config)
        self.extra_inputs = [cls(config) for cls in QUERY_INPUTS.values()
                             if cls.enabled(config)]
        self.hidden = [
            tf.keras.layers.Dense(width, activation="relu",
                                  kernel_initializer=tf.keras.initializers.GlorotUniform(
                                      seed=seed + 10 + n))
            for n, width in enumerate(config.towers.query_hidden_layers)]
        self.projection = tf.keras.layers.Dense(
            dim, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed))

    def call(self, inputs: dict, training=None) -> tf.Tensor:
        return self.embed(self.representation(inputs, training=bool(training)))

    def example_inputs(self) -> dict:
        """A one-row input of every query input (empty history, defaults),
        used to build the tower's variables."""
        return features.default_query_inputs(query_input_specs(self._config))

    def representation(self, inputs: dict, training: bool = False) -> tf.Tensor:
        """The tower's pooled inputs (history, user id, extra inputs), before
        any MLP: `[B, U]`; what the teacher of teacher-guided retrieval sees of
        the user."""
        history_index = self.history_lookup(inputs[features.HISTORY])  # [B, L]
        mask = tf.cast(tf.not_equal(history_index, 0), tf.float32)[..., None]  # [B, L, 1]
        if training and self._config.history.dropout:
            mask = drop_history_items(mask, self._config.history.dropout)
        embedded = self.history_embedding(history_index)  # [B, L, D]
        for values, splits, table in self.history_side:
            embedded += mean_token_embedding(values, splits, table, history_index)
        parts = [self.pooling(embedded, mask, training=training)]
        if self._config.towers.user_id:
            parts.append(self.user_embedding(self.user_lookup(inputs[features.USER_ID])))
        parts += [layer(inputs) for layer in self.extra_inputs]
        return tf.concat(parts, axis=-1)

    def embed(self, representation: tf.Tensor) -> tf.Tensor:
        """Query embeddings `[B, D]` from `representation(inputs)`."""
        hidden = representation
        for layer in self.hidden:
            hidden = layer(hidden)
        return normalise(self.projection(hidden), self._config.towers.similarity)
