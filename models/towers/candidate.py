"""The candidate tower: item ids `[B]` -> embeddings `[B, D]`.

The item's id embedding plus every enabled candidate input
(`models/towers/inputs`: popularity, catalogue features). Side information is
stored per vocabulary row, so the served tower still takes only item ids.

Unknown ids map to one OOV row whatever the vocabulary's `num_oov_buckets`:
the tower only ever embeds vocabulary items for the index and serving, so its
OOV row is reached only by training clicks on items cut from the vocabulary,
whose embedding is never served.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models.towers.inputs import ITEM_INPUTS  # noqa: E402
from models.towers.query import normalise  # noqa: E402


class CandidateTower(tf.keras.Model):
    """Item ids `[B]` -> `[B, D]`.

    Args:
      vocab: the training `Vocab` (item ids in row order, click counts).
      config: the `ModelConfig`.
      item_features: catalogue tokens per item, in vocabulary order, or None.
    """

    def __init__(self, vocab, config, item_features: dict[str, list[list[str]]] | None = None):
        super().__init__()
        self._config = config
        self.item_lookup = tf.keras.layers.StringLookup(
            vocabulary=vocab.item_ids, mask_token=None, num_oov_indices=1)
        self.item_embedding = tf.keras.layers.Embedding(
            vocab.num_items + 1, config.towers.embedding_dim,
            embeddings_initializer=tf.keras.initializers.RandomNormal(
                stddev=0.05, seed=config.training.seed + 1))
        self.extra_inputs = [cls(config, vocab, item_features) for cls in ITEM_INPUTS.values()
                             if cls.enabled(config)]

    def call(self, item_id: tf.Tensor) -> tf.Tensor:
        index = self.item_lookup(item_id)
        embedding = self.item_embedding(index)
        for layer in self.extra_inputs:
            for part in layer(index):
                embedding += part
        return normalise(embedding, self._config.towers.similarity)


def corpus_embeddings(candidate_tower, item_ids, batch_size: int = 8192) -> tf.Tensor:
    """The candidate tower's embeddings `[N, D]` of `item_ids`, `batch_size` at a time."""
    item_ids = tf.constant(item_ids) if not isinstance(item_ids, tf.Tensor) else item_ids
    size = int(item_ids.shape[0])
    return tf.concat([candidate_tower(item_ids[start:start + batch_size], training=False)
                      for start in range(0, size, batch_size)], axis=0)
