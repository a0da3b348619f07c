"""Hashed string tokens embedded as a mean (DSSM-style word hashing).

Catalogue features (genres, title words) reach both towers as per-item token
lists, hashed with `tf.strings.to_hash_bucket_fast` into a fixed number of
buckets (the same hash at training and serving) and stored as a ragged table
per vocabulary row, so the served towers still take only ids. Declared
context features of the query are hashed the same way at call time.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.vocab import check_oov_buckets  # noqa: E402


class HashedTokenEmbedding(tf.keras.layers.Layer):
    """Mean embedding of string tokens `[B, T]` hashed into `buckets` rows;
    `""` tokens are padding and a row of padding embeds to zeros."""

    def __init__(self, buckets: int, dim: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.buckets = buckets
        self.table = tf.keras.layers.Embedding(
            buckets, dim, embeddings_initializer=tf.keras.initializers.RandomNormal(
                stddev=0.05, seed=seed))

    def call(self, tokens: tf.Tensor) -> tf.Tensor:
        mask = tf.cast(tf.not_equal(tokens, features.PADDING), tf.float32)[..., None]
        embedded = self.table(tf.strings.to_hash_bucket_fast(tokens, self.buckets))
        return tf.reduce_sum(embedded * mask, axis=1) / tf.maximum(
            tf.reduce_sum(mask, axis=1), 1.0)


def mean_token_embedding(values: tf.Tensor, splits: tf.Tensor, table, index: tf.Tensor
                         ) -> tf.Tensor:
    """`index.shape + [D]`: for each row index of a ragged token table
    (`hashed_token_table`), the mean embedding of its tokens (zeros for a row
    without tokens)."""
    flat = tf.reshape(index, [-1])
    tokens = tf.gather(tf.RaggedTensor.from_row_splits(values, splits), flat)
    summed = tf.reduce_sum(tf.ragged.map_flat_values(table, tokens), axis=1)
    mean = summed / tf.maximum(tf.cast(tokens.row_lengths(), tf.float32)[:, None], 1.0)
    return tf.reshape(mean, tf.concat([tf.shape(index), [-1]], axis=0))


def hashed_token_table(token_lists: list[list[str]], buckets: int) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Hashes each item's tokens into `buckets` ids, as a ragged table.

    Returns `(values, row_splits)` of an int64 RaggedTensor `[N + 1, None]`:
    row 0 (the OOV bucket) is empty and row i + 1 holds item i's token ids.
    """
    lengths = [0] + [len(tokens) for tokens in token_lists]
    flat = [token for tokens in token_lists for token in tokens]
    values = (tf.strings.to_hash_bucket_fast(tf.constant(flat, tf.string), buckets).numpy()
              if flat else np.zeros([0], np.int64))
    return values.astype(np.int64), np.cumsum([0] + lengths).astype(np.int64)


def item_token_tables(item_features: dict, num_items: int, buckets: int,
                      padding_row: bool = False, oov_rows: int = 1,
                      table=hashed_token_table
                      ) -> list[tuple[int, str, np.ndarray, np.ndarray]]:
    """`table` (`hashed_token_table`, or `text.trigram_table` for letter
    trigrams) of every catalogue feature, in name order.

    Returns (position, name, values, row_splits) per feature: `oov_rows`
    empty OOV rows, then the items; with `padding_row` one more empty row in
    front, matching the history lookup (padding 0, OOV 1 .. K, items), so the
    lookup's index is the table's row. Raises if a feature does not have one
    token list per vocabulary item.
    """
    # hashed_token_table puts one more empty row in front itself.
    empty_rows = int(padding_row) + check_oov_buckets(oov_rows) - 1
    tables = []
    for n, name in enumerate(sorted(item_features)):
        token_lists = item_features[name]
        if len(token_lists) != num_items:
            raise ValueError(f"item feature {name!r}: {len(token_lists)} rows for "
                             f"{num_items} vocabulary items; expected one per item")
        rows = [[] for _ in range(empty_rows)] + list(token_lists)
        tables.append((n, name, *table(rows, buckets)))
    return tables
