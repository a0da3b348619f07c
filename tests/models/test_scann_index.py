import numpy as np
import pytest
import tensorflow as tf

from models.config import ScannConfig
from models.scann_index import EXACT_BELOW, ScannIndex, resolve


def _data(num_items, dim=16, queries=50, seed=0, clusters=40):
    """Items around `clusters` centres (as trained item embeddings are), queries near
    random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    items = centres[rng.integers(0, clusters, num_items)] + 0.3 * rng.normal(
        size=(num_items, dim))
    query = centres[rng.integers(0, clusters, queries)] + 0.3 * rng.normal(size=(queries, dim))
    return tf.constant(items, tf.float32), tf.constant(query, tf.float32)


def test_small_catalogue_is_exact():
    items, queries = _data(50)
    index = ScannIndex(items, tf.range(50), 10, ScannConfig())
    assert index.settings.num_leaves == 0
    scores, ids = index(queries)
    exact = tf.math.top_k(tf.matmul(queries, items, transpose_b=True), 10)
    np.testing.assert_array_equal(ids.numpy(), exact.indices.numpy())
    np.testing.assert_allclose(scores.numpy(), exact.values.numpy(), rtol=1e-5)


def test_tree_path_has_high_recall_and_distinct_ids():
    num_items = EXACT_BELOW + 1000
    items, queries = _data(num_items)
    index = ScannIndex(items, tf.range(num_items), 20, ScannConfig())
    assert index.settings.num_leaves == 55  # round(sqrt(3000))
    assert index.settings.num_leaves_to_search == 11
    _, ids = index(queries)
    exact = tf.math.top_k(tf.matmul(queries, items, transpose_b=True), 20).indices.numpy()
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(exact, ids.numpy(),
                                                                 strict=True)])
    assert recall >= 0.9
    assert all(len(set(row)) == 20 for row in ids.numpy())


@pytest.mark.parametrize("settings,message", [
    (ScannConfig(num_leaves=5000), "num_leaves=5000"),
    (ScannConfig(num_leaves=10, num_leaves_to_search=11), "num_leaves_to_search=11"),
])
def test_impossible_settings_are_rejected(settings, message):
    with pytest.raises(ValueError, match=message):
        resolve(settings, 3000, 10)
