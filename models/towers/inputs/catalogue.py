"""Candidate input: the item's catalogue features (`model.towers.item_side_features`).

Per catalogue feature (VocabStats `item_features.tsv`, from
`vocab.item_catalog`: genres, title words, ...), the mean embedding of the
item's tokens hashed into `item_feature_buckets` buckets, added to the id
embedding. Items without tokens add nothing; no catalogue, no input. Items
with no training click are reached through their tokens
(tests/models/towers/test_catalogue_input.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models.towers.tokens import item_token_tables, mean_token_embedding  # noqa: E402


class CatalogueInput(tf.keras.layers.Layer):
    """Per catalogue feature, `[B, D]` mean token embeddings of candidate rows
    `index` (a list: the tower adds them one by one)."""

    @staticmethod
    def enabled(config) -> bool:
        return config.towers.item_side_features

    def __init__(self, config, vocab, item_features=None, **kwargs):
        super().__init__(**kwargs)
        buckets = config.towers.item_feature_buckets
        self.feature_names, self.tables, self.embeddings = [], [], []
        for n, name, values, splits in item_token_tables(item_features or {},
                                                         vocab.num_items, buckets):
            self.feature_names.append(name)
            self.tables.append((tf.constant(values), tf.constant(splits)))
            self.embeddings.append(tf.keras.layers.Embedding(
                buckets, config.towers.embedding_dim, name=f"{name}_embedding",
                embeddings_initializer=tf.keras.initializers.RandomNormal(
                    stddev=0.05, seed=config.training.seed + 20 + n)))

    def call(self, index: tf.Tensor) -> list[tf.Tensor]:
        return [mean_token_embedding(values, splits, table, index)
                for (values, splits), table in zip(self.tables, self.embeddings, strict=True)]
