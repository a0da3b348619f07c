"""Query tower pooling options on tiny tensors."""

import numpy as np
import tensorflow as tf

from models.hparams import HParams
from models.towers import AttentivePooling, QueryTower


def test_attentive_pooling_ignores_padding_and_weights_sum_to_one():
    pooling = AttentivePooling(heads=2, dim=3, seed=0)
    embeddings = tf.constant([[[1.0, 0.0, 0.0], [0.0, 5.0, 0.0], [9.0, 9.0, 9.0]],
                              [[2.0, 1.0, 0.0], [7.0, 7.0, 7.0], [7.0, 7.0, 7.0]],
                              [[3.0, 3.0, 3.0], [3.0, 3.0, 3.0], [3.0, 3.0, 3.0]]])
    mask = tf.constant([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])[..., None]
    pooled = pooling(embeddings, mask).numpy().reshape(3, 2, 3)
    # Row 0: each head is a convex mix of the two real items, never the padding.
    for head in pooled[0]:
        weight = head[0]  # share of item (1, 0, 0)
        np.testing.assert_allclose(head, [weight, 5 * (1 - weight), 0.0], atol=1e-5)
        assert 0.0 < weight < 1.0
    # Row 1: one real item: every head returns it exactly.
    np.testing.assert_allclose(pooled[1], [[2.0, 1.0, 0.0]] * 2, atol=1e-5)
    # Row 2: nothing to attend to: zeros, not the padding's embeddings.
    np.testing.assert_allclose(pooled[2], np.zeros((2, 3)), atol=1e-6)


def test_query_tower_with_attention_and_mlp_has_the_embedding_shape():
    hparams = HParams(embedding_dim=4, history_pooling="attention", attention_heads=3,
                      query_hidden_layers=(8, 6), similarity="cosine")
    tower = QueryTower(["u1"], ["i1", "i2"], hparams)
    out = tower({"user_id": tf.constant(["u1", "x"]),
                 "history": tf.constant([["i1", "i2"], ["", ""]])}).numpy()
    assert out.shape == (2, 4)
    # Cosine similarity: a user with history gets a unit vector.
    assert abs(np.linalg.norm(out[0]) - 1.0) < 1e-5
    assert [layer.units for layer in tower.hidden] == [8, 6]
