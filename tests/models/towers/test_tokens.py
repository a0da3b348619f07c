"""Hashed catalogue tokens: the ragged per-item tables and their mean embedding."""

import numpy as np
import pytest
import tensorflow as tf

from models.towers.tokens import HashedTokenEmbedding, hashed_token_table, item_token_tables


def test_hashed_token_table_rows_follow_the_vocabulary_with_an_empty_oov_row():
    values, splits = hashed_token_table([["drama", "war"], [], ["drama"]], buckets=50)
    assert splits.tolist() == [0, 0, 2, 2, 3]
    expected = tf.strings.to_hash_bucket_fast(["drama", "war", "drama"], 50).numpy()
    assert values.tolist() == expected.tolist()
    assert values[0] == values[2]  # the same token always lands in the same bucket


def test_item_token_tables_put_padding_and_oov_rows_in_front():
    [(position, name, values, splits)] = item_token_tables(
        {"genre": [["a"], []]}, num_items=2, buckets=7, padding_row=True, oov_rows=2)
    # Rows: padding, 2 OOV, then the two items.
    assert (position, name) == (0, "genre") and splits.tolist() == [0, 0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match=r"item feature 'genre': 1 rows for 2 vocabulary"):
        item_token_tables({"genre": [["a"]]}, num_items=2, buckets=7)


def test_hashed_token_embedding_is_the_mean_of_the_real_tokens():
    layer = HashedTokenEmbedding(buckets=13, dim=2, seed=0)
    out = layer(tf.constant([["x", "y"], ["x", ""], ["", ""]])).numpy()
    table = layer.table.embeddings.numpy()
    x, y = tf.strings.to_hash_bucket_fast(["x", "y"], 13).numpy()
    np.testing.assert_allclose(out[0], (table[x] + table[y]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out[1], table[x], rtol=1e-6)
    np.testing.assert_allclose(out[2], [0.0, 0.0])
