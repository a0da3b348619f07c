"""The DSSM text tower: trigram bags through non-linear layers to `[B, D]`."""

import numpy as np
import pytest
import tensorflow as tf

from models.towers.text_tower import TextTower


@pytest.mark.parametrize("layers", [(16, 8), ()], ids=["deep", "linear"])
def test_text_tower_maps_trigram_bags_to_the_embedding_width_and_empty_rows_to_zeros(layers):
    tower = TextTower(buckets=50, layers=layers, dim=4, activation="tanh", seed=0)
    ids = tf.ragged.constant([[1, 2, 3], [], [3, 2, 1], [7]], dtype=tf.int64)
    out = tower(ids).numpy()
    assert out.shape == (4, 4)
    np.testing.assert_array_equal(out[1], np.zeros(4))  # an item without a title
    np.testing.assert_allclose(out[0], out[2], rtol=1e-6)  # a bag: order does not count
    assert not np.allclose(out[0], out[3])
    assert len(tower.hidden) == max(len(layers) - 1, 0)


def test_text_tower_first_layer_is_the_mean_over_the_trigram_rows():
    tower = TextTower(buckets=10, layers=(3,), dim=2, activation="relu", seed=1)
    tower(tf.ragged.constant([[0]], dtype=tf.int64))
    rows = tower.trigram_rows.embeddings.numpy()
    # Doubling every trigram leaves the mean, hence the output, unchanged.
    once = tower(tf.ragged.constant([[4, 5]], dtype=tf.int64)).numpy()
    twice = tower(tf.ragged.constant([[4, 5, 4, 5]], dtype=tf.int64)).numpy()
    np.testing.assert_allclose(once, twice, rtol=1e-6)
    hidden = np.maximum((rows[4] + rows[5]) / 2, 0)
    kernel, bias = tower.projection.get_weights()
    np.testing.assert_allclose(once[0], hidden @ kernel + bias, rtol=1e-5, atol=1e-6)
