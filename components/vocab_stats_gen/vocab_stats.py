"""Beam transforms of VocabStatsGen: vocabularies and item frequency statistics.

From the counted splits (`vocab.count_splits`: the training split; the
training and eval splits for the final fit on every click): clicks per item
and user, weighted clicks, first and last click time per item, clicks per
item in the recent window (trending), string feature value counts, and the
time range; from every split: per-split totals and how many clicks fall
outside the vocabularies. Only per-key
aggregates reach the single writer step (and with `max_items` / `max_users`
only the top entries), so memory is bounded by the vocabulary, never by the
number of clicks -- provided the caller passes the train split read a second
time (`ComputeVocabStats(train_again=...)`, as vocab_stats_gen does): the
recent-window filter waits for the train time range (a side input), and on
Beam's local runner a stage waiting for a side input has its whole main input
materialised first. Fed from the second read, that main input is a few file
ranges instead of every click.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from components.vocab_stats_gen import item_catalog, limits, writer
from components.vocab_stats_gen.config import VocabConfig
from components.vocab_stats_gen.writer import recent_start
from models import features

# bytes features that are not vocabularies of their own.
_NOT_FEATURE_VOCABS = (features.USER_ID, features.ITEM_ID, features.HISTORY)


@dataclasses.dataclass(frozen=True)
class ClickRecord:
    """The parts of a click example the statistics need."""

    user_id: str
    item_id: str
    timestamp: int
    weight: float = 1.0
    string_features: tuple = ()  # (name, (values...)) for every other bytes feature


def _example_features(serialized: bytes):
    """Serialized tf.Example -> its feature map."""
    from tensorflow.core.example import example_pb2

    return example_pb2.Example.FromString(serialized).features.feature


def _item_and_time(feature) -> tuple[str, int]:
    return (feature[features.ITEM_ID].bytes_list.value[0].decode(),
            int(feature[features.TIMESTAMP].int64_list.value[0]))


def parse_click(serialized: bytes) -> ClickRecord:
    """Serialized click tf.Example -> `ClickRecord`."""
    feature = _example_features(serialized)
    weight = feature[features.WEIGHT].float_list.value if features.WEIGHT in feature else [1.0]
    strings = tuple(sorted(
        (name, tuple(v.decode("utf-8", "replace") for v in value.bytes_list.value))
        for name, value in feature.items()
        if name not in _NOT_FEATURE_VOCABS and value.WhichOneof("kind") == "bytes_list"))
    return ClickRecord(feature[features.USER_ID].bytes_list.value[0].decode(),
                       *_item_and_time(feature), float(weight[0]) if weight else 1.0, strings)


def parse_item_time(serialized: bytes) -> tuple[str, int]:
    """Serialized click tf.Example -> (item id, timestamp), decoded as `parse_click`
    does: all the recent-window count needs, without decoding the other features."""
    return _item_and_time(_example_features(serialized))


class _TimeRange(beam.CombineFn):
    """timestamps -> (min, max, count); (None, None, 0) when empty."""

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


class ItemAggregate(beam.CombineFn):
    """(timestamp, weight) of one item's clicks -> (count, weighted, first_ts, last_ts)."""

    def create_accumulator(self):
        return (0, 0.0, None, None)

    def add_input(self, acc, click):
        n, w, lo, hi = acc
        ts, weight = click
        return (n + 1, w + weight, ts if lo is None else min(lo, ts),
                ts if hi is None else max(hi, ts))

    def merge_accumulators(self, accs):
        n, w, lo, hi = self.create_accumulator()
        for a_n, a_w, a_lo, a_hi in accs:
            if a_lo is None:
                continue
            n, w = n + a_n, w + a_w
            lo = a_lo if lo is None else min(lo, a_lo)
            hi = a_hi if hi is None else max(hi, a_hi)
        return (n, w, lo, hi)

    def extract_output(self, acc):
        return acc


