"""The TFRS two-tower retrieval model trained with in-batch sampled softmax.

The loss is `tfrs.tasks.Retrieval` with the logQ correction
(`candidate_sampling_probability` = the item's share of training clicks, from
VocabStatsGen) and `remove_accidental_hits` keyed on item ids.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from models import features  # noqa: E402
from models.hparams import HParams  # noqa: E402
from models.towers import CandidateTower, QueryTower  # noqa: E402
from models.vocab import Vocab  # noqa: E402


class RetrievalModel(tfrs.Model):
    """Two towers and the retrieval task."""

    def __init__(self, vocab: Vocab, hparams: HParams):
        super().__init__()
        self.hparams = hparams
        self.query_tower = QueryTower(vocab.user_ids, vocab.item_ids, hparams)
        self.candidate_tower = CandidateTower(vocab.item_ids, hparams, vocab.item_counts,
                                              vocab.item_recent_counts)
        # Items unseen in training get the smallest known probability: they are
        # rare, and a zero would make log(q) infinite.
        floor = min(vocab.item_sampling_probability)
        self.sampling_probability = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocab.item_ids), tf.constant(vocab.item_sampling_probability,
                                                         tf.float32)),
            default_value=floor)
        self._newest_timestamp = float(vocab.stats.get("max_timestamp") or 0)
        self.task = tfrs.tasks.Retrieval(
            temperature=hparams.temperature,
            remove_accidental_hits=hparams.remove_accidental_hits)

    def recency_weight(self, timestamp: tf.Tensor) -> tf.Tensor | None:
        """`[B]` weights 0.5 ** (age / half-life), or None when disabled."""
        if not self.hparams.recency_half_life_days:
            return None
        age_days = (self._newest_timestamp - tf.cast(timestamp, tf.float32)) / 86400.0
        return tf.pow(0.5, tf.maximum(age_days, 0.0) / self.hparams.recency_half_life_days)

    def compute_loss(self, inputs: dict, training: bool = False) -> tf.Tensor:
        query = self.query_tower(inputs)
        candidate = self.candidate_tower(inputs[features.ITEM_ID])
        item_ids = inputs[features.ITEM_ID]
        probability = (self.sampling_probability.lookup(item_ids)
                       if self.hparams.use_logq_correction else None)
        return self.task(
            query, candidate,
            sample_weight=self.recency_weight(inputs[features.TIMESTAMP]),
            candidate_sampling_probability=probability,
            candidate_ids=item_ids if self.hparams.remove_accidental_hits else None,
            compute_metrics=False,
            compute_batch_metrics=False,
        )
