"""The query tower on tiny inputs: shapes, dropout, history side features."""

import numpy as np
import pytest
import tensorflow as tf

from models.towers import QueryTower
from models.towers.query import drop_history_items
from tests.conftest import single_model_config


def test_query_tower_with_attention_and_mlp_has_the_embedding_shape():
    config = single_model_config(towers={"embedding_dim": 4, "query_hidden_layers": [8, 6],
                                         "similarity": "cosine"},
                                 history={"pooling": "attention", "attention_heads": 3})
    tower = QueryTower(["u1"], ["i1", "i2"], config)
    out = tower({"user_id": tf.constant(["u1", "x"]),
                 "history": tf.constant([["i1", "i2"], ["", ""]])}).numpy()
    assert out.shape == (2, 4)
    # Cosine similarity: a user with history gets a unit vector.
    assert abs(np.linalg.norm(out[0]) - 1.0) < 1e-5
    assert [layer.units for layer in tower.hidden] == [8, 6]


def test_representation_is_the_mean_history_then_the_user_id():
    config = single_model_config(towers={"embedding_dim": 2, "query_hidden_layers": [],
                                         "user_id": True})
    tower = QueryTower(["u1"], ["i1", "i2"], config)
    inputs = {"user_id": tf.constant(["u1", "x"]),
              "history": tf.constant([["i1", "i2"], ["", ""]])}
    tower(inputs)  # builds every layer
    representation = tower.representation(inputs).numpy()
    items = tower.history_embedding.embeddings.numpy()  # padding, OOV, i1, i2
    users = tower.user_embedding.embeddings.numpy()  # OOV, u1
    np.testing.assert_allclose(representation[0], np.concatenate(
        [(items[2] + items[3]) / 2, users[1]]), rtol=1e-6)
    np.testing.assert_allclose(representation[1], np.concatenate([[0.0, 0.0], users[0]]))
    assert tower.projection.kernel.shape == (4, 2)


def test_history_dropout_drops_real_items_only_and_only_in_training():
    mask = tf.concat([tf.ones([2000, 5, 1]), tf.zeros([2000, 5, 1])], axis=1)
    dropped = drop_history_items(mask, 0.3, seed=1).numpy()
    assert set(np.unique(dropped)) <= {0.0, 1.0}
    assert dropped[:, 5:].sum() == 0.0  # padding never comes back
    assert dropped[:, :5].mean() == pytest.approx(0.7, abs=0.02)
    config = single_model_config(towers={"embedding_dim": 2, "query_hidden_layers": []},
                                 history={"dropout": 0.5})
    tower = QueryTower(["u1"], ["i1", "i2"], config)
    inputs = {"user_id": tf.constant(["u1"] * 64), "history": tf.constant([["i1", "i2"]] * 64)}
    served = tower(inputs, training=False).numpy()
    np.testing.assert_allclose(served, np.repeat(served[:1], 64, axis=0))  # deterministic
    trained = tower(inputs, training=True).numpy()
    assert len(np.unique(trained.round(6), axis=0)) > 1  # rows differ by what was dropped


def test_history_items_add_the_mean_of_their_catalogue_token_embeddings():
    config = single_model_config(towers={"embedding_dim": 2, "query_hidden_layers": []},
                                 history={"item_side_features": True})
    tower = QueryTower(["u1"], ["i1", "i2"], config,
                       item_features={"genre": [["drama", "war"], []]})
    inputs = {"user_id": tf.constant(["u1", "u1"]),
              "history": tf.constant([["i1", "i2"], ["i2", ""]])}
    representation = tower.representation(inputs).numpy()
    ids = tower.history_embedding.embeddings.numpy()  # padding, OOV, i1, i2
    _, _, table = tower.history_side[0]
    buckets = tf.strings.to_hash_bucket_fast(["drama", "war"],
                                             config.towers.item_feature_buckets)
    genre_i1 = table.embeddings.numpy()[buckets.numpy()].mean(axis=0)
    # i1: its id row + the mean of its two genre tokens; i2 has no tokens.
    np.testing.assert_allclose(representation[0], (ids[2] + genre_i1 + ids[3]) / 2, rtol=1e-5)
    np.testing.assert_allclose(representation[1], ids[3], rtol=1e-6)
