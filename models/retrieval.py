"""The TFRS two-tower retrieval model and its training loss.

A training step, in order: the query tower embeds the clicks' users and
histories; the candidate set is the batch's clicked items plus any mixed
negatives (models/negatives.py), embedded by the candidate tower, and with
`model.negatives.impressions` each click's own impressed negatives (items its
user was shown and did not click) by the same tower; each click
weighs by its recency (`model.training.recency_half_life_days`); the
trending prior in training adds its logit offset (models/trending.py); the
loss chosen by `model.loss.kind` (models/losses) scores the batch, with the
logQ correction; teacher-guided retrieval adds its terms (models/teacher.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from models import features, teacher  # noqa: E402
from models.losses import LOSSES  # noqa: E402
from models.losses.common import LossInputs  # noqa: E402
from models.negatives import CandidateSampler  # noqa: E402
from models.towers import CandidateTower, QueryTower  # noqa: E402
from models.vocab import Vocab  # noqa: E402


class RetrievalModel(tfrs.Model):
    """Two towers and the retrieval task.

    Args:
      vocab: the training `Vocab`.
      config: the `ModelConfig`.
      item_features: catalogue tokens per item (VocabStats), or None.
      trending_prior: a `models.trending.TrendingPrior` with
        `model.prior.in_training`, else None.
    """

    def __init__(self, vocab: Vocab, config, item_features=None, trending_prior=None):
        super().__init__()
        self.config = config
        self.trending_prior = trending_prior
        self._newest_timestamp = float(vocab.stats.get("max_timestamp") or 0)
        # Unknown users and history items spread over the vocabulary's OOV
        # buckets (stats.json num_oov_buckets; 1 for older vocabularies).
        self.query_tower = QueryTower(vocab.user_ids, vocab.item_ids, config,
                                      item_features=item_features,
                                      num_oov_buckets=vocab.num_oov_buckets)
        self.candidate_tower = CandidateTower(vocab, config, item_features=item_features)
        self.sampler = CandidateSampler(vocab, config)
        # Teacher-guided retrieval (training only; models/teacher.py).
        self.guidance = None
        if config.teacher.enabled:
            user_dim = int(self.query_tower.representation(
                self.query_tower.example_inputs()).shape[-1])
            self.guidance = teacher.TeacherGuidance(user_dim, config, name="guidance")
            # Per-click means of each teacher-side term, in the training logs.
            self.teacher_metrics = {
                name: tf.keras.metrics.Mean(name=name)
                for name in ("teacher_bce", "teacher_key", "similarity")
                + (("discriminator", "adversarial") if config.teacher.discriminator else ())}

    def recency_weight(self, timestamp: tf.Tensor) -> tf.Tensor | None:
        """`[B]` weights 0.5 ** (age / half-life), or None when disabled."""
        half_life = self.config.training.recency_half_life_days
        if not half_life:
            return None
        age_days = (self._newest_timestamp - tf.cast(timestamp, tf.float32)) / 86400.0
        return tf.pow(0.5, tf.maximum(age_days, 0.0) / half_life)

    def example_age(self, timestamp: tf.Tensor) -> tf.Tensor:
        """`[B]` int64 seconds from each click to the newest training click
        (YouTube's example age, `model.towers.example_age`)."""
        newest = tf.constant(int(self._newest_timestamp), tf.int64)
        age = newest - tf.cast(timestamp, tf.int64)
        return tf.maximum(age, 0)

    def impressed_negatives(self, inputs: dict) -> dict:
        """The `LossInputs` fields of the clicks' impressed negatives
        (`model.negatives.impressions`): their ids `[B, K]`, candidate-tower
        embeddings `[B, K, D]` and trending prior; nothing when the option is
        off or the batch has no `impressed_negatives`."""
        ids = inputs.get(features.IMPRESSED_NEGATIVES)
        if not self.config.negatives.impressions or ids is None:
            return {}
        flat = self.candidate_tower(tf.reshape(ids, [-1]))
        embedded = tf.reshape(flat, tf.concat([tf.shape(ids), tf.shape(flat)[-1:]], axis=0))
        offset = (self.trending_prior.per_query(inputs[features.TIMESTAMP], ids)
                  if self.trending_prior is not None else None)
        return {"impressed": embedded, "impressed_ids": ids, "impressed_offset": offset}

    def compute_loss(self, inputs: dict, training: bool = False) -> tf.Tensor:
        if self.config.towers.example_age:
            inputs = {**inputs, features.EXAMPLE_AGE: self.example_age(inputs[features.TIMESTAMP])}
        if self.guidance is None:
            query = self.query_tower(inputs, training=training)
        else:
            user = self.query_tower.representation(inputs, training=training)
            query = self.query_tower.embed(user)
        positive_ids = inputs[features.ITEM_ID]
        candidate_ids = self.sampler.candidate_ids(positive_ids)
        candidates = self.candidate_tower(candidate_ids)
        weight = self.recency_weight(inputs[features.TIMESTAMP])
        offset = (self.trending_prior(inputs[features.TIMESTAMP], candidate_ids)
                  if self.trending_prior is not None else None)
        batch = LossInputs(query=query, candidates=candidates, positive_ids=positive_ids,
                           candidate_ids=candidate_ids, sample_weight=weight,
                           log_q=self.sampler.log_q(candidate_ids, tf.shape(positive_ids)[0]),
                           logit_offset=offset, **self.impressed_negatives(inputs))
        loss = LOSSES[self.config.loss.kind](batch, self.config)
        if self.guidance is None:
            return loss
        terms = self.guidance.terms(user, query, candidates, positive_ids, candidate_ids, weight)
        clicks = tf.cast(tf.shape(query)[0], tf.float32)
        for name, value in terms.items():
            self.teacher_metrics[name].update_state(value / clicks)
        return loss + self.guidance.total(terms)
