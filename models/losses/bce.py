"""Pointwise sigmoid cross-entropy: one positive and `pair_negatives` negatives per query."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models.losses import common  # noqa: E402


def bce_loss(query: tf.Tensor, candidates: tf.Tensor, *, num_negatives: int,
             temperature: float = 1.0, positive_ids: tf.Tensor | None = None,
             candidate_ids: tf.Tensor | None = None,
             sample_weight: tf.Tensor | None = None,
             score_offset: tf.Tensor | None = None) -> tf.Tensor:
    """Per query: `-log s(x+) - sum_j log(1 - s(x-_j))`, x = score / temperature,
    summed over queries.

    The negatives are `common.pair_negatives`; accidental hits among them are
    left out. `score_offset` `[B, N]` (e.g. the trending prior, in score
    units) is added to the scores first.
    """
    positive, negative, valid = common.positive_and_negative_scores(
        query, candidates, num_negatives, positive_ids, candidate_ids, score_offset)
    positive_term = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.ones_like(positive), logits=positive / temperature)
    negative_terms = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.zeros_like(negative), logits=negative / temperature)
    return common.weighted_sum(positive_term + tf.reduce_sum(negative_terms * valid, axis=1),
                               sample_weight)


def compute(inputs: common.LossInputs, config) -> tf.Tensor:
    """`bce_loss` with the model's settings."""
    return bce_loss(inputs.query, inputs.candidates, num_negatives=config.loss.pair_negatives,
                    temperature=config.loss.temperature, sample_weight=inputs.sample_weight,
                    score_offset=common.score_offset(inputs, config),
                    **common.hit_ids(inputs, config))