def _limited(counts, min_count: int, max_size: int, label: str):
    """Per-key counts -> the entries the writer keeps (top `max_size` when set)."""
    kept = counts | f"{label}MinCount" >> beam.Filter(lambda kv: kv[1] >= min_count)
    if max_size:
        return (kept | f"{label}Top" >> beam.combiners.Top.Of(
                    max_size, key=lambda kv: (kv[1], limits.top_key(kv[0])))
                | f"{label}Flatten" >> beam.FlatMap(lambda top: top))
    return kept


class SplitSummary(beam.PTransform):
    """Clicks of one split -> (split, {num_clicks, num_users, min/max_timestamp})
    and, unless `with_items` is False, ((split, item), count) rows for the
    writer's out-of-vocabulary counts."""

    def __init__(self, split: str, with_items: bool = True):
        super().__init__()
        self._split = split
        self._with_items = with_items

    def expand(self, clicks):
        split = self._split
        time_range = clicks | "Times" >> beam.Map(lambda c: c.timestamp) | "Range" >> (
            beam.CombineGlobally(_TimeRange()))
        users = (clicks | "Users" >> beam.Map(lambda c: c.user_id) | "DistinctUsers" >> (
            beam.Distinct()) | "CountUsers" >> beam.combiners.Count.Globally())
        summary = (time_range | "Summary" >> beam.Map(
            lambda rng, n_users: (split, {"num_clicks": rng[2], "num_users": n_users,
                                          "min_timestamp": rng[0], "max_timestamp": rng[1]}),
            n_users=beam.pvalue.AsSingleton(users)))
        if not self._with_items:
            return summary, None
        item_counts = (clicks | "Items" >> beam.Map(lambda c: ((split, c.item_id), 1))
                       | "CountItems" >> beam.CombinePerKey(sum))
        return summary, item_counts


