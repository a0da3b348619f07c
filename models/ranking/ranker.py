"""The trained ranker with its lookups: ids and history strings to the
model's indices, scoring candidates, re-ranking a list, saving and loading.

Files in a ranker directory:
  * `ranker.json`: the `ranking` settings, the table sizes and how it was
    trained (`report`);
  * `users.txt`, `tokens.txt`: the user and catalog-token vocabularies
    (index = line number + 1; 0 is an unknown user, padding for tokens);
  * `tables.npz`: each catalogue item's token ids and popularity buckets;
  * `weights.*`: the DeepFM weights (Keras checkpoint).
The item index is the catalogue's (the towers' vocabulary) + 1.
"""

from __future__ import annotations

import io
import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from clicklog.config import parse  # noqa: E402
from models import features  # noqa: E402
from models.channels.clicks import as_array  # noqa: E402
from models.ranking.config import RankingConfig  # noqa: E402
from models.ranking.deepfm import BUCKETS, CANDIDATES, HISTORY, USER, DeepFM  # noqa: E402

RANKER_JSON = "ranker.json"
WEIGHTS = "weights"


# Item index and time packed in one int64 key (times below 2**40 s).
_TIME_BITS = 40


def log_buckets(counts, buckets: int) -> np.ndarray:
    """int `[...]` in 1..buckets: 1 + floor(log2(1 + count)), capped."""
    counts = np.maximum(np.asarray(counts, np.float64), 0.0)
    return (1 + np.minimum(buckets - 1, np.floor(np.log2(1.0 + counts)))).astype(np.int32)


class ItemClock:
    """Each candidate's clicks in time: how many before a given time, all
    told and within the trailing `window_seconds`. Training pairs read an
    item's popularity as it stood at the click (no later click leaks in);
    serving reads it at `now`, just after the newest click."""

    def __init__(self, items: np.ndarray, timestamps: np.ndarray, window_seconds: float):
        items, timestamps = np.asarray(items, np.int64), np.asarray(timestamps, np.int64)
        keep = items >= 0
        self.keys = np.sort((items[keep] << _TIME_BITS) + np.clip(timestamps[keep], 0, None))
        self.window = int(window_seconds)
        self.now = int(timestamps.max()) + 1 if len(timestamps) else 0

    @classmethod
    def from_clicks(cls, clicks, window_days: float) -> ItemClock:
        """From `models.channels.clicks.Clicks` (candidate index and time of each)."""
        return cls(clicks.items, clicks.timestamps, window_days * 86400)

    def counts(self, items: np.ndarray, times) -> tuple[np.ndarray, np.ndarray]:
        """(clicks before `times`, clicks in the window before them) of each
        of `items` (catalogue index; -1 has none); `times` broadcasts."""
        items = np.asarray(items, np.int64)
        times = np.clip(np.broadcast_to(np.asarray(times, np.int64), items.shape), 0, None)
        base = np.maximum(items, 0) << _TIME_BITS
        first = np.searchsorted(self.keys, base)
        before = np.searchsorted(self.keys, base + times)
        recent = np.searchsorted(self.keys, base + np.maximum(times - self.window, 0))
        known = items >= 0
        return np.where(known, before - first, 0), np.where(known, before - recent, 0)

    def buckets(self, items: np.ndarray, times, buckets: int) -> np.ndarray:
        """int `[..., 2]`: `log_buckets` of both counts (0 for an unknown item)."""
        total, recent = self.counts(items, times)
        known = np.asarray(items) >= 0
        return np.stack([np.where(known, log_buckets(total, buckets), 0),
                         np.where(known, log_buckets(recent, buckets), 0)], axis=-1)


def item_token_table(item_features: dict | None, num_items: int, max_tokens: int
                     ) -> tuple[np.ndarray, list[str]]:
    """(int `[N + 1, T]` token ids per item, row 0 the unknown item; the
    token vocabulary). Tokens are `<feature>:<token>`, features in name order."""
    tokens_of = [[] for _ in range(num_items)]
    for name in sorted(item_features or {}):
        for row, tokens in enumerate(item_features[name]):
            tokens_of[row] += [f"{name}:{token}" for token in tokens]
    vocabulary = sorted({token for tokens in tokens_of for token in tokens})
    index = {token: n + 1 for n, token in enumerate(vocabulary)}
    width = max(1, min(max_tokens, max((len(t) for t in tokens_of), default=0)))
    table = np.zeros((num_items + 1, width), np.int32)
    for row, tokens in enumerate(tokens_of):
        ids = [index[token] for token in dict.fromkeys(tokens)][:width]
        table[row + 1, :len(ids)] = ids
    return table, vocabulary


