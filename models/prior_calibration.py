"""Choosing the trending prior's weight on eval clicks.

The served score can add `w * log1p(item's recent click count)` to the
towers' dot product (`model.prior.weight`, applied at export). How much that
helps depends on the data: on logs with strong drift (new releases) recent
popularity predicts the next click well; on logs where clicks follow stable
tastes it only adds noise. With `model.prior.grid` the Trainer picks `w`
itself, the way early stopping picks the epoch: every grid weight ranks up
to `model.prior.calibration_examples` eval clicks with the trained towers
plus the prior (`models/topk_metrics.rank_clicks`: full catalogue, the
click's recent history excluded, as the evaluator ranks) and the weight with
the best hit rate@`model.training.early_stopping_k` wins (ties: the smaller
weight).

Why eval clicks and not the end of the training period: the towers have
been fitted to every training click, so on those clicks they look far better
than on unseen ones and any prior looks harmful (measured on MovieTweetings:
hit rate@100 0.91 at w = 0 on the last training window, falling with w, while
on eval clicks w = 0.3 beats w = 0). The price: eval metrics of a calibrated
model are slightly optimistic (one choice among a handful of weights); a test
split (`ingestion.test_fraction`) gives an untouched measure.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import topk_metrics  # noqa: E402
from models.early_stopping import query_batch  # noqa: E402
from models.towers.candidate import corpus_embeddings  # noqa: E402


def choose_weight(model, eval_dataset: tf.data.Dataset, vocab, config) -> tuple[float, dict]:
    """Picks the prior's weight from `config.prior.grid`.

    Args:
      model: the trained model (`query_tower`, `candidate_tower`).
      eval_dataset: batches of eval click examples (`models.data.make_dataset`);
        the first `config.prior.calibration_examples` clicks are used.
      vocab: the training `Vocab` (candidates and their recent click counts).
      config: the `ModelConfig`.

    Returns:
      (weight, report): the report has the number of clicks ranked and the
      hit rate of every grid weight.
    """
    candidates = corpus_embeddings(model.candidate_tower, vocab.item_ids)
    prior_row = tf.constant(np.log1p(np.asarray(vocab.item_recent_counts, np.float64)),
                            tf.float32)[None, :]
    k = config.training.early_stopping_k
    grid = config.prior.grid

    def score(batch):
        query = model.query_tower(query_batch(batch, config.history.max_history),
                                  training=False)
        scores = tf.matmul(query, candidates, transpose_b=True)
        return {repr(float(weight)): scores + float(weight) * prior_row for weight in grid}

    ranked = topk_metrics.rank_clicks(
        topk_metrics.first_clicks(eval_dataset, config.prior.calibration_examples), score,
        vocab.item_ids, (k,), config.export.exclude_history)
    if not ranked:
        raise ValueError("model.prior.grid: the eval split has no clicks to choose the "
                         "trending prior's weight on; expected at least one")
    by_weight = {float(name): accumulator.metrics()[f"recall@{k}"]
                 for name, accumulator in ranked.items()}
    best = max(sorted(by_weight), key=lambda w: by_weight[w])  # first max: smallest weight
    clicks = next(iter(ranked.values())).examples
    return best, {"clicks": clicks, "weight": best,
                  "hit_rate_by_weight": {f"{w:g}": round(r, 4) for w, r in by_weight.items()}}
