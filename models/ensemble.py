"""Seed ensembles of towers that still score by one dot product.

`model.ensemble.size` K > 1 trains K towers that differ only in their seed
(initialisation, shuffling, history dropout) and serves the mean of their
scores. The mean stays factorised:

    (1/K) sum_k q_k . c_k  =  [q_1, ..., q_K] / K  .  [c_1, ..., c_K]

so the ensemble's query tower concatenates the members' query embeddings and
divides by K, its candidate tower concatenates the candidate embeddings, and
everything downstream (prior calibration, the towers export with its trending
prior column, the evaluator, ScaNN and brute-force exports) sees one pair of
towers of dimension K * D. Averaging independently trained members cancels
part of each member's training noise, which on sparse logs is the largest
error left (docs/model.md, README ablation).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402


def member_seed(seed: int, member: int) -> int:
    """Seed of ensemble member `member` (member 0 keeps the configured seed)."""
    return seed + member


class ConcatenatedTower(tf.keras.Model):
    """The members' embeddings of the same inputs, concatenated, times `scale`."""

    def __init__(self, members: list[tf.keras.Model], scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not members:
            raise ValueError("ensemble tower: no member towers; expected at least one")
        self.members = list(members)
        self.scale = float(scale)

    def call(self, inputs, training=False):
        parts = [member(inputs, training=training) for member in self.members]
        return tf.concat(parts, axis=1) * self.scale


class Ensemble:
    """Trained member models seen as one model (`query_tower`, `candidate_tower`).

    With one member its own towers are used as they are, so a model with
    `ensemble_size` 1 exports exactly what it did before ensembles existed.
    """

    def __init__(self, models: list):
        if not models:
            raise ValueError("ensemble: no trained members; expected at least one")
        self.models = list(models)
        if len(self.models) == 1:
            self.query_tower = self.models[0].query_tower
            self.candidate_tower = self.models[0].candidate_tower
        else:
            # Query side / K: the dot product is then the members' mean score.
            self.query_tower = ConcatenatedTower(
                [m.query_tower for m in self.models], 1.0 / len(self.models),
                name="ensemble_query_tower")
            self.candidate_tower = ConcatenatedTower(
                [m.candidate_tower for m in self.models], name="ensemble_candidate_tower")
