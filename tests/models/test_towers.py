"""Tower options on tiny tensors: history pooling, item side features, freshness."""

import numpy as np
import pytest
import tensorflow as tf

from models.towers import (
    AttentivePooling,
    CandidateTower,
    QueryTower,
    drop_history_items,
    freshness_features,
    hashed_token_table,
    last_items,
    position_weighted_mean,
    steps_before_newest,
)
from tests.conftest import single_model_hparams


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
    hparams = single_model_hparams(embedding_dim=4, history_pooling="attention", attention_heads=3,
                                   query_hidden_layers=(8, 6), similarity="cosine")
    tower = QueryTower(["u1"], ["i1", "i2"], hparams)
    out = tower({"user_id": tf.constant(["u1", "x"]),
                 "history": tf.constant([["i1", "i2"], ["", ""]])}).numpy()
    assert out.shape == (2, 4)
    # Cosine similarity: a user with history gets a unit vector.
    assert abs(np.linalg.norm(out[0]) - 1.0) < 1e-5
    assert [layer.units for layer in tower.hidden] == [8, 6]


def test_hashed_token_table_rows_follow_the_vocabulary_with_an_empty_oov_row():
    values, splits = hashed_token_table([["drama", "war"], [], ["drama"]], buckets=50)
    assert splits.tolist() == [0, 0, 2, 2, 3]
    expected = tf.strings.to_hash_bucket_fast(["drama", "war", "drama"], 50).numpy()
    assert values.tolist() == expected.tolist()
    assert values[0] == values[2]  # the same token always lands in the same bucket


def test_freshness_is_one_for_new_and_unclicked_items_and_falls_with_log_age():
    day = 86400.0
    table = freshness_features([100 * day, 10 * day, 0.0, 110 * day], [5, 3, 0, 1],
                               newest_timestamp=110 * day)
    # ages in days: 10, 100, never clicked (0), 0; max log1p(age) = log1p(100)
    expected = [0.0, 1 - np.log1p(10) / np.log1p(100), 0.0, 1.0, 1.0]
    np.testing.assert_allclose(table[:, 0], expected, rtol=1e-6)


def test_candidate_tower_adds_the_mean_of_each_side_feature_s_token_embeddings():
    hparams = single_model_hparams(embedding_dim=3, use_popularity_features=False,
                                   item_feature_buckets=97)
    features = {"genres": [["drama", "war"], [], ["comedy"]], "title": [["a"], ["b"], []]}
    tower = CandidateTower(["i1", "i2", "i3"], hparams, item_features=features)
    out = tower(tf.constant(["i1", "i2", "i3", "unknown"])).numpy()
    ids = tower.item_embedding.embeddings.numpy()
    genres, title = (layer.embeddings.numpy() for layer in tower.side_embeddings)
    assert tower.side_feature_names == ["genres", "title"]

    def bucket(token):
        return int(tf.strings.to_hash_bucket_fast([token], 97).numpy()[0])

    np.testing.assert_allclose(out[0], ids[1] + (genres[bucket("drama")] + genres[bucket("war")])
                               / 2 + title[bucket("a")], rtol=1e-5)
    np.testing.assert_allclose(out[1], ids[2] + title[bucket("b")], rtol=1e-5)
    np.testing.assert_allclose(out[2], ids[3] + genres[bucket("comedy")], rtol=1e-5)
    np.testing.assert_allclose(out[3], ids[0], rtol=1e-5)  # OOV: no side features


def test_candidate_tower_rejects_side_features_that_do_not_match_the_vocabulary():
    with pytest.raises(ValueError, match=r"item feature 'genres': 1 rows for 2 vocabulary"):
        CandidateTower(["i1", "i2"], single_model_hparams(use_popularity_features=False),
                       item_features={"genres": [["drama"]]})


def test_side_features_off_ignores_the_catalogue():
    hparams = single_model_hparams(embedding_dim=3, use_popularity_features=False,
                                   use_item_side_features=False)
    tower = CandidateTower(["i1"], hparams, item_features={"genres": [["drama"]]})
    np.testing.assert_allclose(tower(tf.constant(["i1"])).numpy()[0],
                               tower.item_embedding.embeddings.numpy()[1])


def test_shared_item_embeddings_use_the_history_table_for_candidates():
    hparams = single_model_hparams(embedding_dim=3, use_popularity_features=False,
                                   share_item_embeddings=True)
    query = QueryTower(["u1"], ["i1", "i2"], hparams)
    tower = CandidateTower(["i1", "i2"], hparams, shared_history=query)
    query({"user_id": tf.constant(["u1"]), "history": tf.constant([["i1", ""]])})
    out = tower(tf.constant(["i2", "unknown"])).numpy()
    table = query.history_embedding.embeddings
    # History table rows: 0 padding, 1 OOV, then the vocabulary.
    np.testing.assert_allclose(out, table.numpy()[[3, 1]])
    assert not tower.item_embedding.built  # no second id table
    assert {v.ref() for v in tower.trainable_weights} == {table.ref()}


