"""A `text` query feature: a string read as words, embedded by the text tower
`model.towers.text_tower` picks (a hashed word bag, or DSSM letter trigrams)."""

import numpy as np
import tensorflow as tf

from models.towers.inputs import query_input_specs
from models.towers.inputs.context import ContextFeaturesInput
from models.towers.text import trigram_ids, words
from models.towers.text_tower import TextTower
from tests.conftest import single_model_config

TEXT = tf.constant(["Good Will Hunting", "", "good, will; HUNTING"])


def _layer(text_tower: str) -> ContextFeaturesInput:
    config = single_model_config(towers={
        "embedding_dim": 4, "query_features": {"search": "text"}, "text_tower": text_tower,
        "query_feature_buckets": 101, "text_trigram_buckets": 211, "text_layers": [8]})
    assert [(s.name, s.dtype, s.shape.as_list()) for s in query_input_specs(config)[2:]] == [
        ("search", tf.string, [None])]
    return ContextFeaturesInput(config)


def test_bag_embeds_text_as_the_mean_of_its_hashed_words():
    layer = _layer("bag")
    out = layer({"search": TEXT}).numpy()
    [(_, _, embedding)] = layer.features
    table = embedding.table.embeddings.numpy()
    rows = tf.strings.to_hash_bucket_fast(["good", "will", "hunting"], 101).numpy()
    np.testing.assert_allclose(out[0], table[rows].mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(out[1], np.zeros(4))  # no words
    np.testing.assert_allclose(out[2], out[0], rtol=1e-6)  # case and punctuation aside


def test_dssm_embeds_text_through_the_text_tower_over_its_trigrams():
    layer = _layer("dssm")
    out = layer({"search": TEXT}).numpy()
    [(_, _, tower)] = layer.features
    assert isinstance(tower, TextTower)
    np.testing.assert_allclose(out, tower(trigram_ids(words(TEXT), 211)).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(out[1], np.zeros(4))
    np.testing.assert_allclose(out[2], out[0], rtol=1e-6)
