"""The candidate tower on tiny inputs: id embedding plus its inputs."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from models.towers import CandidateTower
from models.towers.inputs.popularity import popularity_features
from models.vocab import Vocab
from tests.conftest import single_model_config


def vocab_of(item_ids, counts=None, recent=None) -> Vocab:
    counts = counts or [1.0] * len(item_ids)
    return Vocab(item_ids=list(item_ids), item_counts=counts,
                 item_sampling_probability=[c / sum(counts) for c in counts],
                 item_recent_counts=recent or counts, user_ids=["u1"], user_counts=[1.0],
                 stats={})


def test_candidate_tower_adds_the_mean_of_each_side_feature_s_token_embeddings():
    config = single_model_config(towers={"embedding_dim": 3, "popularity": False,
                                         "item_feature_buckets": 97})
    features = {"genres": [["drama", "war"], [], ["comedy"]], "title": [["a"], ["b"], []]}
    tower = CandidateTower(vocab_of(["i1", "i2", "i3"]), config, item_features=features)
    out = tower(tf.constant(["i1", "i2", "i3", "unknown"])).numpy()
    ids = tower.item_embedding.embeddings.numpy()
    [catalogue] = tower.extra_inputs
    genres, title = (layer.embeddings.numpy() for layer in catalogue.embeddings)
    assert catalogue.feature_names == ["genres", "title"]

    def bucket(token):
        return int(tf.strings.to_hash_bucket_fast([token], 97).numpy()[0])

    np.testing.assert_allclose(out[0], ids[1] + (genres[bucket("drama")] + genres[bucket("war")])
                               / 2 + title[bucket("a")], rtol=1e-5)
    np.testing.assert_allclose(out[1], ids[2] + title[bucket("b")], rtol=1e-5)
    np.testing.assert_allclose(out[2], ids[3] + genres[bucket("comedy")], rtol=1e-5)
    np.testing.assert_allclose(out[3], ids[0], rtol=1e-5)  # OOV: no side features


def test_candidate_tower_rejects_side_features_that_do_not_match_the_vocabulary():
    with pytest.raises(ValueError, match=r"item feature 'genres': 1 rows for 2 vocabulary"):
        CandidateTower(vocab_of(["i1", "i2"]), single_model_config(towers={"popularity": False}),
                       item_features={"genres": [["drama"]]})


def test_side_features_off_ignores_the_catalogue():
    config = single_model_config(towers={"embedding_dim": 3, "popularity": False,
                                         "item_side_features": False})
    tower = CandidateTower(vocab_of(["i1"]), config, item_features={"genres": [["drama"]]})
    assert tower.extra_inputs == []
    np.testing.assert_allclose(tower(tf.constant(["i1"])).numpy()[0],
                               tower.item_embedding.embeddings.numpy()[1])


def test_popularity_input_projects_the_scaled_log_counts():
    # counts 9, 0, 3 (recent 1, 1, 0): log1p / max log1p per column; row 0 is OOV.
    table = popularity_features([9.0, 0.0, 3.0], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(table, [[0, 0], [1, 1], [0, 1], [np.log1p(3) / np.log1p(9), 0]],
                               rtol=1e-6)
    config = single_model_config(towers={"embedding_dim": 2, "item_side_features": False})
    tower = CandidateTower(vocab_of(["a", "b", "c"], [9.0, 0.0, 3.0], [1.0, 1.0, 0.0]), config)
    out = tower(tf.constant(["c"])).numpy()[0]
    [popularity] = tower.extra_inputs
    projection = popularity.projection
    expected = (tower.item_embedding.embeddings.numpy()[3]
                + table[3] @ projection.kernel.numpy() + projection.bias.numpy())
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_dssm_sends_the_catalogue_s_text_features_through_the_text_tower():
    config = single_model_config(towers={"embedding_dim": 3, "popularity": False,
                                         "item_feature_buckets": 97, "text_tower": "dssm",
                                         "text_trigram_buckets": 101, "text_layers": [8, 4]})
    # VocabStats stats.json records each catalogue feature's type.
    vocab = dataclasses.replace(vocab_of(["i1", "i2", "i3"]), stats={
        "item_features": {"genres": "string_list", "title": "text"}})
    features = {"genres": [["drama"], [], ["comedy"]], "title": [["good", "will"], [], ["x"]]}
    tower = CandidateTower(vocab, config, item_features=features)
    [catalogue] = tower.extra_inputs
    # genres stay a hashed bag; title goes through the DSSM tower.
    assert catalogue.feature_names == ["genres"]
    assert [name for name, _, _ in catalogue.text_towers] == ["title"]
    genres, title = catalogue(tf.constant([1, 2, 3, 0]))  # i1, i2, i3, OOV
    np.testing.assert_array_equal(title.numpy()[[1, 3]], np.zeros((2, 3)))  # no title
    assert np.all(np.abs(title.numpy()[[0, 2]]).sum(axis=1) > 0)
    out = tower(tf.constant(["i1", "i2"])).numpy()
    ids = tower.item_embedding.embeddings.numpy()
    np.testing.assert_allclose(out[1], ids[2], rtol=1e-5)  # no genres, no title: the id alone
    np.testing.assert_allclose(out[0], ids[1] + genres.numpy()[0] + title.numpy()[0], rtol=1e-5)
    # text_tower: bag (the default) keeps every feature a bag.
    bag = CandidateTower(vocab, config.with_changes(towers={"text_tower": "bag"}),
                         item_features=features)
    assert bag.extra_inputs[0].feature_names == ["genres", "title"]
    assert bag.extra_inputs[0].text_towers == []