def test_position_weighted_mean_weights_by_steps_before_the_newest_item():
    # Row 0: items a=(1,0), b=(0,1), c=(2,2), c the newest, then padding.
    # Row 1: one item, padding on the left (alignment must not matter).
    # Row 2: empty history.
    embedded = tf.constant([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [9.0, 9.0]],
                            [[9.0, 9.0], [4.0, 6.0], [9.0, 9.0], [9.0, 9.0]],
                            [[9.0, 9.0], [9.0, 9.0], [9.0, 9.0], [9.0, 9.0]]])
    mask = tf.constant([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0],
                        [0.0, 0.0, 0.0, 0.0]])[..., None]
    np.testing.assert_allclose(steps_before_newest(mask).numpy()[0, :3, 0], [2.0, 1.0, 0.0])
    # decay 0.5: weights a 0.25, b 0.5, c 1 -> (0.25 + 2, 0.5 + 2) / 1.75.
    pooled = position_weighted_mean(embedded, mask, 0.5).numpy()
    np.testing.assert_allclose(pooled[0], [2.25 / 1.75, 2.5 / 1.75], rtol=1e-6)
    np.testing.assert_allclose(pooled[1], [4.0, 6.0], rtol=1e-6)
    np.testing.assert_allclose(pooled[2], [0.0, 0.0])
    # decay 1: the plain mean.
    np.testing.assert_allclose(position_weighted_mean(embedded, mask, 1.0).numpy()[0],
                               [1.0, 1.0], rtol=1e-6)


def test_last_items_are_the_newest_first_with_zeros_for_short_histories():
    embedded = tf.constant([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [9.0, 9.0]],
                            [[9.0, 9.0], [4.0, 6.0], [9.0, 9.0], [9.0, 9.0]]])
    mask = tf.constant([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])[..., None]
    np.testing.assert_allclose(last_items(embedded, mask, 2).numpy(),
                               [[2.0, 2.0, 0.0, 1.0], [4.0, 6.0, 0.0, 0.0]])


def test_query_tower_concatenates_the_newest_item_to_the_decayed_mean():
    hparams = single_model_hparams(embedding_dim=2, history_last_items=1,
                                   history_position_decay=0.5, query_hidden_layers=())
    tower = QueryTower(["u1"], ["i1", "i2"], hparams)
    inputs = {"user_id": tf.constant(["u1", "u1"]),
              "history": tf.constant([["i1", "i2"], ["", ""]])}
    table = tower.history_embedding  # rows: padding, OOV, i1, i2
    tower(inputs)
    rows = table.embeddings.numpy()
    representation = tower.representation(inputs).numpy()
    # i2 is the newest: mean (0.5 * i1 + i2) / 1.5, then i2 itself.
    np.testing.assert_allclose(representation[0, :2], (0.5 * rows[2] + rows[3]) / 1.5,
                               rtol=1e-5)
    np.testing.assert_allclose(representation[0, 2:], rows[3], rtol=1e-6)
    np.testing.assert_allclose(representation[1], np.zeros(4), atol=1e-7)
    assert tower.projection.kernel.shape == (4, 2)


def test_history_dropout_drops_real_items_only_and_only_in_training():
    mask = tf.concat([tf.ones([2000, 5, 1]), tf.zeros([2000, 5, 1])], axis=1)
    dropped = drop_history_items(mask, 0.3, seed=1).numpy()
    assert set(np.unique(dropped)) <= {0.0, 1.0}
    assert dropped[:, 5:].sum() == 0.0  # padding never comes back
    assert dropped[:, :5].mean() == pytest.approx(0.7, abs=0.02)
    hparams = single_model_hparams(embedding_dim=2, history_dropout=0.5, query_hidden_layers=())
    tower = QueryTower(["u1"], ["i1", "i2"], hparams)
    inputs = {"user_id": tf.constant(["u1"] * 64), "history": tf.constant([["i1", "i2"]] * 64)}
    served = tower(inputs, training=False).numpy()
    np.testing.assert_allclose(served, np.repeat(served[:1], 64, axis=0))  # deterministic
    trained = tower(inputs, training=True).numpy()
    assert len(np.unique(trained.round(6), axis=0)) > 1  # rows differ by what was dropped


def test_history_items_add_the_mean_of_their_catalogue_token_embeddings():
    hparams = single_model_hparams(embedding_dim=2, history_item_side_features=True,
                                   query_hidden_layers=())
    tower = QueryTower(["u1"], ["i1", "i2"], hparams,
                       item_features={"genre": [["drama", "war"], []]})
    inputs = {"user_id": tf.constant(["u1", "u1"]),
              "history": tf.constant([["i1", "i2"], ["i2", ""]])}
    representation = tower.representation(inputs).numpy()
    ids = tower.history_embedding.embeddings.numpy()  # padding, OOV, i1, i2
    _, _, table = tower.history_side[0]
    buckets = tf.strings.to_hash_bucket_fast(["drama", "war"], hparams.item_feature_buckets)
    genre_i1 = table.embeddings.numpy()[buckets.numpy()].mean(axis=0)
    # i1: its id row + the mean of its two genre tokens; i2 has no tokens.
    np.testing.assert_allclose(representation[0], (ids[2] + genre_i1 + ids[3]) / 2, rtol=1e-5)
    np.testing.assert_allclose(representation[1], ids[3], rtol=1e-6)
