"""Choosing the trending prior's weight on eval clicks."""

import numpy as np
import pytest
import tensorflow as tf

from clicklog.formats import Click
from components.ingestion import to_example
from models import prior_calibration
from models.data import make_dataset
from models.vocab import Vocab
from tests.conftest import single_model_hparams


def test_hit_rates_by_weight_adds_the_prior_before_ranking():
    # One query, three items: the towers prefer item 0, the prior item 2.
    query = tf.constant([[1.0, 0.0]])
    candidates = tf.constant([[1.0, 0.0], [0.5, 0.0], [0.0, 0.0]])
    prior = np.array([0.0, 0.0, 1.0])
    target, nothing_seen = tf.constant([2], tf.int64), tf.constant([[-1]], tf.int64)
    rates = prior_calibration.hit_rates_by_weight(query, candidates, prior, target,
                                                  nothing_seen, [0.0, 0.6, 2.0], k=1)
    assert rates == {0.0: 0.0, 0.6: 0.0, 2.0: 1.0}  # 2.0 * 1 beats 1.0; 0.6 does not
    # A seen item is out of the ranking whatever its score.
    rates = prior_calibration.hit_rates_by_weight(query, candidates, prior, tf.constant([1]),
                                                  tf.constant([[0]]), [0.0], k=1)
    assert rates == {0.0: 1.0}


class _Towers:
    """Fixed towers: every query is (1, 0); item a scores 1, b 0.5, c 0."""

    def query_tower(self, batch, training=False):
        return tf.tile(tf.constant([[1.0, 0.0]]), [tf.shape(batch["item_id"])[0], 1])

    def candidate_tower(self, item_ids, training=False):
        table = {b"a": 1.0, b"b": 0.5, b"c": 0.0}
        return tf.constant([[table[i], 0.0] for i in item_ids.numpy()])


def _eval_dataset(tmp_path, clicks, batch_size=2):
    path = str(tmp_path / "eval.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for user, item in clicks:
            writer.write(to_example(Click(user, item, 0), ()))
    return make_dataset(path, batch_size, max_history=3, shuffle=False)


# Recent counts: c trends (log1p(4) = 1.61 > a's score 1 only for w >= 0.63).
VOCAB = Vocab(["a", "b", "c"], [2, 0, 9], [0.2, 0.0, 0.8], [0, 0, 4], [], [], {})


def test_choose_weight_picks_the_prior_that_predicts_the_eval_clicks(tmp_path):
    dataset = _eval_dataset(tmp_path, [("q1", "c"), ("q2", "c"), ("q3", "c"), ("q4", "a"),
                                       ("q5", "c")])
    hparams = single_model_hparams(trending_prior_grid=(0.0, 0.3, 1.0, 5.0), early_stopping_k=1)
    weight, report = prior_calibration.choose_weight(_Towers(), dataset, VOCAB, hparams)
    assert report["hit_rate_by_weight"] == {"0": 0.2, "0.3": 0.2, "1": 0.8, "5": 0.8}
    assert weight == 1.0 and report["clicks"] == 5  # ties go to the smaller weight


def test_choose_weight_scores_at_most_the_configured_number_of_clicks(tmp_path):
    dataset = _eval_dataset(tmp_path, [("q1", "a"), ("q2", "a"), ("q3", "a"), ("q4", "c")])
    hparams = single_model_hparams(trending_prior_grid=(0.0, 1.0), early_stopping_k=1,
                                   prior_calibration_examples=3)
    weight, report = prior_calibration.choose_weight(_Towers(), dataset, VOCAB, hparams)
    # The fourth click (on c, which would favour w = 1) is beyond the limit.
    assert report == {"clicks": 3, "weight": 0.0,
                      "hit_rate_by_weight": {"0": 1.0, "1": 0.0}}


def test_choose_weight_without_eval_clicks_is_an_error(tmp_path):
    dataset = _eval_dataset(tmp_path, [("q1", "a")]).take(0)
    with pytest.raises(ValueError, match="eval split has no clicks"):
        prior_calibration.choose_weight(_Towers(), dataset, VOCAB,
                                        single_model_hparams(
                                            trending_prior_grid=(0.0,)))


def test_trending_prior_grid_is_validated():
    with pytest.raises(ValueError, match=r"trending_prior_grid=\(0.1, -1\)"):
        single_model_hparams(trending_prior_grid=(0.1, -1))
