"""Each retrieval loss on tiny tensors, against values worked out by hand.

Shared case: queries q0 = (1, 0), q1 = (0, 1); candidates c0 = (2, 0)
(q0's positive), c1 = (0, 1) (q1's positive), c2 = (1, 1) (an extra sampled
negative). Scores: row 0 = [2, 0, 1], row 1 = [0, 1, 1].
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from models.losses import LOSSES
from models.losses.bce import bce_loss
from models.losses.common import LossInputs, pair_negatives
from models.losses.nce import nce_loss
from models.losses.softmax import softmax_loss
from models.losses.triplet import triplet_hinge_loss, triplet_logistic_loss
from models.negatives import mixed_log_q
from tests.conftest import single_model_config

QUERY = tf.constant([[1.0, 0.0], [0.0, 1.0]])
CANDIDATES = tf.constant([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_softmax_in_batch_with_logq():
    # Two in-batch candidates with click shares 0.5 and 0.25: logits are the
    # scores minus log(0.5) and log(0.25).
    log_q = tf.math.log(tf.constant([0.5, 0.25]))
    loss = softmax_loss(QUERY, CANDIDATES[:2], log_q=log_q)
    row0 = [2 - math.log(0.5), 0 - math.log(0.25)]
    row1 = [0 - math.log(0.5), 1 - math.log(0.25)]
    expected = softplus(row0[1] - row0[0]) + softplus(row1[0] - row1[1])
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_softmax_temperature_and_sample_weight():
    loss = softmax_loss(QUERY, CANDIDATES, temperature=0.5,
                               sample_weight=tf.constant([1.0, 3.0]))
    # Row 0 logits [4, 0, 2], positive 4; row 1 logits [0, 2, 2], positive 2.
    row0 = math.log(1 + math.exp(-4) + math.exp(-2))
    row1 = math.log(1 + math.exp(-2) + 1)
    assert float(loss) == pytest.approx(row0 + 3 * row1, rel=1e-5)


def test_mixed_negatives_correction_counts_both_routes():
    click = tf.constant([0.5, 0.25, 0.0])
    negative = tf.constant([0.2, 0.2, 0.6])
    log_q = mixed_log_q(click, batch_size=2, negative_probability=negative,
                               num_negatives=1)
    # Expected occurrences: 2 * 0.5 + 0.2, 2 * 0.25 + 0.2, 0 + 0.6.
    np.testing.assert_allclose(np.exp(log_q.numpy()), [1.2, 0.7, 0.6], rtol=1e-6)
    loss = softmax_loss(QUERY, CANDIDATES, log_q=log_q)
    row0 = np.array([2, 0, 1]) - np.log([1.2, 0.7, 0.6])
    row1 = np.array([0, 1, 1]) - np.log([1.2, 0.7, 0.6])
    expected = (math.log(np.exp(row0).sum()) - row0[0]) + (math.log(np.exp(row1).sum()) - row1[1])
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_accidental_hits_leave_the_softmax():
    # c2 is the same item as q0's click: for q0 it is not a negative.
    ids = tf.constant(["a", "b", "a"])
    loss = softmax_loss(QUERY, CANDIDATES, positive_ids=ids[:2], candidate_ids=ids)
    row0 = math.log(1 + math.exp(0 - 2))  # only c1 competes
    row1 = math.log(math.exp(0) + math.exp(1) + math.exp(1)) - 1
    assert float(loss) == pytest.approx(row0 + row1, rel=1e-5)


def test_hard_negatives_keep_only_the_highest_negatives():
    query = tf.constant([[1.0, 0.0]])
    candidates = tf.constant([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0], [0.0, 0.0]])  # scores 1, 3, 2, 0
    one = softmax_loss(query, candidates, num_hard_negatives=1)
    assert float(one) == pytest.approx(math.log(1 + math.exp(2)), rel=1e-5)
    two = softmax_loss(query, candidates, num_hard_negatives=2)
    assert float(two) == pytest.approx(math.log(1 + math.exp(2) + math.exp(1)), rel=1e-5)
    # More hard negatives than there are: every negative is kept.
    many = softmax_loss(query, candidates, num_hard_negatives=10)
    full = softmax_loss(query, candidates)
    assert float(many) == pytest.approx(float(full), rel=1e-6)


def test_bce_one_to_k():
    # k = 1: q0's negative is c1 (score 0), q1's is c2 (score 1).
    loss = bce_loss(QUERY, CANDIDATES, num_negatives=1)
    expected = softplus(-2) + softplus(0) + softplus(-1) + softplus(1)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_bce_skips_accidental_hit_negatives():
    ids = tf.constant(["a", "b", "b"])  # c2 is q1's item again
    loss = bce_loss(QUERY, CANDIDATES, num_negatives=1, positive_ids=ids[:2],
                           candidate_ids=ids)
    expected = softplus(-2) + softplus(0) + softplus(-1)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_nce_classifies_each_candidate_against_the_noise_rate():
    # Expected counts in the candidate set (log(k q)) as in the mixed case:
    # 1.2, 0.7, 0.6. Query i's positive is column i; the other two are noise.
    log_q = tf.math.log(tf.constant([1.2, 0.7, 0.6]))
    loss = nce_loss(QUERY, CANDIDATES, log_q=log_q, sample_weight=tf.constant([1.0, 2.0]))
    row0 = np.array([2, 0, 1]) - np.log([1.2, 0.7, 0.6])
    row1 = np.array([0, 1, 1]) - np.log([1.2, 0.7, 0.6])
    expected0 = softplus(-row0[0]) + softplus(row0[1]) + softplus(row0[2])
    expected1 = softplus(row1[0]) + softplus(-row1[1]) + softplus(row1[2])
    assert float(loss) == pytest.approx(expected0 + 2 * expected1, rel=1e-5)


def test_nce_without_logq_is_negative_sampling_and_skips_accidental_hits():
    ids = tf.constant(["a", "b", "a"])  # c2 is q0's item again
    loss = nce_loss(QUERY, CANDIDATES, temperature=0.5, positive_ids=ids[:2], candidate_ids=ids)
    # Logits: row 0 [4, 0, 2] (c2 left out), row 1 [0, 2, 2].
    expected = softplus(-4) + softplus(0) + softplus(0) + softplus(-2) + softplus(2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_triplet_hinge_with_margin():
    # k = 2: q0 negatives c1, c2 (scores 0, 1) vs positive 2: both beyond the
    # margin. q1 negatives c2, c0 (scores 1, 0) vs positive 1: 0.5 and 0.
    loss = triplet_hinge_loss(QUERY, CANDIDATES, num_negatives=2, margin=0.5)
    assert float(loss) == pytest.approx(0.25, rel=1e-6)


def test_triplet_logistic():
    loss = triplet_logistic_loss(QUERY, CANDIDATES, num_negatives=2)
    expected = (softplus(-2) + softplus(-1)) / 2 + (softplus(0) + softplus(-1)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_pair_negatives_wrap_and_cap():
    columns = pair_negatives(tf.constant(2), tf.constant(3), 5).numpy()
    np.testing.assert_array_equal(columns, [[1, 2], [2, 0]])


def test_softmax_matches_tfrs_retrieval_task():
    import tensorflow_recommenders as tfrs

    rng = np.random.default_rng(0)
    query = tf.constant(rng.normal(size=(6, 4)), tf.float32)
    candidates = tf.constant(rng.normal(size=(6, 4)), tf.float32)
    probability = tf.constant(rng.uniform(0.01, 0.2, size=6), tf.float32)
    ids = tf.constant(["a", "b", "a", "c", "d", "b"])
    task = tfrs.tasks.Retrieval(temperature=0.3, remove_accidental_hits=True)
    theirs = task(query, candidates, candidate_sampling_probability=probability,
                  candidate_ids=ids, compute_metrics=False, compute_batch_metrics=False)
    ours = softmax_loss(query, candidates, temperature=0.3,
                               log_q=tf.math.log(probability), positive_ids=ids,
                               candidate_ids=ids)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)


@pytest.mark.parametrize("kind", list(LOSSES))
def test_every_registered_loss_takes_the_model_s_settings(kind):
    # The registry entry is the loss function with the config's settings:
    # same value as calling it by hand.
    config = single_model_config(loss={"kind": kind, "temperature": 0.5, "pair_negatives": 2})
    ids = tf.constant(["a", "b", "c"])
    batch = LossInputs(query=QUERY, candidates=CANDIDATES, positive_ids=ids[:2],
                       candidate_ids=ids, sample_weight=tf.constant([1.0, 2.0]))
    by_hand = {
        "softmax": lambda: softmax_loss(QUERY, CANDIDATES, temperature=0.5, positive_ids=ids[:2],
                                        candidate_ids=ids, sample_weight=batch.sample_weight),
        "nce": lambda: nce_loss(QUERY, CANDIDATES, temperature=0.5, positive_ids=ids[:2],
                                candidate_ids=ids, sample_weight=batch.sample_weight),
        "bce": lambda: bce_loss(QUERY, CANDIDATES, num_negatives=2, temperature=0.5,
                                positive_ids=ids[:2], candidate_ids=ids,
                                sample_weight=batch.sample_weight),
        "triplet_hinge": lambda: triplet_hinge_loss(
            QUERY, CANDIDATES, num_negatives=2, margin=0.5, positive_ids=ids[:2],
            candidate_ids=ids, sample_weight=batch.sample_weight),
        "triplet_logistic": lambda: triplet_logistic_loss(
            QUERY, CANDIDATES, num_negatives=2, temperature=0.5, positive_ids=ids[:2],
            candidate_ids=ids, sample_weight=batch.sample_weight),
    }[kind]
    assert float(LOSSES[kind](batch, config)) == pytest.approx(float(by_hand()), rel=1e-6)
