"""Beam transforms of VocabStatsGen: vocabularies and item frequency statistics.

From the training split it counts clicks per item and per user, the clicks
per item in the most recent part of the training period (trending), and the
time range. Only per-key aggregates reach the single writer step, so memory
is bounded by the vocabulary, never by the number of clicks.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from models import config_dict, features
from models import vocab as vocab_lib


@dataclasses.dataclass(frozen=True)
class VocabConfig:
    """Settings of VocabStatsGen."""

    min_item_count: int = 1
    max_items: int = 0  # 0 = no limit
    min_user_count: int = 1
    max_users: int = 0  # 0 = no limit
    # The last `recent_fraction` of the training period counts as "recent".
    recent_fraction: float = 0.1

    def __post_init__(self):
        for name in ("min_item_count", "min_user_count", "max_items", "max_users"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"vocab.{name}={value!r}: expected a non-negative integer")
        if not 0.0 < self.recent_fraction <= 1.0:
            raise ValueError(f"vocab.recent_fraction={self.recent_fraction!r}: expected a "
                             "number in (0, 1]")

    @classmethod
    def from_dict(cls, values: dict | None) -> VocabConfig:
        return config_dict.from_dict(cls, values, "vocab")


def parse_click(serialized: bytes) -> tuple[str, str, int]:
    """Serialized click tf.Example -> (user_id, item_id, timestamp)."""
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    feature = example.features.feature
    return (feature[features.USER_ID].bytes_list.value[0].decode(),
            feature[features.ITEM_ID].bytes_list.value[0].decode(),
            int(feature[features.TIMESTAMP].int64_list.value[0]))


def keep_top(counts: list[tuple[str, float]], min_count: int, max_size: int) -> list:
    """Entries with count >= min_count, the `max_size` largest (0 = all)."""
    kept = sorted((kv for kv in counts if kv[1] >= min_count), key=lambda kv: (-kv[1], kv[0]))
    return kept[:max_size] if max_size else kept


def write_outputs(_, item_counts, recent_counts, user_counts, time_range, directory: str,
                  config: VocabConfig) -> dict:
    """Single writer step: applies limits and writes the VocabStats files."""
    recent = dict(recent_counts)
    items = keep_top(item_counts, config.min_item_count, config.max_items)
    users = keep_top(user_counts, config.min_user_count, config.max_users)
    min_ts, max_ts, clicks = time_range
    stats = {
        "num_clicks": clicks,
        "num_items": len(items),
        "num_items_before_limits": len(item_counts),
        "num_users": len(users),
        "num_users_before_limits": len(user_counts),
        "min_timestamp": min_ts,
        "max_timestamp": max_ts,
        "recent_start_timestamp": recent_start(min_ts, max_ts, config.recent_fraction),
        "config": dataclasses.asdict(config),
    }
    vocab_lib.write_vocab(directory, [(i, c, recent.get(i, 0)) for i, c in items], users, stats)
    return stats


def recent_start(min_ts: int, max_ts: int, fraction: float) -> int:
    return int(max_ts - fraction * (max_ts - min_ts))


class _TimeRange(beam.CombineFn):
    def create_accumulator(self):
        return (None, None, 0)

    def add_input(self, acc, ts):
        lo, hi, n = acc
        return (ts if lo is None else min(lo, ts), ts if hi is None else max(hi, ts), n + 1)

    def merge_accumulators(self, accs):
        result = self.create_accumulator()
        for lo, hi, n in accs:
            if lo is not None:
                result = (lo if result[0] is None else min(result[0], lo),
                          hi if result[1] is None else max(result[1], hi), result[2] + n)
        return result

    def extract_output(self, acc):
        return acc


class ComputeVocabStats(beam.PTransform):
    """Serialized training click examples -> VocabStats files in `directory`."""

    def __init__(self, directory: str, config: VocabConfig):
        super().__init__()
        self._directory = directory
        self._config = config

    def expand(self, serialized):
        clicks = serialized | "ParseClicks" >> beam.Map(parse_click)
        time_range = (clicks | "Timestamps" >> beam.Map(lambda c: c[2])
                      | "TimeRange" >> beam.CombineGlobally(_TimeRange()))
        fraction = self._config.recent_fraction
        item_counts = (clicks | "ItemKeys" >> beam.Map(lambda c: (c[1], 1))
                       | "CountItems" >> beam.CombinePerKey(sum))
        user_counts = (clicks | "UserKeys" >> beam.Map(lambda c: (c[0], 1))
                       | "CountUsers" >> beam.CombinePerKey(sum))
        recent_counts = (
            clicks
            | "RecentClicks" >> beam.Filter(
                lambda c, rng: rng[0] is not None
                and c[2] >= recent_start(rng[0], rng[1], fraction),
                rng=beam.pvalue.AsSingleton(time_range))
            | "RecentKeys" >> beam.Map(lambda c: (c[1], 1))
            | "CountRecent" >> beam.CombinePerKey(sum))
        return (
            serialized.pipeline
            | "Trigger" >> beam.Create([None])
            | "Write" >> beam.Map(
                write_outputs,
                item_counts=beam.pvalue.AsList(item_counts),
                recent_counts=beam.pvalue.AsList(recent_counts),
                user_counts=beam.pvalue.AsList(user_counts),
                time_range=beam.pvalue.AsSingleton(time_range),
                directory=self._directory, config=self._config))