class Ranker:
    """A DeepFM model over one catalogue and the vocabularies it was trained with."""

    def __init__(self, config: RankingConfig, item_ids: list[str], user_ids: list[str],
                 item_tokens: np.ndarray, tokens: list[str], item_buckets: np.ndarray,
                 report: dict | None = None):
        self.config = config
        self.item_ids = list(item_ids)
        self.item_index = {item: n for n, item in enumerate(self.item_ids)}
        self.user_ids = list(user_ids)
        self.user_index = {user: n + 1 for n, user in enumerate(self.user_ids)}
        self.item_tokens = np.asarray(item_tokens, np.int32)
        self.tokens = list(tokens)
        self.item_buckets = np.asarray(item_buckets, np.int32)
        self.report = dict(report or {})
        self.model = DeepFM(len(self.user_ids), self.item_tokens, len(self.tokens),
                            self.item_buckets, config)
        self._logits = tf.function(lambda inputs: self.model(inputs, training=False),
                                   reduce_retracing=True)
        self.model(self.encode({features.USER_ID: np.array([b""]),
                                features.HISTORY: np.array([[b""]])},
                               np.zeros((1, 1), np.int64)))  # creates the weights

    @classmethod
    def build(cls, config: RankingConfig, item_ids: list[str], clock: ItemClock,
              user_ids, item_features: dict | None = None) -> Ranker:
        """An untrained ranker: the catalogue's tokens, its popularity buckets
        at `clock.now` (what serving reads), `user_ids` the known users."""
        tokens, vocabulary = item_token_table(item_features, len(item_ids),
                                              config.max_item_tokens)
        buckets = np.zeros((len(item_ids) + 1, 2), np.int32)
        buckets[1:] = clock.buckets(np.arange(len(item_ids)), clock.now,
                                    config.popularity_buckets)
        return cls(config, item_ids, sorted(set(user_ids)), tokens, vocabulary, buckets)

    def encode(self, batch: dict, candidates: np.ndarray, clock: ItemClock | None = None
               ) -> dict:
        """The model's inputs for a request batch (`user_id` `[B]`, `history`
        `[B, L]` strings, most recent last, `""` padding) and candidates
        (catalogue index `[B, C]`, -1: unknown). With `clock` (training), the
        candidates' popularity buckets as they stood at each click's
        `timestamp`; without, the ranker's table (as at the end of its clicks)."""
        users = np.array([self.user_index.get(_text(u), 0)
                          for u in as_array(batch[features.USER_ID])], np.int32)
        rows = []
        for history in as_array(batch[features.HISTORY]):
            known = [self.item_index[i] + 1 for i in (_text(h) for h in history)
                     if i and i in self.item_index]
            rows.append(known[-self.config.max_history:])
        width = max(1, max((len(r) for r in rows), default=0))
        history = np.zeros((len(rows), width), np.int32)
        for n, row in enumerate(rows):
            history[n, :len(row)] = row
        inputs = {USER: users, HISTORY: history,
                  CANDIDATES: np.asarray(candidates, np.int64).astype(np.int32) + 1}
        if clock is not None:
            times = as_array(batch[features.TIMESTAMP]).astype(np.int64)[:, None]
            inputs[BUCKETS] = clock.buckets(candidates, times, self.config.popularity_buckets)
        return inputs

    def score(self, batch: dict, candidates: np.ndarray) -> np.ndarray:
        """float32 logits `[B, C]` of the catalogue indices `candidates`."""
        return self._logits(self.encode(batch, candidates)).numpy()

    def rerank(self, batch: dict, scores: np.ndarray, depth: int | None = None) -> np.ndarray:
        """`scores` `[B, N]` with its top `depth` (default `rerank_depth`)
        candidates ordered by the ranker, above every other candidate: their
        logits lifted by each row's (largest finite score - smallest logit +
        1), a small lift, so float32 keeps the logits' differences."""
        scores = np.asarray(scores, np.float32)
        depth = min(depth or self.config.rerank_depth, scores.shape[1])
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        logits = self.score(batch, top)
        finite = np.where(np.isfinite(scores), scores, -np.inf).max(axis=1)
        highest = np.where(np.isfinite(finite), finite, 0.0)
        lift = np.maximum(highest, 0.0) - logits.min(axis=1) + 1.0
        result = scores.copy()
        np.put_along_axis(result, top, logits + lift[:, None], axis=1)
        return result

    def save(self, directory: str) -> None:
        tf.io.gfile.makedirs(directory)
        meta = {"config": self.config.to_dict(), "items": len(self.item_ids),
                "users": len(self.user_ids), "tokens": len(self.tokens), "report": self.report}
        with tf.io.gfile.GFile(os.path.join(directory, RANKER_JSON), "w") as f:
            f.write(json.dumps(meta, indent=2, sort_keys=True))
        for name, values in (("users.txt", self.user_ids), ("tokens.txt", self.tokens)):
            with tf.io.gfile.GFile(os.path.join(directory, name), "w") as f:
                f.write("".join(value + "\n" for value in values))
        buffer = io.BytesIO()
        np.savez(buffer, item_ids=np.array(self.item_ids, dtype=str),
                 item_tokens=self.item_tokens, item_buckets=self.item_buckets)
        with tf.io.gfile.GFile(os.path.join(directory, "tables.npz"), "wb") as f:
            f.write(buffer.getvalue())
        self.model.save_weights(os.path.join(directory, WEIGHTS))

    @classmethod
    def load(cls, directory: str) -> Ranker:
        with tf.io.gfile.GFile(os.path.join(directory, RANKER_JSON)) as f:
            meta = json.loads(f.read())
        lists = {}
        for name in ("users.txt", "tokens.txt"):
            with tf.io.gfile.GFile(os.path.join(directory, name)) as f:
                lists[name] = f.read().splitlines()
        with tf.io.gfile.GFile(os.path.join(directory, "tables.npz"), "rb") as f:
            tables = np.load(io.BytesIO(f.read()))
        item_ids, tokens, buckets = (tables["item_ids"].tolist(), tables["item_tokens"],
                                     tables["item_buckets"])
        if (len(item_ids), len(lists["users.txt"])) != (meta["items"], meta["users"]):
            raise ValueError(f"ranker in {directory}: {len(item_ids)} items and "
                             f"{len(lists['users.txt'])} users, {RANKER_JSON} says "
                             f"{meta['items']} and {meta['users']}")
        ranker = cls(parse(RankingConfig, meta["config"]), item_ids, lists["users.txt"], tokens,
                     lists["tokens.txt"], buckets, meta.get("report"))
        ranker.model.load_weights(os.path.join(directory, WEIGHTS)).expect_partial()
        return ranker


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
