"""Candidate input: the item's popularity (`model.towers.popularity`).

log1p of the item's all-time and recent (VocabStats' recent window) click
counts, each scaled to [0, 1], projected to the embedding space and added to
the item's id embedding.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def popularity_features(counts: list[float], recent_counts: list[float]) -> np.ndarray:
    """Per-item popularity features `[N + 1, 2]` (row 0: the OOV bucket)."""
    table = np.zeros((len(counts) + 1, 2), np.float32)
    for column, values in enumerate((counts, recent_counts)):
        logs = np.log1p(np.asarray(values, np.float64))
        table[1:, column] = logs / max(float(logs.max()), 1e-9) if len(values) else 0.0
    return table


class PopularityInput(tf.keras.layers.Layer):
    """`[[B, D]]`: the projection of the popularity features of candidate rows
    `index` (a one-part list, as every candidate input returns)."""

    @staticmethod
    def enabled(config) -> bool:
        return config.towers.popularity

    def __init__(self, config, vocab, item_features=None, **kwargs):
        super().__init__(**kwargs)
        self.table = tf.constant(popularity_features(vocab.item_counts,
                                                     vocab.item_recent_counts))
        self.projection = tf.keras.layers.Dense(
            config.towers.embedding_dim,
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=config.training.seed + 2))

    def call(self, index: tf.Tensor) -> list[tf.Tensor]:
        return [self.projection(tf.gather(self.table, index))]
