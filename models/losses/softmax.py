"""In-batch sampled softmax with the logQ correction and hard negatives (the default).

The sampled softmax of Jean et al. (2015) / Yi et al. (2019): the logit of
each candidate is reduced by the log of its expected number of occurrences
in the candidate set (`LossInputs.log_q`, models/negatives.py), so that
frequently sampled (popular) items are not pushed down just for being
sampled often. Then, in this order: the trending-prior offset is added,
accidental hits are masked, each query's impressed negatives (items its user
was shown and did not click, `model.negatives.impressions`) are appended as
its own extra logits, and with hard negatives only the positive and the
highest-scoring negatives stay in the softmax. Without impressed negatives,
what `tfrs.tasks.Retrieval` computes (a test checks they agree).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models.losses import common  # noqa: E402


def keep_hardest(logits: tf.Tensor, num_hard_negatives: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Keeps each row's positive (column i) and its `k` highest-scoring negatives.

    Returns `(logits [B, 1 + k], labels [B, 1 + k])`, positive first.
    """
    batch = tf.shape(logits)[0]
    positive = tf.linalg.diag_part(logits[:, :batch])[:, None]
    is_positive = tf.one_hot(tf.range(batch), tf.shape(logits)[1])
    negatives = logits + is_positive * common.MASK
    k = tf.minimum(num_hard_negatives, tf.shape(logits)[1] - 1)
    hardest, _ = tf.math.top_k(negatives, k=k)
    kept = tf.concat([positive, hardest], axis=1)
    labels = tf.one_hot(tf.zeros([batch], tf.int32), tf.shape(kept)[1])
    return kept, labels


def softmax_loss(query: tf.Tensor, candidates: tf.Tensor, *, temperature: float = 1.0,
                 log_q: tf.Tensor | None = None, positive_ids: tf.Tensor | None = None,
                 candidate_ids: tf.Tensor | None = None, num_hard_negatives: int = 0,
                 sample_weight: tf.Tensor | None = None,
                 logit_offset: tf.Tensor | None = None,
                 extra_logits: tf.Tensor | None = None) -> tf.Tensor:
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
        the trending prior in training.
      extra_logits: `[B, K]` logits of each query's own extra negatives
        (`common.impressed_logits`), appended after the candidates'.
    """
    logits = common.corrected_logits(query, candidates, temperature, log_q, logit_offset)
    if positive_ids is not None and candidate_ids is not None:
        logits += tf.cast(common.accidental_hits(positive_ids, candidate_ids),
                          logits.dtype) * common.MASK
    if extra_logits is not None:
        logits = tf.concat([logits, tf.cast(extra_logits, logits.dtype)], axis=1)
    if num_hard_negatives:
        logits, labels = keep_hardest(logits, num_hard_negatives)
    else:
        labels = tf.one_hot(tf.range(tf.shape(query)[0]), tf.shape(logits)[1])
    per_query = tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return common.weighted_sum(per_query, sample_weight)


def compute(inputs: common.LossInputs, config) -> tf.Tensor:
    """`softmax_loss` with the model's settings."""
    hits = common.hit_ids(inputs, config)
    extra = None
    if inputs.impressed is not None:
        extra = common.impressed_logits(
            inputs.query, inputs.impressed, inputs.impressed_ids,
            temperature=config.loss.temperature, weight=config.negatives.impression_weight,
            positive_ids=hits.get("positive_ids"), offset=inputs.impressed_offset)
    return softmax_loss(inputs.query, inputs.candidates, temperature=config.loss.temperature,
                        log_q=inputs.log_q, num_hard_negatives=config.negatives.hard,
                        sample_weight=inputs.sample_weight, logit_offset=inputs.logit_offset,
                        extra_logits=extra, **hits)
