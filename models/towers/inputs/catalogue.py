"""Candidate input: the item's catalogue features (`model.towers.item_side_features`).

Per catalogue feature (VocabStats `item_features.tsv`, from
`vocab.item_catalog`: genres, title words, ...), the mean embedding of the
item's tokens hashed into `item_feature_buckets` buckets, added to the id
embedding. With `model.towers.text_tower: dssm`, a feature the catalogue
declares `text` (VocabStats `stats.json` `item_features`) goes instead
through the DSSM text tower (`models/towers/text_tower.py`): its words'
letter trigrams, hashed into `text_trigram_buckets` buckets ahead of time,
one ragged table per vocabulary row. Items without tokens add nothing; no
catalogue, no input. Items with no training click are reached through their
tokens (tests/models/towers/test_catalogue_input.py).
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models.towers.text import trigram_table  # noqa: E402
from models.towers.text_tower import TextTower  # noqa: E402
from models.towers.tokens import item_token_tables, mean_token_embedding  # noqa: E402


def text_features(vocab, item_features: dict | None) -> list[str]:
    """The catalogue features of type `text` (VocabStats stats.json records
    each feature's catalog type), in name order."""
    kinds = (vocab.stats or {}).get("item_features") or {}
    return sorted(name for name in item_features or {} if kinds.get(name) == "text")


class CatalogueInput(tf.keras.layers.Layer):
    """Per catalogue feature, `[B, D]` embeddings of candidate rows `index`
    (a list: the tower adds them one by one)."""

    @staticmethod
    def enabled(config) -> bool:
        return config.towers.item_side_features

    def __init__(self, config, vocab, item_features=None, **kwargs):
        super().__init__(**kwargs)
        towers = config.towers
        item_features = item_features or {}
        text = (text_features(vocab, item_features) if towers.text_tower == "dssm" else [])
        if towers.text_tower == "dssm" and item_features and not text:
            logging.warning("model.towers.text_tower=dssm: the catalogue features %s include "
                            "no `text` one (VocabStats stats.json item_features); every "
                            "catalogue feature stays a hashed bag", sorted(item_features))
        bags = {name: tokens for name, tokens in item_features.items() if name not in text}
        self.feature_names, self.tables, self.embeddings = [], [], []
        for n, name, values, splits in item_token_tables(bags, vocab.num_items,
                                                         towers.item_feature_buckets):
            self.feature_names.append(name)
            self.tables.append((tf.constant(values), tf.constant(splits)))
            self.embeddings.append(tf.keras.layers.Embedding(
                towers.item_feature_buckets, towers.embedding_dim, name=f"{name}_embedding",
                embeddings_initializer=tf.keras.initializers.RandomNormal(
                    stddev=0.05, seed=config.training.seed + 20 + n)))
        # DSSM text towers: (name, trigram table, tower) per `text` feature.
        self.text_towers = []
        for n, name, values, splits in item_token_tables(
                {name: item_features[name] for name in text}, vocab.num_items,
                towers.text_trigram_buckets, table=trigram_table):
            self.text_towers.append((name, (tf.constant(values), tf.constant(splits)),
                                     TextTower(towers.text_trigram_buckets, towers.text_layers,
                                               towers.embedding_dim, towers.text_activation,
                                               config.training.seed + 80 + 10 * n,
                                               name=f"{name}_text_tower")))

    def call(self, index: tf.Tensor) -> list[tf.Tensor]:
        parts = [mean_token_embedding(values, splits, table, index)
                 for (values, splits), table in zip(self.tables, self.embeddings, strict=True)]
        for _, (values, splits), tower in self.text_towers:
            trigrams = tf.gather(tf.RaggedTensor.from_row_splits(values, splits), index)
            parts.append(tower(trigrams))
        return parts
