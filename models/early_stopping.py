"""Early stopping on the eval split's full-catalogue hit rate@K.

After every epoch the callback embeds the whole candidate corpus with the
current candidate tower, ranks a fixed sample of eval clicks
(`models/topk_metrics.rank_clicks`, the click's most recent
`exclude_history` items excluded, as the evaluator ranks) and records
`val_hit_rate@K`. Training stops after `patience` epochs without improvement
and the best epoch's weights are put back.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models import features, topk_metrics  # noqa: E402
from models.towers.candidate import corpus_embeddings  # noqa: E402


def query_batch(batch: dict, max_history: int) -> dict:
    """An eval batch as the query tower takes it: the `max_history` most
    recent history items (eval batches are read longer, for the exclusion)."""
    return {**batch, features.HISTORY: features.recent_history(batch[features.HISTORY],
                                                               max_history)}


def towers_hit_rate(query_tower, candidate_tower, batches, item_ids: list[str], k: int,
                    exclude_history: int, max_history: int) -> float:
    """hit rate@k (= recall@k) of the towers on `batches` of eval clicks."""
    candidates = corpus_embeddings(candidate_tower, item_ids)

    def score(batch):
        query = query_tower(query_batch(batch, max_history), training=False)
        return {"model": tf.matmul(query, candidates, transpose_b=True)}

    ranked = topk_metrics.rank_clicks(batches, score, item_ids, (k,), exclude_history)
    return ranked["model"].metrics()[f"recall@{k}"]


class HitRateEarlyStopping(tf.keras.callbacks.Callback):
    """Stops training when eval hit rate@k stops improving; restores the best weights."""

    def __init__(self, eval_dataset: tf.data.Dataset, item_ids: list[str], k: int,
                 patience: int, exclude_history: int, max_history: int):
        super().__init__()
        self.batches = list(eval_dataset)
        self.item_ids = list(item_ids)
        self.k = k
        self.patience = patience
        self.exclude_history = exclude_history
        self.max_history = max_history
        self.metric = f"val_hit_rate@{k}"
        self.best = -1.0
        self.best_epoch = -1
        self.best_weights = None
        self.history: list[float] = []

    def evaluate(self) -> float:
        return towers_hit_rate(self.model.query_tower, self.model.candidate_tower, self.batches,
                               self.item_ids, self.k, self.exclude_history, self.max_history)

    def agreed(self, value: float) -> float:
        """`value` averaged over the strategy's replicas (an all-reduce every
        worker enters, once per epoch), so that with MultiWorkerMirroredStrategy
        every worker takes the same stop and restore decision: one worker
        stopping alone would leave the others waiting in a collective. The
        workers' values agree already (same synchronised weights, same eval
        clicks); the all-reduce makes the decision one value by construction."""
        strategy = self.model.distribute_strategy
        synchronous = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
        if strategy.num_replicas_in_sync == 1 or not isinstance(strategy, synchronous):
            return value
        per_replica = strategy.run(lambda: tf.constant(value, tf.float32))
        return float(strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self.agreed(self.evaluate())
        self.history.append(value)
        if logs is not None:
            logs[self.metric] = value
        logging.info("epoch %d: %s %.4f", epoch + 1, self.metric, value)
        if value > self.best:
            self.best, self.best_epoch = value, epoch
            self.best_weights = self.model.get_weights()
        elif epoch - self.best_epoch >= self.patience:
            logging.info("early stopping: no %s gain for %d epochs; best epoch %d (%.4f)",
                         self.metric, self.patience, self.best_epoch + 1, self.best)
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.best_weights is not None and self.best_epoch != len(self.history) - 1:
            self.model.set_weights(self.best_weights)
