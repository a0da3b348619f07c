"""Full-catalogue hit rates of any scorer on a split read into memory, and the
classic baselines (popularity, implicit ALS) scored the same way.

A click's history items are excluded from its ranking, as the TopKEvaluator
ranks; a clicked item outside the candidates is a miss for every scorer.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.towers_export import Towers  # noqa: E402

KS = (10, 50, 100)


def read_examples(pattern: str) -> dict:
    """Click examples of `pattern` as lists: user, item, timestamp, history,
    seconds since the previous click."""
    files = sorted(glob.glob(pattern))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
    spec = features.example_parsing_spec()
    spec[features.SECONDS_SINCE_PREVIOUS_CLICK] = tf.io.FixedLenFeature(
        [], tf.int64, default_value=features.NO_PREVIOUS_CLICK)
    users, items, times, histories, since = [], [], [], [], []
    for batch in dataset:
        parsed = tf.io.parse_example(batch, spec)
        users += [u.decode() for u in parsed[features.USER_ID].numpy()]
        items += [i.decode() for i in parsed[features.ITEM_ID].numpy()]
        times += parsed[features.TIMESTAMP].numpy().tolist()
        history = tf.RaggedTensor.from_sparse(parsed[features.HISTORY]).to_list()
        histories += [[h.decode() for h in row if h] for row in history]
        since += parsed[features.SECONDS_SINCE_PREVIOUS_CLICK].numpy().tolist()
    # The example age is a serving input: -1, the model's serving age.
    return {"user": users, "item": items, "timestamp": times, "history": histories,
            features.SECONDS_SINCE_PREVIOUS_CLICK: since,
            features.EXAMPLE_AGE: [features.SERVING_AGE] * len(users)}


class HitRates:
    """Full-catalogue hit rate@K with each click's history items excluded.

    With `train_items` (items with a training click), also the hit rate@K of
    the eval clicks on items first clicked in the eval window
    (`new_items_hit_rate@K`), whether or not they are candidates.
    """

    def __init__(self, item_ids: list[str], eval_set: dict, ks=KS,
                 train_items: set[str] | None = None):
        self.ks = tuple(ks)
        self.index = {item: n for n, item in enumerate(item_ids)}
        self.targets = np.array([self.index.get(i, -1) for i in eval_set["item"]])
        self.seen = [[self.index[i] for i in h if i in self.index] for h in eval_set["history"]]
        self.new_item = (None if train_items is None else
                         np.array([i not in train_items for i in eval_set["item"]]))

    def __call__(self, score_fn, batch: int = 2048) -> dict:
        """`score_fn(start, stop)` -> float `[stop - start, N]` scores of those clicks."""
        hits = {k: 0 for k in self.ks}
        new_hits = {k: 0 for k in self.ks}
        top = max(self.ks)
        for start in range(0, len(self.targets), batch):
            scores = np.array(score_fn(start, min(start + batch, len(self.targets))),
                              np.float32, copy=True)
            for row, seen in enumerate(self.seen[start:start + batch]):
                scores[row, seen] = -np.inf
            best = np.argpartition(-scores, top, axis=1)[:, :top]
            order = np.take_along_axis(scores, best, axis=1).argsort(axis=1)[:, ::-1]
            ranked = np.take_along_axis(best, order, axis=1)
            target = self.targets[start:start + batch, None]
            for k in self.ks:
                hit = (ranked[:, :k] == target).any(axis=1)
                hits[k] += int(hit.sum())
                if self.new_item is not None:
                    new_hits[k] += int(hit[self.new_item[start:start + batch]].sum())
        result = {f"hit_rate@{k}": round(hits[k] / len(self.targets), 4) for k in self.ks}
        if self.new_item is not None and self.new_item.any():
            result.update({f"new_items_hit_rate@{k}": round(new_hits[k] / self.new_item.sum(), 4)
                           for k in self.ks})
        return result


def popularity(counts, hit_rates: HitRates) -> dict:
    """The same per-item counts as every click's scores."""
    row = np.asarray(counts, np.float32)
    return hit_rates(lambda a, b: np.tile(row, (b - a, 1)))


def als(train_set: dict, vocab, hit_rates: HitRates) -> dict:
    """implicit ALS (64 factors); each click's user factor is recomputed from
    its history (popularity for an empty history)."""
    from implicit.als import AlternatingLeastSquares

    users = {u: n for n, u in enumerate(sorted(set(train_set["user"])))}
    rows = [users[u] for u in train_set["user"]]
    cols = [hit_rates.index[i] for i in train_set["item"]]
    matrix = scipy.sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                                     shape=(len(users), len(vocab.item_ids)))
    matrix.sum_duplicates()
    model = AlternatingLeastSquares(factors=64, regularization=0.05, iterations=15,
                                    alpha=40.0, random_state=0)
    with contextlib.redirect_stderr(io.StringIO()):
        model.fit(matrix, show_progress=False)
    item_factors = np.asarray(model.item_factors)
    fallback = np.asarray(vocab.item_counts, np.float32)

    def scores(a, b):
        seen = hit_rates.seen[a:b]
        indptr = np.cumsum([0] + [len(set(row)) for row in seen])
        indices = np.concatenate([sorted(set(row)) for row in seen] + [np.zeros(0, int)])
        history = scipy.sparse.csr_matrix(
            (np.ones(len(indices), np.float32), indices, indptr),
            shape=(b - a, len(vocab.item_ids)))
        factors = np.asarray(model.recalculate_user(np.arange(b - a), history))
        out = factors @ item_factors.T
        empty = indptr[1:] == indptr[:-1]
        out[empty] = fallback
        return out

    return hit_rates(scores)


def model_hit_rates(towers_dir: str, eval_set: dict, hit_rates: HitRates) -> dict:
    """Hit rates of trained towers (their own history length and query inputs)."""
    towers = Towers(towers_dir)
    if towers.vocab.item_ids != list(hit_rates.index):
        raise RuntimeError("towers vocab differs from the benchmark's candidate list")
    candidates = towers.candidate_embeddings().numpy()
    max_history = towers.max_history

    def scores(a, b):
        histories = [h[-max_history:] + [""] * (max_history - len(h[-max_history:]))
                     for h in eval_set["history"][a:b]]
        # The benchmark's logs declare no user/context features; recency is
        # in every example and the example age takes the serving age.
        extra = {spec.name: eval_set[spec.name][a:b] for spec in towers.query_specs[2:]}
        query = towers.query_embeddings(eval_set["user"][a:b], histories, extra).numpy()
        return query @ candidates.T

    return hit_rates(scores)
