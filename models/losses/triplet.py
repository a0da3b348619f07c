"""Pairwise losses: the positive against each of `pair_negatives` negatives.

Hinge (`max(0, margin - (s+ - s-))`, raw scores) and logistic
(`log(1 + exp((s- - s+) / temperature))`), each averaged over the query's
valid negatives (accidental hits left out) and summed over queries.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models.losses import common  # noqa: E402


def triplet_hinge_loss(query: tf.Tensor, candidates: tf.Tensor, *, num_negatives: int,
                       margin: float, positive_ids: tf.Tensor | None = None,
                       candidate_ids: tf.Tensor | None = None,
                       sample_weight: tf.Tensor | None = None,
                       score_offset: tf.Tensor | None = None) -> tf.Tensor:
    """Per query: mean over its negatives of `max(0, margin - (s+ - s-))` (raw scores)."""
    positive, negative, valid = common.positive_and_negative_scores(
        query, candidates, num_negatives, positive_ids, candidate_ids, score_offset)
    hinge = tf.nn.relu(margin - (positive[:, None] - negative))
    return common.weighted_sum(common.mean_over_valid(hinge, valid), sample_weight)


def triplet_logistic_loss(query: tf.Tensor, candidates: tf.Tensor, *, num_negatives: int,
                          temperature: float = 1.0, positive_ids: tf.Tensor | None = None,
                          candidate_ids: tf.Tensor | None = None,
                          sample_weight: tf.Tensor | None = None,
                          score_offset: tf.Tensor | None = None) -> tf.Tensor:
    """Per query: mean over its negatives of `log(1 + exp((s- - s+) / temperature))`."""
    positive, negative, valid = common.positive_and_negative_scores(
        query, candidates, num_negatives, positive_ids, candidate_ids, score_offset)
    logistic = tf.math.softplus((negative - positive[:, None]) / temperature)
    return common.weighted_sum(common.mean_over_valid(logistic, valid), sample_weight)


def compute_hinge(inputs: common.LossInputs, config) -> tf.Tensor:
    """`triplet_hinge_loss` with the model's settings."""
    return triplet_hinge_loss(inputs.query, inputs.candidates,
                              num_negatives=config.loss.pair_negatives,
                              margin=config.loss.triplet_margin,
                              sample_weight=inputs.sample_weight,
                              score_offset=common.score_offset(inputs, config),
                              **common.hit_ids(inputs, config))


def compute_logistic(inputs: common.LossInputs, config) -> tf.Tensor:
    """`triplet_logistic_loss` with the model's settings."""
    return triplet_logistic_loss(inputs.query, inputs.candidates,
                                 num_negatives=config.loss.pair_negatives,
                                 temperature=config.loss.temperature,
                                 sample_weight=inputs.sample_weight,
                                 score_offset=common.score_offset(inputs, config),
                                 **common.hit_ids(inputs, config))
