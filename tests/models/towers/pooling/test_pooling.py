"""History poolings on hand-made embeddings (the registry's entries)."""

import numpy as np
import pytest
import tensorflow as tf

from models.towers.pooling import POOLINGS
from models.towers.pooling.attention import AttentivePooling
from models.towers.pooling.mean import MeanPooling
from tests.conftest import single_model_config

# Row 0: two real items then padding; row 1: one item; row 2: nothing.
EMBEDDINGS = tf.constant([[[1.0, 0.0, 0.0], [0.0, 5.0, 0.0], [9.0, 9.0, 9.0]],
                          [[2.0, 1.0, 0.0], [7.0, 7.0, 7.0], [7.0, 7.0, 7.0]],
                          [[3.0, 3.0, 3.0], [3.0, 3.0, 3.0], [3.0, 3.0, 3.0]]])
MASK = tf.constant([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])[..., None]


def _config(**history):
    return single_model_config(towers={"embedding_dim": 3}, history=history)


def test_mean_of_the_real_items_and_zeros_for_an_empty_history():
    pooled = MeanPooling(_config())(EMBEDDINGS, MASK).numpy()
    np.testing.assert_allclose(pooled, [[0.5, 2.5, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])


def test_attentive_pooling_ignores_padding_and_weights_sum_to_one():
    pooling = AttentivePooling(_config(pooling="attention", attention_heads=2))
    pooled = pooling(EMBEDDINGS, MASK).numpy().reshape(3, 2, 3)
    # Row 0: each head is a convex mix of the two real items, never the padding.
    for head in pooled[0]:
        weight = head[0]  # share of item (1, 0, 0)
        np.testing.assert_allclose(head, [weight, 5 * (1 - weight), 0.0], atol=1e-5)
        assert 0.0 < weight < 1.0
    # Row 1: one real item: every head returns it exactly.
    np.testing.assert_allclose(pooled[1], [[2.0, 1.0, 0.0]] * 2, atol=1e-5)
    # Row 2: nothing to attend to: zeros, not the padding's embeddings.
    np.testing.assert_allclose(pooled[2], np.zeros((2, 3)), atol=1e-6)


@pytest.mark.parametrize("name,width", [("mean", 3), ("attention", 6), ("self_attention", 3)])
def test_every_registered_pooling_is_built_from_the_config(name, width):
    assert set(POOLINGS) == {"mean", "attention", "self_attention"}
    pooling = POOLINGS[name](_config(pooling=name, attention_heads=2))
    assert pooling(EMBEDDINGS, MASK).shape == (3, width)
