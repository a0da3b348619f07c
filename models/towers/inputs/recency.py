"""Query input: seconds since the user's previous click (`model.towers.recency`).

The click example's `seconds_since_previous_click` (strictly earlier clicks,
-1 for a user's first click), bucketed on a log scale and embedded. It is
also a named serving input, int64 `[B]`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402

# Upper edges (seconds) of the recency buckets: under a minute, ten minutes,
# an hour, six hours, a day, three days, a week, a month, three months, a
# year, then a year or more; a negative value (no previous click) is bucket 0.
RECENCY_BOUNDARIES = (0.0, 60.0, 600.0, 3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0,
                      7 * 86400.0, 30 * 86400.0, 90 * 86400.0, 365 * 86400.0)


def recency_bucket(seconds: tf.Tensor) -> tf.Tensor:
    """int32 bucket `[B]` of seconds since the previous click (-1: none -> 0)."""
    return tf.raw_ops.Bucketize(input=tf.cast(seconds, tf.float32),
                                boundaries=list(RECENCY_BOUNDARIES))


class RecencyInput(tf.keras.layers.Layer):
    """`[B, D]` embedding of the recency bucket."""

    @staticmethod
    def enabled(config) -> bool:
        return config.towers.recency

    @staticmethod
    def specs(config) -> list[tf.TensorSpec]:
        return [tf.TensorSpec([None], tf.int64, name=features.SECONDS_SINCE_PREVIOUS_CLICK)]

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.embedding = tf.keras.layers.Embedding(
            len(RECENCY_BOUNDARIES) + 1, config.towers.embedding_dim,
            embeddings_initializer=tf.keras.initializers.RandomNormal(
                stddev=0.05, seed=config.training.seed), name="recency_embedding")

    def call(self, inputs: dict) -> tf.Tensor:
        return self.embedding(recency_bucket(inputs[features.SECONDS_SINCE_PREVIOUS_CLICK]))
