"""Which candidates a training batch is scored against, and their logQ correction.

In-batch negatives: every query's candidates are the batch's clicked items.
Mixed negative sampling (`model.negatives.mixed` M > 0) appends M items drawn
from the whole corpus, uniformly or from VocabStats' negative-sampling
distribution (click count ** `vocab.negative_sampling_alpha`, the one alpha of
the pipeline), so that items rarely clicked still appear as negatives.

The logQ correction (`model.loss.logq_correction`) subtracts from each
candidate's logit the log of its expected number of occurrences in the
candidate set. With in-batch candidates only, that is `log(B * p_click)`;
with M extra negatives from `p_neg`, a candidate could have entered by either
route and the expected count is `B * p_click + M * p_neg` (`mixed_log_q`).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def floored_probabilities(probabilities: list[float]) -> list[float]:
    """logQ sampling probabilities with zeros raised to the smallest positive one.

    Catalogue items without training clicks have probability 0 and ids unseen
    in training are out of the table; both count as the rarest clicked item,
    since a zero would make log(q) infinite.
    """
    positive = [p for p in probabilities if p > 0]
    if not positive:
        raise ValueError("item sampling probabilities: no item has a positive probability; "
                         "expected at least one clicked item in the vocabulary")
    floor = min(positive)
    return [p if p > 0 else floor for p in probabilities]


def negative_distribution(vocab, distribution: str) -> np.ndarray:
    """Probability of each corpus item under the mixed-negative sampler:
    `uniform`, or `popularity`, VocabStats' count^alpha shares
    (`Vocab.item_negative_sampling_probability`, from item_stats.tsv)."""
    if distribution == "uniform":
        return np.full(vocab.num_items, 1.0 / vocab.num_items)
    if vocab.item_negative_sampling_probability is None:
        raise ValueError(
            "model.negatives.mixed_distribution='popularity' draws from the VocabStats "
            "item_stats.tsv negative_sampling_probability column; this vocabulary has no "
            "item_stats.tsv (expected a VocabStatsGen output), or use 'uniform'")
    probability = np.asarray(vocab.item_negative_sampling_probability, np.float64)
    if not (probability >= 0).all() or probability.sum() <= 0:
        raise ValueError(f"VocabStats negative_sampling_probability: expected non-negative "
                         f"shares with a positive sum, got min {probability.min()} and sum "
                         f"{probability.sum()}")
    return probability / probability.sum()


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


class CandidateSampler(tf.Module):
    """A batch's candidate ids (positives, then mixed negatives) and their logQ.

    Args:
      vocab: the training `Vocab` (corpus, counts, click shares).
      config: the `ModelConfig` (`negatives`, `loss.logq_correction`).
    """

    def __init__(self, vocab, config):
        super().__init__()
        self._mixed = config.negatives.mixed
        self._logq = config.loss.logq_correction
        probabilities = floored_probabilities(vocab.item_sampling_probability)
        self.sampling_probability = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocab.item_ids), tf.constant(probabilities, tf.float32)),
            default_value=min(probabilities))
        self.corpus_ids = tf.constant(vocab.item_ids)
        negative_probability = negative_distribution(vocab, config.negatives.mixed_distribution)
        # Items with no share (never clicked, alpha > 0) are never drawn.
        with np.errstate(divide="ignore"):
            self.negative_logits = tf.constant(np.log(negative_probability), tf.float32)
        self.negative_probability = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self.corpus_ids, tf.constant(negative_probability, tf.float32)),
            default_value=float(negative_probability.min()))

    def candidate_ids(self, positive_ids: tf.Tensor) -> tf.Tensor:
        """The batch's clicked items followed by any mixed negatives `[B + M]`."""
        if not self._mixed:
            return positive_ids
        sampled = tf.random.categorical(self.negative_logits[None, :], self._mixed)[0]
        return tf.concat([positive_ids, tf.gather(self.corpus_ids, sampled)], axis=0)

    def log_q(self, candidate_ids: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor | None:
        """`[N]` logQ correction of the candidates, or None when it is off."""
        if not self._logq:
            return None
        return mixed_log_q(
            self.sampling_probability.lookup(candidate_ids), batch_size,
            self.negative_probability.lookup(candidate_ids) if self._mixed else None,
            self._mixed)
