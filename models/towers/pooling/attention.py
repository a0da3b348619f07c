"""Multi-head attentive pooling of the history with learned queries."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402


class AttentivePooling(tf.keras.layers.Layer):
    """Multi-head attentive pooling of a padded sequence of embeddings.

    Each of `model.history.attention_heads` heads has a learned query vector;
    its weights over the valid (unmasked) positions are a softmax of
    key . query / sqrt(D), keys being a linear map of the item embeddings.
    Heads' weighted sums are concatenated `[B, H * D]`. A history with no
    valid item pools to zeros.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.heads = config.history.attention_heads
        self.dim = config.towers.embedding_dim
        seed = config.training.seed + 3
        self.keys = tf.keras.layers.Dense(
            self.dim, use_bias=False,
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed))
        self.queries = self.add_weight(
            name="queries", shape=(self.dim, self.heads),
            initializer=tf.keras.initializers.RandomNormal(stddev=0.05, seed=seed + 1))

    def call(self, embeddings: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        # embeddings [B, L, D], mask [B, L, 1] (1 = a real item).
        dim = tf.cast(tf.shape(embeddings)[-1], embeddings.dtype)
        logits = tf.einsum("bld,dh->blh", self.keys(embeddings), self.queries) / tf.sqrt(dim)
        logits += (1.0 - mask) * -1e9
        weights = tf.nn.softmax(logits, axis=1) * mask  # [B, L, H]; all-padding rows -> 0
        pooled = tf.einsum("blh,bld->bhd", weights, embeddings)
        return tf.reshape(pooled, [-1, self.heads * self.dim])
