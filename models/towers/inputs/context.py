"""Query inputs: declared user/context features (`model.towers.query_features`).

Each feature declared in `ingestion.schema` as a user or context feature and
listed here is a named input of the query tower and of every serving
signature. `string`, `int` and `string_list` values are hashed into
`query_feature_buckets` buckets and embedded (lists mean-pooled, `""`
ignored); a `float` enters as `sign(x) * log1p(|x|)`. A `text` feature (a
`string` click-log feature, e.g. a search query) is split into words in the
graph (`models/towers/text.py: words`, as the catalogue splits titles), then
embedded as the mean of its hashed words (`model.towers.text_tower: bag`) or
through the DSSM text tower over its letter trigrams (`dssm`).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.towers.text import trigram_ids, words  # noqa: E402
from models.towers.text_tower import TextTower  # noqa: E402
from models.towers.tokens import HashedTokenEmbedding  # noqa: E402

# Declared feature type (clicklog/schema.py, and `text`) -> dtype of its tensor.
FEATURE_DTYPES = {"string": tf.string, "int": tf.int64, "float": tf.float32,
                  "string_list": tf.string, "text": tf.string}


def feature_tokens(values: tf.Tensor, kind: str) -> tf.Tensor:
    """Strings `[B, T]` of a declared feature's tokens (`""` = none).

    A string feature is one token per row (`""` when missing), an int its
    decimal text, a string list its values, a text its words.
    """
    if kind == "text":
        return words(values).to_tensor(default_value=features.PADDING)
    if kind == "int":
        return tf.strings.as_string(values)[:, None]
    if kind == "string":
        return values[:, None]
    return values


class ContextFeaturesInput(tf.keras.layers.Layer):
    """`[B, sum of widths]`: each declared feature's embedding (or signed log)."""

    @staticmethod
    def enabled(config) -> bool:
        return bool(config.towers.query_features)

    @staticmethod
    def specs(config) -> list[tf.TensorSpec]:
        """`[B]` of the feature's dtype, or `[B, L]` strings for a `string_list`."""
        return [tf.TensorSpec([None, None] if kind == "string_list" else [None],
                              FEATURE_DTYPES[kind], name=name)
                for name, kind in config.towers.query_features]

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        towers = config.towers
        self.trigram_buckets = towers.text_trigram_buckets
        self.features = []
        for n, (name, kind) in enumerate(towers.query_features):
            seed = config.training.seed + 40 + n
            if kind == "float":
                embedding = None
            elif kind == "text" and towers.text_tower == "dssm":
                embedding = TextTower(towers.text_trigram_buckets, towers.text_layers,
                                      towers.embedding_dim, towers.text_activation,
                                      seed + 100, name=f"{name}_text_tower")
            else:
                embedding = HashedTokenEmbedding(towers.query_feature_buckets,
                                                 towers.embedding_dim, seed,
                                                 name=f"{name}_embedding")
            self.features.append((name, kind, embedding))

    def call(self, inputs: dict) -> tf.Tensor:
        parts = []
        for name, kind, embedding in self.features:
            if embedding is None:  # float: one signed-log column
                value = tf.cast(inputs[name], tf.float32)[:, None]
                parts.append(tf.sign(value) * tf.math.log1p(tf.abs(value)))
            elif isinstance(embedding, TextTower):
                parts.append(embedding(trigram_ids(words(inputs[name]),
                                                   self.trigram_buckets)))
            else:
                parts.append(embedding(feature_tokens(inputs[name], kind)))
        return tf.concat(parts, axis=-1)
