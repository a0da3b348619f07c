"""What every retrieval loss sees, and the pieces they share.

Shapes, for B clicks in a batch:

  * `query` `[B, D]`: the query tower's output;
  * `candidates` `[N, D]`, N >= B: rows `0..B-1` are the clicked items of the
    B queries (row i is query i's positive), rows `B..N-1` extra sampled
    negatives (mixed negative sampling, models/negatives.py), if any;
  * `candidate_ids` `[N]`: item ids of the candidate rows, used to mask
    accidental hits (a negative that is in fact the query's clicked item);
  * `sample_weight` `[B]` or None;
  * `impressed` `[B, K, D]` and `impressed_ids` `[B, K]` (`""` = padding):
    each query's own extra negatives, the items shown to its user and not
    clicked (`model.negatives.impressions`), or None; softmax only.

Losses are summed over the batch (not averaged), as `tfrs.tasks.Retrieval`
does; under a `tf.distribute` strategy each replica sums its own queries and
the optimizer step is taken on the sum, so divide the learning rate by the
number of replicas, or scale the loss, when moving from one replica to many
(docs/model.md).
"""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Added to a logit to remove a candidate from the softmax; finite so that a
# row with every negative masked still has a well defined (zero) gradient.
MASK = float(np.finfo(np.float32).min) / 100.0


@dataclasses.dataclass(frozen=True)
class LossInputs:
    """One batch as the loss sees it (shapes in the module docstring).

    `log_q` `[N]`: the logQ correction of each candidate, or None.
    `logit_offset` `[B, N]`: a term added to the softmax logits (the trending
    prior in training), or None; the pointwise and pairwise losses get it in
    score units (`temperature * logit_offset`) so it stands for the same
    served term in every loss. `impressed_offset` `[B, K]`: the same term for
    the impressed negatives, or None.
    """

    query: tf.Tensor
    candidates: tf.Tensor
    positive_ids: tf.Tensor
    candidate_ids: tf.Tensor
    sample_weight: tf.Tensor | None = None
    log_q: tf.Tensor | None = None
    logit_offset: tf.Tensor | None = None
    impressed: tf.Tensor | None = None
    impressed_ids: tf.Tensor | None = None
    impressed_offset: tf.Tensor | None = None


def scores(query: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """Dot products `[B, N]` of every query with every candidate."""
    return tf.matmul(query, candidates, transpose_b=True)


def corrected_logits(query: tf.Tensor, candidates: tf.Tensor, temperature: float,
                     log_q: tf.Tensor | None = None,
                     logit_offset: tf.Tensor | None = None) -> tf.Tensor:
    """`[B, N]` `score / temperature - log_q + logit_offset`: the logits of the
    softmax and NCE losses (a missing term is 0)."""
    logits = scores(query, candidates) / temperature
    if log_q is not None:
        logits -= log_q[None, :]
    if logit_offset is not None:
        logits += logit_offset
    return logits


def accidental_hits(positive_ids: tf.Tensor, candidate_ids: tf.Tensor) -> tf.Tensor:
    """`[B, N]` bool: candidate j has query i's clicked id but is not its positive."""
    same = tf.equal(positive_ids[:, None], candidate_ids[None, :])
    batch = tf.shape(positive_ids)[0]
    is_positive = tf.cast(tf.one_hot(tf.range(batch), tf.shape(candidate_ids)[0]), tf.bool)
    return tf.logical_and(same, tf.logical_not(is_positive))


def weighted_sum(per_query: tf.Tensor, sample_weight: tf.Tensor | None) -> tf.Tensor:
    """`sum_i w_i * per_query_i` (w = 1 without weights)."""
    if sample_weight is not None:
        per_query *= tf.cast(sample_weight, per_query.dtype)
    return tf.reduce_sum(per_query)


def pair_negatives(num_queries: tf.Tensor, num_candidates: tf.Tensor, k: int) -> tf.Tensor:
    """`[B, k]` candidate columns used as negatives of each query.

    Query i takes columns `i+1, ..., i+k` (mod N): the candidates after its own
    positive. Batches are shuffled, so these are random clicked items; any
    extra sampled negatives (columns >= B) are reached the same way.
    """
    k = tf.minimum(k, num_candidates - 1)
    offsets = tf.range(1, k + 1)
    return (tf.range(num_queries)[:, None] + offsets[None, :]) % num_candidates


def positive_and_negative_scores(query, candidates, k, positive_ids=None, candidate_ids=None,
                                 score_offset=None):
    """(positive `[B]`, negatives `[B, k]`, valid `[B, k]`) scores of the
    pointwise and pairwise losses; `valid` is 0 for an accidental hit when
    the ids are given."""
    all_scores = scores(query, candidates)
    if score_offset is not None:
        all_scores += score_offset
    batch = tf.shape(query)[0]
    columns = pair_negatives(batch, tf.shape(candidates)[0], k)
    positive = tf.linalg.diag_part(all_scores[:, :batch])  # [B]
    negative = tf.gather(all_scores, columns, batch_dims=1)  # [B, k]
    valid = tf.ones_like(negative)
    if positive_ids is not None and candidate_ids is not None:
        hits = tf.gather(tf.cast(accidental_hits(positive_ids, candidate_ids), tf.float32),
                         columns, batch_dims=1)
        valid -= hits
    return positive, negative, valid


def mean_over_valid(values: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Row means of `values` `[B, k]` over the entries where `valid` is 1."""
    return tf.reduce_sum(values * valid, axis=1) / tf.maximum(tf.reduce_sum(valid, axis=1), 1.0)


def hit_ids(inputs: LossInputs, config) -> dict:
    """`positive_ids` and `candidate_ids` when accidental hits are removed
    (`model.negatives.remove_accidental_hits`), else nothing."""
    if not config.negatives.remove_accidental_hits:
        return {}
    return {"positive_ids": inputs.positive_ids, "candidate_ids": inputs.candidate_ids}


def score_offset(inputs: LossInputs, config) -> tf.Tensor | None:
    """The logit offset in score units, for the losses that work on raw scores."""
    if inputs.logit_offset is None:
        return None
    return config.loss.temperature * inputs.logit_offset


def impressed_logits(query: tf.Tensor, impressed: tf.Tensor, impressed_ids: tf.Tensor, *,
                     temperature: float, weight: float = 1.0,
                     positive_ids: tf.Tensor | None = None,
                     offset: tf.Tensor | None = None) -> tf.Tensor:
    """`[B, K]` softmax logits of each query's impressed negatives.

    `score / temperature + log(weight)` (+ `offset`): an impressed negative
    counts `weight` times in the softmax's denominator. No logQ correction:
    they are not drawn from the batch's sampling distribution. Padding
    (`""`), every entry when `weight` is 0, and, with `positive_ids`, the
    query's own clicked item get `MASK`.
    """
    if weight <= 0.0:
        return tf.fill(tf.shape(impressed_ids), MASK)
    logits = tf.einsum("bd,bkd->bk", query, impressed) / temperature + float(np.log(weight))
    if offset is not None:
        logits += offset
    masked = tf.equal(impressed_ids, "")
    if positive_ids is not None:
        masked = tf.logical_or(masked, tf.equal(impressed_ids, positive_ids[:, None]))
    return tf.where(masked, tf.fill(tf.shape(logits), MASK), logits)
