"""Noise-contrastive estimation over the sampled candidates (`model.loss.kind: nce`).

NCE (Gutmann & Hyvärinen 2010; Mnih & Teh 2012) turns retrieval into binary
classification: is this candidate the query's click, or a draw from the noise
distribution? With k noise draws from q, the classifier's logit for item y is
`s(x, y) - log(k q(y))`, and at the optimum `s` is the log of the click
probability itself, with no partition function over the catalogue.

The noise here is the same sampler the softmax uses (models/negatives.py):
the batch's other clicked items (drawn from the click distribution) plus any
mixed negatives from VocabStats' distribution. `LossInputs.log_q` is exactly
`log` of a candidate's expected count in that candidate set, i.e. `log(k q)`;
without the logQ correction the loss is plain negative sampling (word2vec's
NEG, `log(k q)` taken as 0). Per query: `-log s(x+) - sum_j log(1 - s(x-_j))`
over every other candidate of the batch (accidental hits left out), x the
score / temperature minus `log(k q)` plus any logit offset; summed over queries.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models.losses import common  # noqa: E402


def nce_loss(query: tf.Tensor, candidates: tf.Tensor, *, temperature: float = 1.0,
             log_q: tf.Tensor | None = None, positive_ids: tf.Tensor | None = None,
             candidate_ids: tf.Tensor | None = None,
             sample_weight: tf.Tensor | None = None,
             logit_offset: tf.Tensor | None = None) -> tf.Tensor:
    """Binary NCE of each query's positive (column i) against all other candidates.

    Args:
      query: `[B, D]`.
      candidates: `[N, D]`, row i the positive of query i for i < B.
      temperature: logits are scores / temperature.
      log_q: `[N]` log expected count of each candidate in the noise sample
        (`log(k q)`), subtracted from its logit; None: 0 (negative sampling).
      positive_ids, candidate_ids: `[B]`, `[N]`; when both are given, a
        negative with the query's clicked id is left out.
      sample_weight: `[B]` per-query weights.
      logit_offset: `[B, N]` added to the logits (the trending prior in training).
    """
    logits = common.corrected_logits(query, candidates, temperature, log_q, logit_offset)
    batch = tf.shape(query)[0]
    labels = tf.one_hot(tf.range(batch), tf.shape(candidates)[0])
    per_pair = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    if positive_ids is not None and candidate_ids is not None:
        per_pair *= 1.0 - tf.cast(common.accidental_hits(positive_ids, candidate_ids),
                                  per_pair.dtype)
    return common.weighted_sum(tf.reduce_sum(per_pair, axis=1), sample_weight)


def compute(inputs: common.LossInputs, config) -> tf.Tensor:
    """`nce_loss` with the model's settings."""
    return nce_loss(inputs.query, inputs.candidates, temperature=config.loss.temperature,
                    log_q=inputs.log_q, sample_weight=inputs.sample_weight,
                    logit_offset=inputs.logit_offset, **common.hit_ids(inputs, config))
