"""Mean of the history's item embeddings (YouTube DNN)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402


class MeanPooling(tf.keras.layers.Layer):
    """`[B, D]` mean of the real items' embeddings; an empty history pools to zeros."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)

    def call(self, embeddings: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        summed = tf.reduce_sum(embeddings * mask, axis=1)
        return summed / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
