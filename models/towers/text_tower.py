"""The DSSM deep text tower: a bag of letter trigrams -> `[B, D]`.

As DSSM (Huang et al. 2013) maps word-hashed text through non-linear layers
into the semantic space: the mean over a text's trigram ids
(`models/towers/text.py`) of a learned row per trigram bucket (a dense layer
on the normalised trigram-count vector, kept sparse), its bias and
activation, then one dense layer per further width of
`model.towers.text_layers`, then a linear projection to `embedding_dim`. A
text without trigrams (an item without a title) gives zeros, so it adds
nothing to the embedding it joins.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402


class TextTower(tf.keras.layers.Layer):
    """Trigram ids `[B, None]` (ragged int64) -> `[B, dim]`, zeros for empty rows.

    Args:
      buckets: trigram hash buckets (rows of the first layer).
      layers: widths of the non-linear layers; `()` is a linear map of the
        trigram bag.
      dim: the output width.
      activation: `tanh` (as DSSM) or `relu`.
      seed: initialiser seed.
    """

    def __init__(self, buckets: int, layers: tuple[int, ...], dim: int, activation: str,
                 seed: int, **kwargs):
        super().__init__(**kwargs)
        widths = list(layers)
        self.activation = tf.keras.activations.get(activation) if widths else None
        self.trigram_rows = tf.keras.layers.Embedding(
            buckets, widths[0] if widths else dim, name="trigram_rows",
            embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.1, seed=seed))
        self.hidden = [tf.keras.layers.Dense(
            width, activation=activation, name=f"text_layer_{n + 1}",
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + 1 + n))
            for n, width in enumerate(widths[1:])]
        self.projection = tf.keras.layers.Dense(
            dim, name="text_projection",
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + len(widths)),
        ) if widths else None

    def build(self, input_shape):
        width = self.trigram_rows.output_dim
        self.first_bias = self.add_weight(name="first_bias", shape=[width],
                                          initializer="zeros")
        super().build(input_shape)

    def call(self, ids: tf.RaggedTensor) -> tf.Tensor:
        counts = tf.cast(ids.row_lengths(), tf.float32)[:, None]  # [B, 1]
        summed = tf.reduce_sum(tf.ragged.map_flat_values(self.trigram_rows, ids), axis=1)
        hidden = summed / tf.maximum(counts, 1.0) + self.first_bias
        if self.activation is not None:
            hidden = self.activation(hidden)
            for layer in self.hidden:
                hidden = layer(hidden)
            hidden = self.projection(hidden)
        return hidden * tf.cast(counts > 0, tf.float32)
