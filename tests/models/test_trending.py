"""The trending prior inside training (hparams.trending_prior_training)."""

import numpy as np
import pytest
import tensorflow as tf

from models import losses, trending
from models.hparams import HParams
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import write_tiny_data


def test_counts_before_each_bucket_per_item():
    # Buckets of 10 s from t=100: a at 100 (b0), 105 (b0), 121 (b2); b at 115 (b1);
    # "x" is not a candidate and is not counted.
    table = trending.counts_before(["a", "b"], ["a", "a", "b", "a", "x"],
                                   np.array([100, 105, 115, 121, 101]), 100.0, 10.0)
    np.testing.assert_array_equal(table, [[0, 0, 0, 0],    # OOV row
                                          [0, 2, 2, 3],    # a: clicks in buckets < b
                                          [0, 0, 1, 1]])   # b


def test_window_counts_are_the_clicks_in_the_buckets_before_the_query():
    # 25 buckets of 1 s; item a clicked once in every bucket, b only in bucket 3.
    items = ["a"] * 25 + ["b"]
    times = np.array(list(range(25)) + [3])
    table = trending.counts_before(["a", "b"], items, times, 0.0, 1.0)
    prior = trending.TrendingPrior(["a", "b"], table, 0.0, 1.0, initial_beta=2.0)
    counts = prior.window_counts(tf.constant([0, 5, 20], tf.int64),
                                 tf.constant(["a", "b", "zzz"])).numpy()
    # Window = the 10 buckets before the query's bucket (its own excluded).
    np.testing.assert_array_equal(counts, [[0, 0, 0], [5, 1, 0], [10, 0, 0]])
    offset = prior(tf.constant([5], tf.int64), tf.constant(["a", "b"])).numpy()
    np.testing.assert_allclose(offset, [[2.0 * np.log(6.0), 2.0 * np.log(2.0)]], rtol=1e-6)


def test_window_is_vocab_stats_recent_window():
    assert trending.window_seconds({"max_timestamp": 1000, "recent_start_timestamp": 900}) == 100
    assert trending.window_seconds({"max_timestamp": 1000, "min_timestamp": 0}) == 100


def test_softmax_logit_offset_is_added_to_the_logits():
    query = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    candidates = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    offset = tf.constant([[0.0, 1.5], [0.5, 0.0]])
    got = float(losses.softmax_loss(query, candidates, temperature=0.5, logit_offset=offset))
    # Logits: row 0 [2, 0] + [0, 1.5] = [2, 1.5]; row 1 [0, 4] + [0.5, 0] = [0.5, 4].
    expected = -np.log(np.exp(2) / (np.exp(2) + np.exp(1.5))) - np.log(
        np.exp(4) / (np.exp(0.5) + np.exp(4)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_trending_prior_training_learns_and_exports_its_weight(tmp_path):
    data = write_tiny_data(tmp_path)
    hparams = HParams(embedding_dim=8, batch_size=16, epochs=2, trending_prior_training=True,
                      trending_prior_grid=())
    logs = train(data["train"], data["vocab"], hparams, str(tmp_path / "towers"))
    learned = logs["trending_prior_learned_weight"]
    towers = Towers(str(tmp_path / "towers"))
    assert towers.hparams.trending_prior_weight == learned
    width = 9 if learned else 8
    assert towers.candidate_embeddings().shape == (towers.vocab.num_items, width)
    assert towers.query_embeddings(["u1"], [["i1", "i2"]]).shape == (1, width)


def test_trending_prior_training_needs_the_softmax_loss():
    with pytest.raises(ValueError, match=r"trending_prior_training=True with loss='bce': "
                                         r"expected loss='softmax'"):
        HParams(trending_prior_training=True, loss="bce")
