"""The trending prior inside training (`model.prior.in_training`).

The served score can add `w * log1p(item's clicks in VocabStats' recent
window)` (the trending prior, `towers_export.TowersModule`). Without this
option the towers never see that term in training: they are fitted to the
whole training period's clicks, popularity included, and the prior is
bolted on afterwards. With it, the softmax logit of query i and candidate j
gets `beta * log1p(clicks of j in the recent window before i's click)`, the
same quantity the served prior measures at the end of training, with `beta`
learned. The towers then learn what the trending popularity of the moment
does not explain; the export applies `w = temperature * beta` (logits are
scores / temperature). This is the popularity-deconfounded training of PDA
(Zhang et al., "Causal Intervention for Leveraging Popularity Bias in
Recommendation", SIGIR 2021), with the item's popularity in a window before
each click as the time-local popularity and the latest window's at serving.

Counts are kept per time bucket (`BUCKETS_PER_WINDOW` buckets per window):
`counts_before[item, b]` is the item's training clicks in buckets `< b`, so
the window before a click in bucket b is `counts_before[:, b] -
counts_before[:, b - BUCKETS_PER_WINDOW]` (the click's own bucket excluded:
no click counts itself). Memory: (items + 1) x (buckets + 1) floats, about
10 / recent_fraction + 2 columns (102 with the default 10% window).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.data import _expand  # noqa: E402

BUCKETS_PER_WINDOW = 10


def window_seconds(stats: dict) -> float:
    """Length of VocabStats' recent window (what the served prior counts)."""
    newest = float(stats.get("max_timestamp") or 0)
    if "recent_start_timestamp" in stats:
        return max(newest - float(stats["recent_start_timestamp"]), 1.0)
    oldest = float(stats.get("min_timestamp", newest))
    fraction = float((stats.get("config") or {}).get("recent_fraction", 0.1))
    return max((newest - oldest) * fraction, 1.0)


def _buckets(timestamps: np.ndarray, oldest: float, bucket_seconds: float) -> np.ndarray:
    """Bucket of each click: `floor((timestamp - oldest) / bucket_seconds)`, at least 0."""
    buckets = np.floor((np.asarray(timestamps, np.float64) - oldest) / bucket_seconds)
    return np.maximum(buckets, 0).astype(np.int64)


def _cumulative(table: np.ndarray) -> np.ndarray:
    table[0] = 0.0  # the OOV row: clicks of non-candidates are not counted
    return np.cumsum(table, axis=1)


def counts_before_from_files(train_files, item_ids: list[str], oldest: float,
                             bucket_seconds: float, batch_size: int = 65536) -> np.ndarray:
    """`[N + 1, buckets + 1]` float32 counts of the training example files:
    row r (item r - 1 of `item_ids`; row 0 the OOV bucket, all zeros) holds,
    at column b, the item's clicks in time buckets `< b`. Bucket of a click:
    `floor((timestamp - oldest) / bucket_seconds)`, at least 0; clicks of
    items outside `item_ids` are not counted. Read batch by batch: memory is
    the table (vocabulary x buckets), not the clicks."""
    spec = {features.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
            features.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64)}
    lookup = tf.keras.layers.StringLookup(vocabulary=item_ids, mask_token=None,
                                          num_oov_indices=1)  # 0: not a candidate
    dataset = tf.data.TFRecordDataset(_expand(train_files), compression_type="GZIP")
    table = np.zeros((len(item_ids) + 1, 2), np.float32)
    for batch in dataset.batch(batch_size):
        parsed = tf.io.parse_example(batch, spec)
        rows = lookup(parsed[features.ITEM_ID]).numpy()
        buckets = _buckets(parsed[features.TIMESTAMP].numpy(), oldest, bucket_seconds)
        width = int(buckets.max()) + 2
        if width > table.shape[1]:
            table = np.pad(table, ((0, 0), (0, width - table.shape[1])))
        np.add.at(table, (rows, buckets + 1), 1.0)
    return _cumulative(table)


class TrendingPrior(tf.keras.layers.Layer):
    """`beta * log1p(clicks of candidate j in the window before query i)`
    `[B, N]`, beta a learned scalar."""

    def __init__(self, item_ids: list[str], table: np.ndarray, oldest: float,
                 bucket_seconds: float, initial_beta: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.lookup = tf.keras.layers.StringLookup(vocabulary=item_ids, mask_token=None,
                                                   num_oov_indices=1)
        self.table = tf.constant(table)
        self.oldest = float(oldest)
        self.bucket_seconds = float(bucket_seconds)
        self.beta = self.add_weight(name="trending_beta", shape=(),
                                    initializer=tf.keras.initializers.Constant(initial_beta))

    def _window(self, timestamp: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`[B]` (start, end) table columns of each query's window."""
        last = tf.shape(self.table)[1] - 1
        bucket = tf.cast(tf.floor((tf.cast(timestamp, tf.float64) - self.oldest)
                                  / self.bucket_seconds), tf.int32)
        end = tf.clip_by_value(bucket, 0, last)
        return tf.clip_by_value(bucket - BUCKETS_PER_WINDOW, 0, last), end

    def window_counts(self, timestamp: tf.Tensor, candidate_ids: tf.Tensor) -> tf.Tensor:
        """`[B, N]` clicks of each candidate in the window before each query."""
        start, end = self._window(timestamp)
        rows = tf.gather(self.table, self.lookup(candidate_ids))  # [N, W]
        return tf.transpose(tf.gather(rows, end, axis=1) - tf.gather(rows, start, axis=1))

    def call(self, timestamp: tf.Tensor, candidate_ids: tf.Tensor) -> tf.Tensor:
        return self.beta * tf.math.log1p(self.window_counts(timestamp, candidate_ids))

    def per_query(self, timestamp: tf.Tensor, item_ids: tf.Tensor) -> tf.Tensor:
        """`[B, K]` prior of query i's own items `item_ids[i]` (`[B, K]`), e.g.
        its impressed negatives."""
        start, end = self._window(timestamp)
        rows = tf.gather(self.table, self.lookup(item_ids))  # [B, K, W]
        counts = (tf.gather(rows, end, axis=2, batch_dims=1)
                  - tf.gather(rows, start, axis=2, batch_dims=1))
        return self.beta * tf.math.log1p(counts)


def count_table(train_files, vocab) -> tuple[np.ndarray, float, float]:
    """`(counts_before table, oldest, bucket_seconds)` for `vocab`'s candidates,
    counted from the training clicks; one read of the files, shared by every
    ensemble member's layer (`build`)."""
    stats = vocab.stats
    if stats.get("min_timestamp") is None:
        raise ValueError("model.prior.in_training needs the training period's "
                         "min_timestamp in the VocabStats stats.json; it is missing (expected "
                         "a VocabStats written by VocabStatsGen)")
    oldest = float(stats["min_timestamp"])
    bucket = window_seconds(stats) / BUCKETS_PER_WINDOW
    return counts_before_from_files(train_files, vocab.item_ids, oldest, bucket), oldest, bucket


def build(vocab, counted: tuple[np.ndarray, float, float]) -> TrendingPrior:
    """The layer (with its own learned beta) over a `count_table` result."""
    table, oldest, bucket = counted
    return TrendingPrior(vocab.item_ids, table, oldest, bucket, name="trending_prior")
