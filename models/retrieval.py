"""The TFRS two-tower retrieval model and its training loss.

The default loss is in-batch sampled softmax with the logQ correction (the
item's share of training clicks, from VocabStatsGen) and accidental hits
removed by item id, which is what `tfrs.tasks.Retrieval` computes (a test
checks they agree). Options (all in `HParams`): extra negatives sampled from
the whole corpus (mixed negatives), hard negatives, and pointwise or pairwise
losses instead of the softmax; the loss functions are in `models/losses.py`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from models import features, losses, teacher  # noqa: E402
from models.hparams import HParams  # noqa: E402
from models.towers import CandidateTower, QueryTower  # noqa: E402
from models.vocab import Vocab  # noqa: E402


class RetrievalModel(tfrs.Model):
    """Two towers and the retrieval task."""

    def __init__(self, vocab: Vocab, hparams: HParams,
                 item_features: dict[str, list[list[str]]] | None = None,
                 item_first_timestamps: list[float] | None = None,
                 trending_prior=None):
        super().__init__()
        self.hparams = hparams
        # hparams.trending_prior_training: a models.trending.TrendingPrior.
        self.trending_prior = trending_prior
        self._newest_timestamp = float(vocab.stats.get("max_timestamp") or 0)
        # Unknown users and history items spread over the vocabulary's OOV
        # buckets (stats.json num_oov_buckets; 1 for older vocabularies).
        self.query_tower = QueryTower(vocab.user_ids, vocab.item_ids, hparams,
                                      item_features=item_features,
                                      num_oov_buckets=vocab.num_oov_buckets)
        self.candidate_tower = CandidateTower(
            vocab.item_ids, hparams, vocab.item_counts, vocab.item_recent_counts,
            item_features=item_features, item_first_timestamps=item_first_timestamps,
            newest_timestamp=self._newest_timestamp,
            shared_history=self.query_tower if hparams.share_item_embeddings else None)
        probabilities = floored_probabilities(vocab.item_sampling_probability)
        self.sampling_probability = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocab.item_ids), tf.constant(probabilities, tf.float32)),
            default_value=min(probabilities))
        self.corpus_ids = tf.constant(vocab.item_ids)
        negative_probability = negative_distribution(vocab.item_counts, hparams)
        self.negative_logits = tf.constant(np.log(negative_probability), tf.float32)
        self.negative_probability = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self.corpus_ids, tf.constant(negative_probability, tf.float32)),
            default_value=float(negative_probability.min()))
        # Teacher-guided retrieval (training only; models/teacher.py).
        self.guidance = None
        if hparams.teacher_guided:
            user_dim = int(self.query_tower.representation(
                self.query_tower.example_inputs()).shape[-1])
            self.guidance = teacher.TeacherGuidance(user_dim, hparams, name="guidance")
            # Per-click means of each teacher-side term, in the training logs.
            self.teacher_metrics = {
                name: tf.keras.metrics.Mean(name=name)
                for name in ("teacher_bce", "teacher_key", "similarity")
                + (("discriminator", "adversarial") if hparams.teacher_discriminator else ())}

    def recency_weight(self, timestamp: tf.Tensor) -> tf.Tensor | None:
        """`[B]` weights 0.5 ** (age / half-life), or None when disabled."""
        if not self.hparams.recency_half_life_days:
            return None
        age_days = (self._newest_timestamp - tf.cast(timestamp, tf.float32)) / 86400.0
        return tf.pow(0.5, tf.maximum(age_days, 0.0) / self.hparams.recency_half_life_days)

    def candidate_ids(self, positive_ids: tf.Tensor) -> tf.Tensor:
        """The batch's clicked items followed by any mixed negatives `[B + M]`."""
        if not self.hparams.num_mixed_negatives:
            return positive_ids
        sampled = tf.random.categorical(self.negative_logits[None, :],
                                        self.hparams.num_mixed_negatives)[0]
        return tf.concat([positive_ids, tf.gather(self.corpus_ids, sampled)], axis=0)

    def log_q(self, candidate_ids: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor | None:
        if not self.hparams.use_logq_correction:
            return None
        mixed = self.hparams.num_mixed_negatives
        return losses.mixed_log_q(
            self.sampling_probability.lookup(candidate_ids), batch_size,
            self.negative_probability.lookup(candidate_ids) if mixed else None, mixed)

    def compute_loss(self, inputs: dict, training: bool = False) -> tf.Tensor:
        if self.guidance is None:
            query = self.query_tower(inputs, training=training)
        else:
            user = self.query_tower.representation(inputs, training=training)
            query = self.query_tower.embed(user)
        positive_ids = inputs[features.ITEM_ID]
        candidate_ids = self.candidate_ids(positive_ids)
        candidates = self.candidate_tower(candidate_ids)
        weight = self.recency_weight(inputs[features.TIMESTAMP])
        offset = (self.trending_prior(inputs[features.TIMESTAMP], candidate_ids)
                  if self.trending_prior is not None else None)
        loss = self.retrieval_loss(query, candidates, positive_ids, candidate_ids, weight,
                                   offset)
        if self.guidance is None:
            return loss
        terms = self.guidance.terms(user, query, candidates, positive_ids, candidate_ids, weight)
        clicks = tf.cast(tf.shape(query)[0], tf.float32)
        for name, value in terms.items():
            self.teacher_metrics[name].update_state(value / clicks)
        return loss + self.guidance.total(terms)

    def retrieval_loss(self, query: tf.Tensor, candidates: tf.Tensor, positive_ids: tf.Tensor,
                       candidate_ids: tf.Tensor, weight: tf.Tensor | None,
                       logit_offset: tf.Tensor | None = None) -> tf.Tensor:
        """The retrieval loss `hparams.loss` of a batch (models/losses.py).

        `logit_offset` `[B, N]` is added to the softmax logits; the pairwise
        and pointwise losses get it in score units (`temperature *
        logit_offset`) added to the scores, so in every loss it stands for the
        same served term `w * prior` with `w = temperature * beta`.
        """
        hparams = self.hparams
        hits = dict(positive_ids=positive_ids, candidate_ids=candidate_ids) \
            if hparams.remove_accidental_hits else {}
        if logit_offset is not None and hparams.loss != "softmax":
            hits["score_offset"] = hparams.temperature * logit_offset
        if hparams.loss == "softmax":
            return losses.softmax_loss(
                query, candidates, temperature=hparams.temperature,
                log_q=self.log_q(candidate_ids, tf.shape(positive_ids)[0]),
                num_hard_negatives=hparams.num_hard_negatives, sample_weight=weight,
                logit_offset=logit_offset, **hits)
        if hparams.loss == "bce":
            return losses.bce_loss(query, candidates, num_negatives=hparams.pair_negatives,
                                   temperature=hparams.temperature, sample_weight=weight, **hits)
        if hparams.loss == "triplet_hinge":
            return losses.triplet_hinge_loss(query, candidates,
                                             num_negatives=hparams.pair_negatives,
                                             margin=hparams.triplet_margin,
                                             sample_weight=weight, **hits)
        return losses.triplet_logistic_loss(query, candidates,
                                            num_negatives=hparams.pair_negatives,
                                            temperature=hparams.temperature,
                                            sample_weight=weight, **hits)


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


def negative_distribution(item_counts: list[float], hparams: HParams) -> np.ndarray:
    """Probability of each corpus item under the mixed-negative sampler."""
    counts = np.asarray(item_counts, np.float64)
    if hparams.mixed_negative_distribution == "uniform" or not len(counts):
        return np.full(len(counts), 1.0 / max(len(counts), 1))
    weights = np.power(np.maximum(counts, 1.0), hparams.negative_popularity_alpha)
    return weights / weights.sum()
