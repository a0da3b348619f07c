"""Retrieval losses over a batch of queries and a set of candidates.

Every loss here sees the same shapes:

  * `query` `[B, D]`: the query tower's output for B clicks;
  * `candidates` `[N, D]`, N >= B: rows `0..B-1` are the clicked items of the
    B queries (row i is query i's positive), rows `B..N-1` are extra sampled
    negatives (mixed negative sampling), if any;
  * `candidate_ids` `[N]`: item ids of the candidate rows, used to mask
    accidental hits (a negative that is in fact the query's clicked item);
  * `sample_weight` `[B]` or None.

Losses are summed over the batch (not averaged), as `tfrs.tasks.Retrieval`
does; under a `tf.distribute` strategy each replica sums its own queries and
the optimizer step is taken on the sum, so divide the learning rate by the
number of replicas, or scale the loss, when moving from one replica to many
(docs/model.md).

Softmax (`softmax_loss`): the sampled softmax of Jean et al. (2015) / Yi et
al. (2019) with the logQ correction: the logit of each candidate is reduced by
the log of its expected number of occurrences in the candidate set, so that
frequently sampled (popular) items are not pushed down just for being sampled
often. With in-batch candidates only, that is `log(B * p_click(item))`; with
M extra negatives sampled from `p_neg`, each candidate could have entered by
either route and the expected count is `B * p_click + M * p_neg`
(`mixed_log_q`).

Pairwise and pointwise losses compare each query's positive with `k`
negatives taken from the other candidate rows (`pair_negatives`).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Added to a logit to remove a candidate from the softmax; finite so that a
# row with every negative masked still has a well defined (zero) gradient.
_MASK = float(np.finfo(np.float32).min) / 100.0

LOSSES = ("softmax", "bce", "triplet_hinge", "triplet_logistic")


def scores(query: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """Dot products `[B, N]` of every query with every candidate."""
    return tf.matmul(query, candidates, transpose_b=True)


def accidental_hits(positive_ids: tf.Tensor, candidate_ids: tf.Tensor) -> tf.Tensor:
    """`[B, N]` bool: candidate j has query i's clicked id but is not its positive."""
    same = tf.equal(positive_ids[:, None], candidate_ids[None, :])
    batch = tf.shape(positive_ids)[0]
    is_positive = tf.cast(tf.one_hot(tf.range(batch), tf.shape(candidate_ids)[0]), tf.bool)
    return tf.logical_and(same, tf.logical_not(is_positive))


def mixed_log_q(click_probability: tf.Tensor, batch_size: int | tf.Tensor,
                negative_probability: tf.Tensor | None = None,
                num_negatives: int = 0) -> tf.Tensor:
    """Log expected occurrences of each candidate in a mixed candidate set.

    Args:
      click_probability: `[N]` each candidate's share of training clicks (the
        chance one in-batch positive is that item).
      batch_size: in-batch positives per step (B).
      negative_probability: `[N]` each candidate's probability under the
        extra-negative sampling distribution, or None.
      num_negatives: extra negatives sampled per step (M).

    Returns:
      `[N]` `log(B * p_click + M * p_neg)`.
    """
    expected = tf.cast(batch_size, tf.float32) * click_probability
    if negative_probability is not None and num_negatives:
        expected += float(num_negatives) * negative_probability
    return tf.math.log(expected)


