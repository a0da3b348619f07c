"""Query input: the example's age (`model.towers.example_age`), as YouTube DNN.

Covington et al. (RecSys 2016) feed the age of each training example (how
long before the end of the training window the click happened) to the
query tower, and set it to zero at serving: the model learns how an item's
popularity moves through time, and at age 0 it scores items as they stand
at the end of the log, which favours fresh items over ones whose clicks are
long past.

In training the age is the newest training click's time minus the click's
time (`RetrievalModel` fills it in from `timestamp`). At serving it is the
named input `example_age_seconds`, int64 `[B]`; a negative value (what a
missing feature parses to) takes `model.towers.example_age_serving_seconds`
(default 0), so the evaluator, `serve_tf_examples` and a client that sends
-1 all get the configured serving age. The tower sees
`x = log1p(age in days) / log1p(3650)`, `x^2` and `sqrt(x)`.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402

# Ages are scaled so that ten years is 1.
_SCALE_DAYS = 3650.0


def age_features(seconds: tf.Tensor) -> tf.Tensor:
    """`[B, 3]`: x, x^2, sqrt(x) of x = log1p(days) / log1p(3650), ages >= 0."""
    days = tf.maximum(tf.cast(seconds, tf.float32), 0.0) / 86400.0
    x = tf.math.log1p(days) / math.log1p(_SCALE_DAYS)
    return tf.stack([x, tf.square(x), tf.sqrt(x)], axis=-1)


class ExampleAgeInput(tf.keras.layers.Layer):
    """`[B, 3]` age features of `example_age_seconds` (negative: the serving age)."""

    @staticmethod
    def enabled(config) -> bool:
        return config.towers.example_age

    @staticmethod
    def specs(config) -> list[tf.TensorSpec]:
        return [tf.TensorSpec([None], tf.int64, name=features.EXAMPLE_AGE)]

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.serving_seconds = float(config.towers.example_age_serving_seconds)

    def call(self, inputs: dict) -> tf.Tensor:
        seconds = tf.cast(inputs[features.EXAMPLE_AGE], tf.float32)
        seconds = tf.where(seconds < 0, self.serving_seconds, seconds)
        return age_features(seconds)
