"""Choosing the trending prior's weight on eval clicks."""

import pytest
import tensorflow as tf

from clicklog.formats import Click
from components.click_example_gen.examples import to_example
from models import prior_calibration
from models.data import make_dataset
from models.vocab import Vocab
from tests.conftest import single_model_config


class _Towers:
    """Fixed towers: every query is (1, 0); item a scores 1, b 0.5, c 0."""

    def query_tower(self, batch, training=False):
        return tf.tile(tf.constant([[1.0, 0.0]]), [tf.shape(batch["item_id"])[0], 1])

    def candidate_tower(self, item_ids, training=False):
        table = {b"a": 1.0, b"b": 0.5, b"c": 0.0}
        return tf.constant([[table[i], 0.0] for i in item_ids.numpy()])


def _eval_dataset(tmp_path, clicks, batch_size=2, histories=None):
    path = str(tmp_path / "eval.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for n, (user, item) in enumerate(clicks):
            writer.write(to_example(Click(user, item, 0), (histories or {}).get(n, ())))
    return make_dataset(path, batch_size, max_history=3, shuffle=False)


# Recent counts: c trends (log1p(4) = 1.61 > a's score 1 only for w >= 0.63).
VOCAB = Vocab(["a", "b", "c"], [2, 0, 9], [0.2, 0.0, 0.8], [0, 0, 4], [], [], {})


def test_choose_weight_picks_the_prior_that_predicts_the_eval_clicks(tmp_path):
    dataset = _eval_dataset(tmp_path, [("q1", "c"), ("q2", "c"), ("q3", "c"), ("q4", "a"),
                                       ("q5", "c")])
    config = single_model_config(prior={"grid": (0.0, 0.3, 1.0, 5.0)},
                                 training={"early_stopping_k": 1})
    weight, report = prior_calibration.choose_weight(_Towers(), dataset, VOCAB, config)
    assert report["hit_rate_by_weight"] == {"0": 0.2, "0.3": 0.2, "1": 0.8, "5": 0.8}
    assert weight == 1.0 and report["clicks"] == 5  # ties go to the smaller weight


def test_choose_weight_scores_at_most_the_configured_number_of_clicks(tmp_path):
    dataset = _eval_dataset(tmp_path, [("q1", "a"), ("q2", "a"), ("q3", "a"), ("q4", "c")])
    config = single_model_config(prior={"grid": (0.0, 1.0), "calibration_examples": 3},
                                 training={"early_stopping_k": 1})
    weight, report = prior_calibration.choose_weight(_Towers(), dataset, VOCAB, config)
    # The fourth click (on c, which would favour w = 1) is beyond the limit.
    assert report == {"clicks": 3, "weight": 0.0,
                      "hit_rate_by_weight": {"0": 1.0, "1": 0.0}}


def test_choose_weight_without_eval_clicks_is_an_error(tmp_path):
    dataset = _eval_dataset(tmp_path, [("q1", "a")]).take(0)
    with pytest.raises(ValueError, match="eval split has no clicks"):
        prior_calibration.choose_weight(_Towers(), dataset, VOCAB,
                                        single_model_config(prior={"grid": (0.0,)}))


def test_seen_items_leave_the_ranking_as_the_evaluator_excludes_them(tmp_path):
    # Click on b with a in its history: a is excluded, so b ranks first at
    # w = 0 and the prior (c trends) pushes it down to second at w = 5.
    dataset = _eval_dataset(tmp_path, [("q1", "b")], histories={0: ("a",)})
    config = single_model_config(prior={"grid": (0.0, 5.0)}, training={"early_stopping_k": 1})
    weight, report = prior_calibration.choose_weight(_Towers(), dataset, VOCAB, config)
    assert report["hit_rate_by_weight"] == {"0": 1.0, "5": 0.0} and weight == 0.0
    # With no history excluded, a ranks first at w = 0 and nothing hits at k = 1.
    no_exclusion = config.with_changes(export={"exclude_history": 0})
    _, report = prior_calibration.choose_weight(_Towers(), dataset, VOCAB, no_exclusion)
    assert report["hit_rate_by_weight"] == {"0": 0.0, "5": 0.0}


def test_trending_prior_grid_is_validated():
    with pytest.raises(ValueError, match=r"model.prior.grid=\(0.1, -1\): expected a list of "
                                         "numbers >= 0"):
        single_model_config(prior={"grid": (0.1, -1)})