def _keep_hardest(logits: tf.Tensor, num_hard_negatives: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Keeps each row's positive (column i) and its `k` highest-scoring negatives.

    Returns `(logits [B, 1 + k], labels [B, 1 + k])`, positive first.
    """
    batch = tf.shape(logits)[0]
    positive = tf.linalg.diag_part(logits[:, :batch])[:, None]
    is_positive = tf.one_hot(tf.range(batch), tf.shape(logits)[1])
    negatives = logits + is_positive * _MASK
    k = tf.minimum(num_hard_negatives, tf.shape(logits)[1] - 1)
    hardest, _ = tf.math.top_k(negatives, k=k)
    kept = tf.concat([positive, hardest], axis=1)
    labels = tf.one_hot(tf.zeros([batch], tf.int32), tf.shape(kept)[1])
    return kept, labels


def _weighted_sum(per_query: tf.Tensor, sample_weight: tf.Tensor | None) -> tf.Tensor:
    if sample_weight is not None:
        per_query *= tf.cast(sample_weight, per_query.dtype)
    return tf.reduce_sum(per_query)


def softmax_loss(query: tf.Tensor, candidates: tf.Tensor, *, temperature: float = 1.0,
                 log_q: tf.Tensor | None = None, positive_ids: tf.Tensor | None = None,
                 candidate_ids: tf.Tensor | None = None, num_hard_negatives: int = 0,
                 sample_weight: tf.Tensor | None = None,
                 logit_offset: tf.Tensor | None = None) -> tf.Tensor:
    """Sampled softmax cross-entropy, summed over queries.

    Args:
      query: `[B, D]`.
      candidates: `[N, D]`, row i the positive of query i for i < B.
      temperature: logits are scores / temperature.
      log_q: `[N]` logQ correction subtracted from each candidate's logit.
      positive_ids, candidate_ids: `[B]`, `[N]`; when both are given,
        accidental hits are removed from the softmax.
      num_hard_negatives: if > 0, only the positive and the k highest negative
        logits of each row (after correction) enter the softmax.
      sample_weight: `[B]` per-query weights.
      logit_offset: `[B, N]` added to the logits (after the temperature), e.g.
        the trending prior of `hparams.trending_prior_training`.
    """
    logits = scores(query, candidates) / temperature
    if log_q is not None:
        logits -= log_q[None, :]
    if logit_offset is not None:
        logits += logit_offset
    if positive_ids is not None and candidate_ids is not None:
        logits += tf.cast(accidental_hits(positive_ids, candidate_ids), logits.dtype) * _MASK
    if num_hard_negatives:
        logits, labels = _keep_hardest(logits, num_hard_negatives)
    else:
        labels = tf.one_hot(tf.range(tf.shape(query)[0]), tf.shape(candidates)[0])
    per_query = tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _weighted_sum(per_query, sample_weight)


def pair_negatives(num_queries: tf.Tensor, num_candidates: tf.Tensor, k: int) -> tf.Tensor:
    """`[B, k]` candidate columns used as negatives of each query.

    Query i takes columns `i+1, ..., i+k` (mod N): the candidates after its own
    positive. Batches are shuffled, so these are random clicked items; any
    extra sampled negatives (columns >= B) are reached the same way.
    """
    k = tf.minimum(k, num_candidates - 1)
    offsets = tf.range(1, k + 1)
    return (tf.range(num_queries)[:, None] + offsets[None, :]) % num_candidates


def _positive_and_negative_scores(query, candidates, k, positive_ids, candidate_ids,
                                  score_offset=None):
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


def bce_loss(query: tf.Tensor, candidates: tf.Tensor, *, num_negatives: int,
             temperature: float = 1.0, positive_ids: tf.Tensor | None = None,
             candidate_ids: tf.Tensor | None = None,
             sample_weight: tf.Tensor | None = None,
             score_offset: tf.Tensor | None = None) -> tf.Tensor:
    """Pointwise sigmoid cross-entropy: one positive, `num_negatives` negatives per query.

    Per query: `-log s(x+) - sum_j log(1 - s(x-_j))`, x = score / temperature;
    accidental hits among the negatives are left out. `score_offset` `[B, N]`
    (e.g. the trending prior, in score units) is added to the scores first, as
    in the two triplet losses.
    """
    positive, negative, valid = _positive_and_negative_scores(
        query, candidates, num_negatives, positive_ids, candidate_ids, score_offset)
    positive_term = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.ones_like(positive), logits=positive / temperature)
    negative_terms = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.zeros_like(negative), logits=negative / temperature)
    return _weighted_sum(positive_term + tf.reduce_sum(negative_terms * valid, axis=1),
                         sample_weight)


def _mean_over_valid(values: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(values * valid, axis=1) / tf.maximum(tf.reduce_sum(valid, axis=1), 1.0)


def triplet_hinge_loss(query: tf.Tensor, candidates: tf.Tensor, *, num_negatives: int,
                       margin: float, positive_ids: tf.Tensor | None = None,
                       candidate_ids: tf.Tensor | None = None,
                       sample_weight: tf.Tensor | None = None,
                       score_offset: tf.Tensor | None = None) -> tf.Tensor:
    """Per query: mean over its negatives of `max(0, margin - (s+ - s-))` (raw scores)."""
    positive, negative, valid = _positive_and_negative_scores(
        query, candidates, num_negatives, positive_ids, candidate_ids, score_offset)
    hinge = tf.nn.relu(margin - (positive[:, None] - negative))
    return _weighted_sum(_mean_over_valid(hinge, valid), sample_weight)


def triplet_logistic_loss(query: tf.Tensor, candidates: tf.Tensor, *, num_negatives: int,
                          temperature: float = 1.0, positive_ids: tf.Tensor | None = None,
                          candidate_ids: tf.Tensor | None = None,
                          sample_weight: tf.Tensor | None = None,
                          score_offset: tf.Tensor | None = None) -> tf.Tensor:
    """Per query: mean over its negatives of `log(1 + exp((s- - s+) / temperature))`."""
    positive, negative, valid = _positive_and_negative_scores(
        query, candidates, num_negatives, positive_ids, candidate_ids, score_offset)
    logistic = tf.math.softplus((negative - positive[:, None]) / temperature)
    return _weighted_sum(_mean_over_valid(logistic, valid), sample_weight)