class ComputeVocabStats(beam.PTransform):
    """Serialized training click examples -> VocabStats files in `directory`.

    Args:
      directory: output directory.
      config: limits and windows.
      other_splits: {split name: serialized examples} for per-split stats:
        every split but the counted one when one split is counted (its
        summary comes from the input), every split when several are.
      catalog: `item_catalog.ReadItemCatalog` outputs ("items", "counters")
        when `config.item_catalog` is set.
      train_again: the same serialized training examples, read a second time
        (a separate read of the same files, not the input PCollection). The
        recent-window counts are computed from it, so the stage that waits for
        the time range reads its clicks from the files instead of having them
        all buffered in memory. Without it (fine for small inputs such as
        `beam.Create` in tests) memory grows with the number of training
        clicks on the local runner; a caller with large data should pass it.
    """

    def __init__(self, directory: str, config: VocabConfig, other_splits: dict | None = None,
                 catalog: dict | None = None, train_again: beam.PCollection | None = None):
        super().__init__()
        if (catalog is None) != (config.item_catalog is None):
            raise ValueError("ComputeVocabStats: pass the ReadItemCatalog outputs exactly when "
                             "vocab.item_catalog is set")
        self._directory = directory
        self._config = config
        self._other_splits = other_splits or {}
        self._catalog = catalog
        self._train_again = train_again

    def expand(self, serialized):
        config = self._config
        clicks = serialized | "ParseClicks" >> beam.Map(parse_click)
        time_range = (clicks | "Timestamps" >> beam.Map(lambda c: c.timestamp)
                      | "TimeRange" >> beam.CombineGlobally(_TimeRange()))
        item_stats = (clicks | "ItemClicks" >> beam.Map(
            lambda c: (c.item_id, (c.timestamp, c.weight)))
            | "AggregateItems" >> beam.CombinePerKey(ItemAggregate()))
        num_items_total = item_stats | "CountAllItems" >> beam.combiners.Count.Globally()
        total_weight = (clicks | "Weights" >> beam.Map(lambda c: c.weight)
                        | "TotalWeight" >> beam.CombineGlobally(sum))
        catalog = self._catalog or {}
        include_unclicked = bool(config.item_catalog and config.item_catalog.include_unclicked)
        catalog_items = catalog.get("items")
        if catalog_items is None:
            catalog_items = serialized.pipeline | "NoCatalog" >> beam.Create([])
        joined = ({"clicks": item_stats, "catalog": catalog_items}
                  | "JoinCatalog" >> item_catalog.JoinCatalog(
                      config.min_item_count, config.max_items, include_unclicked))
        catalog_counters = catalog.get("counters")
        if catalog_counters is None:
            catalog_counters = serialized.pipeline | "NoCatalogCounters" >> beam.Create([])
        user_counts = (clicks | "UserKeys" >> beam.Map(lambda c: (c.user_id, 1))
                       | "CountUsers" >> beam.CombinePerKey(sum))
        num_users_total = user_counts | "CountAllUsers" >> beam.combiners.Count.Globally()
        kept_users = _limited(user_counts, config.min_user_count, config.max_users, "Users")
        feature_counts = (
            clicks | "FeatureValues" >> beam.FlatMap(
                lambda c: [((name, v), 1) for name, values in c.string_features for v in values])
            | "CountFeatureValues" >> beam.CombinePerKey(sum)
            | "FeatureMinCount" >> beam.Filter(lambda kv: kv[1] >= config.min_feature_count))
        # The filter waits for the time range (a side input computed from all
        # train clicks). Beam's local runner cannot fuse it with the stage that
        # produces the time range, so it materialises the filter's whole main
        # input in memory until the range is ready. From `train_again` that
        # main input is the second read's file ranges and the clicks are
        # parsed only once the range is known; without it, every training
        # click's (item, timestamp) pair is held.
        if self._train_again is not None:
            item_times = self._train_again | "ParseItemTimesAgain" >> beam.Map(parse_item_time)
        else:
            item_times = clicks | "ItemTimes" >> beam.Map(lambda c: (c.item_id, c.timestamp))
        recent_counts = (
            item_times
            | "RecentClicks" >> beam.Filter(
                lambda item_ts, rng: rng[0] is not None and item_ts[1] >= recent_start(
                    rng[0], rng[1], config.recent_fraction, config.recent_window_seconds),
                rng=beam.pvalue.AsSingleton(time_range))
            | "RecentKeys" >> beam.Map(lambda item_ts: (item_ts[0], 1))
            | "CountRecent" >> beam.CombinePerKey(sum))
        summaries, split_items = [], []
        single = config.count_splits[0] if len(config.count_splits) == 1 else None
        splits = {single: clicks} if single else {}
        for name, other in sorted(self._other_splits.items()):
            splits[name] = other | f"Parse[{name}]" >> beam.Map(parse_click)
        for name, split_clicks in splits.items():
            # The counted split's OOV clicks follow from the kept item counts
            # (one counted split); no second per-item pass.
            summary, items = split_clicks | f"Split[{name}]" >> SplitSummary(
                name, with_items=name != single)
            summaries.append(summary)
            if items is not None:
                split_items.append(items)
        if not split_items:
            split_items.append(serialized.pipeline | "NoSplitItems" >> beam.Create([]))
        return (
            serialized.pipeline
            | "Trigger" >> beam.Create([None])
            | "Write" >> beam.Map(
                writer.write_outputs,
                candidates=beam.pvalue.AsList(joined["candidates"]),
                catalog_counters=beam.pvalue.AsList(catalog_counters),
                join_counters=beam.pvalue.AsList(joined["counters"]),
                recent_counts=beam.pvalue.AsList(recent_counts),
                user_counts=beam.pvalue.AsList(kept_users),
                feature_counts=beam.pvalue.AsList(feature_counts),
                time_range=beam.pvalue.AsSingleton(time_range),
                totals=beam.pvalue.AsDict(
                    (num_items_total | "ItemsTotal" >> beam.Map(lambda n: ("items", n)),
                     num_users_total | "UsersTotal" >> beam.Map(lambda n: ("users", n)),
                     total_weight | "WeightTotal" >> beam.Map(lambda w: ("weight", w)))
                    | "Totals" >> beam.Flatten()),
                split_summaries=beam.pvalue.AsList(summaries | "AllSummaries" >> beam.Flatten()),
                split_item_counts=beam.pvalue.AsList(
                    split_items | "AllSplitItems" >> beam.Flatten()),
                directory=self._directory, config=config))
