"""Impressed negatives in the softmax: each query's own extra logits.

Queries q0 = (1, 0), q1 = (0, 1); in-batch candidates c0 = (2, 0), c1 = (0, 1)
(their positives). q0 was also shown i0 = (1, 0) (score 1) and i1 (padding).
"""

from __future__ import annotations

import math

import pytest
import tensorflow as tf

from clicklog.config import ConfigError
from models.losses import softmax
from models.losses.common import LossInputs, impressed_logits
from models.losses.softmax import softmax_loss
from tests.conftest import single_model_config

QUERY = tf.constant([[1.0, 0.0], [0.0, 1.0]])
CANDIDATES = tf.constant([[2.0, 0.0], [0.0, 1.0]])
IMPRESSED = tf.constant([[[1.0, 0.0], [5.0, 5.0]], [[0.0, 0.0], [0.0, 0.0]]])
IDS = tf.constant([["i0", ""], ["", ""]])


def _loss(weight=1.0, ids=IDS, impressed=IMPRESSED, positive_ids=None):
    extra = impressed_logits(QUERY, impressed, ids, temperature=1.0, weight=weight,
                             positive_ids=positive_ids)
    return float(softmax_loss(QUERY, CANDIDATES, extra_logits=extra))


def _row0(extra: float = 0.0) -> float:
    """-log p(positive) of q0: logits 2 (positive), 0 (c1) and `extra` terms."""
    return -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + extra))


ROW1 = -math.log(math.exp(1) / (math.exp(1) + math.exp(0)))


def test_an_impressed_negative_lowers_the_positive_s_probability():
    plain = float(softmax_loss(QUERY, CANDIDATES))
    assert plain == pytest.approx(_row0() + ROW1, rel=1e-5)
    # i0 scores 1 against q0: one more term e^1 in q0's denominator; q1 has none.
    assert _loss() == pytest.approx(_row0(math.exp(1)) + ROW1, rel=1e-5)
    assert _loss() > plain


def test_padding_and_weight_zero_change_nothing_and_the_weight_scales_the_term():
    plain = float(softmax_loss(QUERY, CANDIDATES))
    # The padding entry's huge embedding (5, 5) never counts.
    assert _loss(ids=tf.constant([["", ""], ["", ""]])) == pytest.approx(plain, rel=1e-6)
    assert _loss(weight=0.0) == pytest.approx(plain, rel=1e-6)
    assert _loss(weight=3.0) == pytest.approx(_row0(3 * math.exp(1)) + ROW1, rel=1e-5)


def test_the_query_s_own_clicked_item_is_no_impressed_negative():
    positive_ids = tf.constant(["i0", "c1"])
    assert _loss(positive_ids=positive_ids) == pytest.approx(
        float(softmax_loss(QUERY, CANDIDATES)), rel=1e-6)


def test_hard_negatives_choose_among_impressed_ones_too():
    # Hard 1: q0 keeps its highest negative, i0 (1) over c1 (0).
    extra = impressed_logits(QUERY, IMPRESSED, IDS, temperature=1.0)
    loss = float(softmax_loss(QUERY, CANDIDATES, extra_logits=extra, num_hard_negatives=1))
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(1))) + ROW1
    assert loss == pytest.approx(expected, rel=1e-5)


def test_the_model_s_settings_reach_the_loss_and_other_losses_refuse_the_option():
    config = single_model_config(negatives={"impressions": 2, "impression_weight": 3.0},
                                 loss={"temperature": 1.0, "logq_correction": False})
    inputs = LossInputs(query=QUERY, candidates=CANDIDATES, positive_ids=tf.constant(["a", "b"]),
                        candidate_ids=tf.constant(["a", "b"]), impressed=IMPRESSED,
                        impressed_ids=IDS)
    assert float(softmax.compute(inputs, config)) == pytest.approx(
        _row0(3 * math.exp(1)) + ROW1, rel=1e-5)
    with pytest.raises(ConfigError, match="model.negatives.impressions=2: .*softmax"):
        single_model_config(negatives={"impressions": 2}, loss={"kind": "bce"})
