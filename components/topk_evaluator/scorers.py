"""Scoring the current candidate catalogue with another set of towers.

Used for the "last blessed model" baseline: its towers embed the current
eval requests and the *current* candidate ids (ids it never saw fall into its
OOV bucket), so its metrics are computed on exactly the same ranking task.
"""

from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.towers_export import Towers  # noqa: E402


def towers_scorer(towers_dir: str, candidate_ids: list[str]) -> Callable[[dict], tf.Tensor]:
    """Returns `score(batch) -> float32 [B, N]` over `candidate_ids` in that order.

    Args:
      towers_dir: a towers SavedModel (Trainer `Format-Serving`).
      candidate_ids: the N candidates to score (the current vocabulary).
    """
    towers = Towers(towers_dir)
    candidates = towers.candidate_embeddings(candidate_ids)

    def score(batch: dict) -> tf.Tensor:
        query = towers.query_embeddings(batch[features.USER_ID], batch[features.HISTORY],
                                        extra_inputs(towers.query_specs, batch))
        return tf.matmul(query, candidates, transpose_b=True)

    return score


def extra_inputs(query_specs: list[tf.TensorSpec], batch: dict) -> dict:
    """The extra query inputs of `query_specs` (recency, user/context
    features) from an eval batch read with them (`make_dataset(extra_specs=...)`)."""
    missing = [spec.name for spec in query_specs[2:] if spec.name not in batch]
    if missing:
        raise ValueError(f"eval batch lacks the query input(s) {missing} the towers take; "
                         "read it with their extra_specs")
    return {spec.name: batch[spec.name] for spec in query_specs[2:]}
