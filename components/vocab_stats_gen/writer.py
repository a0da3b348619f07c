"""The single writer step of VocabStatsGen: limits, probabilities, files.

Runs once with vocabulary-sized side inputs (per-item / per-user / per-value
aggregates, never per click) and writes the VocabStats directory through
`models.vocab` so the Trainer reads it back without Beam.
"""

from __future__ import annotations

from components.vocab_stats_gen import item_catalog
from components.vocab_stats_gen.limits import keep_top
from models import vocab as vocab_lib


def recent_start(min_ts: int, max_ts: int, fraction: float, window_seconds: int = 0) -> int:
    """First timestamp of the recent window of a training period [min_ts, max_ts]."""
    if window_seconds:
        return int(max_ts - window_seconds)
    return int(max_ts - fraction * (max_ts - min_ts))


def negative_sampling_probabilities(counts: list[float], alpha: float) -> list[float]:
    """count^alpha normalised to sum 1 (alpha 0: uniform, 1: the logQ distribution)."""
    powered = [c ** alpha for c in counts]
    total = sum(powered)
    return [p / total for p in powered]


def split_stats(split_summaries, split_item_counts, kept_items: dict[str, int],
                counted: tuple[str, ...] = ("train",)) -> dict:
    """Per-split totals plus clicks on items outside the item vocabulary (of
    the `counted` splits; one counted split has no per-item counts of its own)."""
    oov_clicks: dict[str, int] = {}
    for (split, item), count in split_item_counts:
        if item not in kept_items:
            oov_clicks[split] = oov_clicks.get(split, 0) + count
    result = {}
    for split, summary in split_summaries:
        entry = dict(summary)
        if (split,) == tuple(counted):
            entry["item_oov_clicks"] = summary["num_clicks"] - sum(kept_items.values())
        else:
            entry["item_oov_clicks"] = oov_clicks.get(split, 0)
        entry["item_oov_rate"] = (entry["item_oov_clicks"] / summary["num_clicks"]
                                  if summary["num_clicks"] else 0.0)
        result[split] = entry
    return result


def item_feature_rows(kept: list[tuple[str, float]], item_features: dict,
                      names: list[str]) -> list[tuple[str, list[list[str]]]]:
    """(item_id, [tokens of each feature in `names` order]) in `kept` order;
    items without catalog features get empty token lists."""
    rows = []
    for item, _ in kept:
        tokens = dict(item_features.get(item, ()))
        rows.append((item, [list(tokens.get(name, ())) for name in names]))
    return rows


def write_outputs(_, candidates, recent_counts, user_counts, feature_counts, time_range,
                  totals, split_summaries, split_item_counts, directory: str, config,
                  catalog_counters=(), join_counters=()) -> dict:
    """Orders the candidates and writes items.tsv, item_stats.tsv, users.tsv,
    features/*.tsv, item_features.tsv (with a catalog) and stats.json; returns
    the stats dict.

    Args:
      candidates: (item_id, (count, weighted, first_ts, last_ts), features)
        of every candidate item (`item_catalog.JoinCatalog`, limits applied).
    """
    aggregates = {item: agg for item, agg, _ in candidates}
    item_features = {item: features for item, _, features in candidates}
    # Limits were applied in Beam; this only fixes the order (count desc, id).
    kept = keep_top([(item, agg[0]) for item, agg in aggregates.items()], 0, config.max_items)
    users = keep_top(user_counts, config.min_user_count, config.max_users)
    recent = dict(recent_counts)
    min_ts, max_ts, clicks = time_range
    if not any(count > 0 for _, count in kept):
        raise ValueError(
            f"VocabStatsGen: no item has at least vocab.min_item_count={config.min_item_count} "
            f"training clicks ({totals.get('items', 0)} distinct items in {clicks} clicks); "
            "expected a non-empty candidate vocabulary with clicked items")
    negative = negative_sampling_probabilities([c for _, c in kept],
                                               config.negative_sampling_alpha)
    total_count = float(sum(c for _, c in kept))
    item_rows = []
    for (item, count), negative_probability in zip(kept, negative, strict=True):
        _, weighted, first_ts, last_ts = aggregates[item]
        item_rows.append(vocab_lib.ItemStats(
            item_id=item, count=count, weighted_count=weighted,
            sampling_probability=count / total_count,
            negative_sampling_probability=negative_probability,
            recent_count=recent.get(item, 0), first_timestamp=first_ts, last_timestamp=last_ts))
    by_feature: dict[str, list] = {}
    for (name, value), count in feature_counts:
        by_feature.setdefault(name, []).append((value, count))
    feature_vocabs = {name: keep_top(values, config.min_feature_count,
                                     config.max_feature_values)
                      for name, values in sorted(by_feature.items())}
    stats = {
        "num_clicks": clicks,
        "total_weight": totals.get("weight", 0.0),
        "num_items": len(kept),
        "num_items_before_limits": totals.get("items", len(aggregates)),
        "num_users": len(users),
        "num_users_before_limits": totals.get("users", len(users)),
        "num_oov_buckets": config.num_oov_buckets,
        "negative_sampling_alpha": config.negative_sampling_alpha,
        "min_timestamp": min_ts,
        "max_timestamp": max_ts,
        "recent_start_timestamp": recent_start(min_ts, max_ts, config.recent_fraction,
                                               config.recent_window_seconds),
        "feature_vocabularies": {name: len(values) for name, values in feature_vocabs.items()},
        "splits": split_stats(split_summaries, split_item_counts, dict(kept),
                              config.count_splits),
        "config": config.to_dict(),
        "item_features": {},
    }
    catalog = config.item_catalog
    if catalog is not None:
        stats["item_features"] = dict(catalog.features)
        stats["catalog"] = item_catalog.catalog_report(catalog, catalog_counters, join_counters)
    vocab_lib.write_vocab(directory, [(r.item_id, r.count, r.recent_count) for r in item_rows],
                          users, stats)
    vocab_lib.write_item_stats(directory, item_rows)
    for name, values in feature_vocabs.items():
        vocab_lib.write_feature_vocab(directory, name, values)
    if catalog is not None:
        names = sorted(name for name, _ in catalog.features)
        vocab_lib.write_item_features(directory, names,
                                      item_feature_rows(kept, item_features, names))
    return stats
