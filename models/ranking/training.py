"""Training pairs for the ranker and its training and pair metrics.

Each click of a catalogue item gives one row: the click's request (user,
history), its candidates (the clicked item first, then its negatives) and
labels (1, 0, ...). Negatives: items of the merged recall list's top
`retrieve_depth` for that request other than the clicked one (the
candidates the ranker will have to order), catalogue items drawn by
count ** `sampling_power`, and items the user was shown and did not click.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import log_loss, roc_auc_score  # noqa: E402

from models import features  # noqa: E402
from models.channels.clicks import as_array  # noqa: E402
from models.channels.recall import Recall  # noqa: E402
from models.data import make_dataset  # noqa: E402
from models.ranking.config import RankingConfig  # noqa: E402
from models.ranking.deepfm import BUCKETS, CANDIDATES, HISTORY, USER  # noqa: E402
from models.ranking.ranker import ItemClock, Ranker  # noqa: E402

MODEL_INPUTS = (USER, HISTORY, CANDIDATES, BUCKETS)


def request_batches(file_patterns, batch_size: int, towers, config: RankingConfig):
    """Click batches read for the ranker and the towers' query (its extra
    inputs, enough history for both, impressions when configured)."""
    return make_dataset(file_patterns, batch_size,
                        max(config.max_history, towers.max_history,
                            towers.export.exclude_history),
                        shuffle=False, extra_specs=list(towers.query_specs[2:]),
                        impressed_negatives=config.impression_negatives)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PairBuilder:
    """Candidates and labels for the clicks of request batches."""

    def __init__(self, ranker: Ranker, recall: Recall | None, item_counts,
                 config: RankingConfig, seed: int, clock: ItemClock | None = None):
        """`clock`: the training clicks, to read each candidate's popularity
        at its click (training pairs); None reads the ranker's table, as
        serving does (pairs of later clicks)."""
        self.ranker, self.recall, self.config, self.clock = ranker, recall, config, clock
        weights = np.asarray(item_counts, np.float64) ** config.sampling_power
        self.sampling = weights / weights.sum()
        self.rng = np.random.default_rng(seed)
        self.skipped = 0  # clicks on items outside the catalogue

    def _sampled(self, targets: np.ndarray, count: int) -> np.ndarray:
        drawn = self.rng.choice(len(self.sampling), size=(len(targets), count), p=self.sampling)
        clash = drawn == targets[:, None]
        drawn[clash] = (drawn[clash] + 1) % len(self.sampling)
        return drawn

    def batch(self, batch: dict) -> dict | None:
        """{`user`, `history`, `candidates` (model inputs), `labels`} for the
        batch's catalogue clicks; None when it has none."""
        config = self.config
        targets = np.array([self.ranker.item_index.get(_text(i), -1)
                            for i in as_array(batch[features.ITEM_ID])])
        keep = targets >= 0
        self.skipped += int((~keep).sum())
        if not keep.any():
            return None
        columns = [targets[:, None]]
        if config.retrieved_negatives and self.recall is not None:
            scores = self.recall.merged_scores(batch)
            scores[np.arange(len(targets)), np.maximum(targets, 0)] = -np.inf
            depth = min(config.retrieve_depth, scores.shape[1] - 1)
            top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
            pick = np.argsort(self.rng.random(top.shape), axis=1)[:, :config.retrieved_negatives]
            columns.append(np.take_along_axis(top, pick, axis=1))
        extra = config.sampled_negatives + (config.retrieved_negatives if self.recall is None
                                            else 0)
        if config.impression_negatives:
            shown = np.full((len(targets), config.impression_negatives), -1)
            if features.IMPRESSED_NEGATIVES in batch:
                for row, items in enumerate(as_array(batch[features.IMPRESSED_NEGATIVES])):
                    known = [self.ranker.item_index[t] for t in (_text(i) for i in items)
                             if t and t in self.ranker.item_index and
                             self.ranker.item_index[t] != targets[row]]
                    known = known[-config.impression_negatives:]
                    shown[row, :len(known)] = known
            filler = self._sampled(targets, config.impression_negatives)
            columns.append(np.where(shown >= 0, shown, filler))
        if extra:
            columns.append(self._sampled(targets, extra))
        candidates = np.concatenate(columns, axis=1)[keep]
        rows = {key: as_array(value)[keep] for key, value in batch.items()
                if key in (features.USER_ID, features.HISTORY, features.TIMESTAMP)}
        inputs = self.ranker.encode(rows, candidates, self.clock)
        labels = np.zeros(candidates.shape, np.float32)
        labels[:, 0] = 1.0
        return {**inputs, "labels": labels}

    def pairs(self, batches: Iterable[dict]) -> dict:
        """Every batch's rows, concatenated (histories padded to one width)."""
        parts = [p for p in (self.batch(b) for b in batches) if p is not None]
        if not parts:
            raise ValueError("ranker: no click on a catalogue item to train or evaluate on")
        width = max(p[HISTORY].shape[1] for p in parts)
        history = np.concatenate([np.pad(p[HISTORY], ((0, 0), (0, width - p[HISTORY].shape[1])))
                                  for p in parts])
        result = {key: np.concatenate([p[key] for p in parts])
                  for key in (USER, CANDIDATES, BUCKETS, "labels") if key in parts[0]}
        result[HISTORY] = history
        return result


def fit(ranker: Ranker, pairs: dict, config: RankingConfig) -> dict:
    """Trains `ranker.model` on `pairs` (binary cross-entropy per candidate);
    returns the loss after each epoch."""
    tf.keras.utils.set_random_seed(config.seed)
    inputs = {key: pairs[key] for key in MODEL_INPUTS if key in pairs}
    dataset = (tf.data.Dataset.from_tensor_slices((inputs, pairs["labels"]))
               .shuffle(len(pairs["labels"]), seed=config.seed, reshuffle_each_iteration=True)
               .batch(config.batch_size))
    ranker.model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate),
                         loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    history = ranker.model.fit(dataset, epochs=config.epochs, verbose=0)
    return {"rows": int(len(pairs["labels"])), "candidates_per_row":
            int(pairs["labels"].shape[1]),
            "loss": [round(float(v), 5) for v in history.history["loss"]]}


def pair_metrics(ranker: Ranker, pairs: dict, batch_size: int = 1024) -> dict:
    """AUC and log loss of the ranker's probabilities over every (row,
    candidate) pair of `pairs` (the negatives' mix sets the base rate)."""
    logits = np.concatenate([
        ranker.model({key: pairs[key][start:start + batch_size]
                      for key in MODEL_INPUTS if key in pairs}, training=False).numpy()
        for start in range(0, len(pairs["labels"]), batch_size)])
    labels = pairs["labels"].ravel()
    probabilities = 1.0 / (1.0 + np.exp(-logits.ravel().astype(np.float64)))
    return {"pairs": int(len(labels)), "positives": int(labels.sum()),
            "auc": round(float(roc_auc_score(labels, probabilities)), 4),
            "log_loss": round(float(log_loss(labels, probabilities, labels=[0, 1])), 4)}
