"""The fitted channels together: scoring a batch of requests with every
channel, the merged list, and the merge's search on eval clicks.

`Recall.fit` fits the non-neural channels of `recall.channels` on the
training clicks (the two-tower channel comes trained); `score_batch` gives,
for one batch, each channel's own scores, the merged scores and the merge
without each channel (its leave-one-out setting); `tune` chooses those
settings on eval clicks (`merge.search`).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402

from models import features  # noqa: E402
from models.channels import merge, related  # noqa: E402
from models.channels.base import Channel, Requests  # noqa: E402
from models.channels.clicks import Catalogue, Clicks, as_array  # noqa: E402
from models.channels.config import RecallConfig  # noqa: E402
from models.channels.content import ContentChannel  # noqa: E402
from models.channels.item2vec import Item2VecChannel  # noqa: E402
from models.channels.item_cf import ItemCfChannel  # noqa: E402
from models.channels.trending import TrendingChannel  # noqa: E402
from models.channels.wals import WalsChannel  # noqa: E402

MERGED = "merged"
WITHOUT = "merged_without_"


class Recall:
    """Channels over one catalogue, and the merge settings chosen for them."""

    def __init__(self, channels: dict[str, Channel], catalogue: Catalogue, tie: np.ndarray,
                 config: RecallConfig):
        self.channels = channels
        self.catalogue = catalogue
        self.tie = np.asarray(tie, np.float32)
        self.config = config
        self.setting = merge.MergeSetting.uniform(channels, 1.0, max(config.merge.quota_grid))
        # The merge without each channel (when there are at least two).
        self.without: dict[str, merge.MergeSetting] = {}
        self.reports: dict = {}
        # How each fitted channel was fitted (item_cf: EASE's lambda or kNN).
        self.fit_reports: dict = {}
        # `related_items`' neighbour weights `[N, N]` (`related.related_weights`)
        # and its baseline, co-occurrence counts `[N, N]`; None without a
        # channel that relates items.
        self.related: scipy.sparse.csr_matrix | None = None
        self.cooccurrence: scipy.sparse.csr_matrix | None = None

    @classmethod
    def fit(cls, clicks: Clicks, catalogue: Catalogue, config: RecallConfig,
            two_tower: Channel | None = None, item_features: dict | None = None) -> Recall:
        """Fits the channels of `config.channels` on `clicks`; `two_tower` is
        required if `config.channels` names it. `item_features`: the catalog's
        tokens per candidate (VocabStats `item_features.tsv`); without them
        the content channel is left out (`fit_reports["content"]` says so)."""
        trending = TrendingChannel.fit(clicks, config.trending)
        channels: dict[str, Channel] = {}
        for name in config.channels:
            if name == "two_tower":
                if two_tower is None:
                    raise ValueError("recall.channels names two_tower but no trained towers "
                                     "were given")
                channels[name] = two_tower
            elif name == "trending":
                channels[name] = trending
            elif name == "item_cf":
                channels[name] = ItemCfChannel.fit(clicks, config.item_cf)
            elif name == "wals":
                channels[name] = WalsChannel.fit(clicks, config.wals)
            elif name == "item2vec":
                channels[name] = Item2VecChannel.fit(clicks, catalogue, config.item2vec,
                                                     item_features)
            elif name == "content" and item_features:
                channels[name] = ContentChannel.fit(item_features, config.content)
        recall = cls(channels, catalogue, trending.counts, config)
        for name, channel in channels.items():
            if getattr(channel, "report", None):
                recall.fit_reports[name] = channel.report
        if "content" in config.channels and "content" not in channels:
            recall.fit_reports["content"] = {"skipped": "no item catalog (vocab.item_catalog)"}
        recall.related, report = related.related_weights(channels, config.item_cf.neighbours)
        if recall.related is not None:
            recall.fit_reports["related_items"] = report
            recall.cooccurrence = related.cooccurrence(clicks.matrix(), config.item_cf.neighbours)
        return recall

    def related_hits(self, batches, k: int) -> dict:
        """Next-click hit rate@k of `related_items` (`self.related`), of the
        co-occurrence baseline and, when item2vec is the source, of item_cf's
        neighbours, each eval click asked with its history's most recent
        catalogue item (clicks without one skipped)."""
        others = {"cooccurrence": self.cooccurrence}
        if "item_cf" in self.channels and "item2vec" in self.channels:
            others["item_cf"] = self.channels["item_cf"].weights
        clicks, hits = 0, 0
        other_hits = dict.fromkeys(others, 0)
        for batch in batches:
            items, targets = [], []
            for row, target in zip(as_array(batch[features.HISTORY]),
                                   as_array(batch[features.ITEM_ID]), strict=True):
                known = [self.catalogue.index[i.decode()] for i in row
                         if i and i.decode() in self.catalogue.index]
                target = self.catalogue.index.get(target.decode(), -1)
                if known:
                    items.append(known[-1])
                    targets.append(target)
            items, targets = np.asarray(items, np.int64), np.asarray(targets, np.int64)
            clicks += len(items)
            hits += related.next_click_hits(self.related, items, targets, self.tie, k)
            for name, weights in others.items():
                other_hits[name] += related.next_click_hits(weights, items, targets, self.tie, k)
        result = {"clicks": clicks, "source": self.fit_reports.get("related_items", {}),
                  f"hit@{k}": round(hits / max(clicks, 1), 4)}
        for name, count in other_hits.items():
            result[f"{name}_hit@{k}"] = round(count / max(clicks, 1), 4)
        return result

    @property
    def depth(self) -> int:
        return max(self.config.merge.quota_grid)

    def requests(self, batch: dict) -> Requests:
        return Requests(batch, self.catalogue.rows(as_array(batch[features.HISTORY])))

    def ranked(self, requests: Requests, given: dict | None = None) -> tuple[dict, dict]:
        """({channel: (scores, answered)}, {channel: ranked list `[Q, depth]`});
        `given`: {channel: (scores, answered)} already computed for these requests."""
        given = given or {}
        outputs = {name: given[name] if name in given else channel.score(requests)
                   for name, channel in self.channels.items()}
        lists = {name: merge.ranked_lists(scores, answered, requests.rows, self.depth)
                 for name, (scores, answered) in outputs.items()}
        return outputs, lists

    def buckets(self, requests: Requests) -> np.ndarray:
        return merge.bucket_index(requests.history_lengths(), self.config.merge.short_history_max)

    def fuse(self, lists: dict, buckets: np.ndarray, setting: merge.MergeSetting,
             seen: scipy.sparse.csr_matrix | None = None) -> np.ndarray:
        return merge.fuse(lists, buckets, setting, self.tie, self.config.merge.rrf_k, seen)

    def merged_scores(self, batch: dict) -> np.ndarray:
        """float32 `[Q, N]` merged scores of a batch with its history items
        at -inf (what the exports' merged list ranks)."""
        requests = self.requests(batch)
        _, lists = self.ranked(requests)
        return self.fuse(lists, self.buckets(requests), self.setting, requests.rows)

    def score_batch(self, batch: dict, given: dict | None = None) -> dict[str, np.ndarray]:
        """{channel: its scores, `merged`: the merged scores, `merged_without_<channel>`:
        the merge without it}, each float32 `[Q, N]`; `given` as in `ranked`."""
        requests = self.requests(batch)
        outputs, lists = self.ranked(requests, given)
        buckets = self.buckets(requests)
        scores = {name: values for name, (values, _) in outputs.items()}
        scores[MERGED] = self.fuse(lists, buckets, self.setting)
        for name, setting in self.without.items():
            scores[WITHOUT + name] = self.fuse(
                {c: r for c, r in lists.items() if c != name}, buckets, setting)
        return scores

    def tune(self, batches, k: int) -> dict:
        """Chooses the merge settings (and each leave-one-out's) on the clicks
        of `batches`, maximising hit rate@k; returns the search reports."""
        parts: dict[str, list] = {name: [] for name in self.channels}
        buckets, targets, seen = [], [], []
        for batch in batches:
            requests = self.requests(batch)
            _, lists = self.ranked(requests)
            for name, ranked in lists.items():
                parts[name].append(ranked)
            buckets.append(self.buckets(requests))
            items = [i.decode() if isinstance(i, bytes) else i
                     for i in as_array(batch[features.ITEM_ID])]
            targets.append(np.array([self.catalogue.index.get(i, -1) for i in items]))
            seen.append(requests.rows)
        if not buckets:
            raise ValueError("recall: no eval click to choose the merge on")
        lists = {name: np.concatenate(values) for name, values in parts.items()}
        data = (np.concatenate(buckets), np.concatenate(targets), scipy.sparse.vstack(seen).tocsr())
        self.setting, report = merge.search(lists, data[0], data[1], data[2], self.tie,
                                            self.config.merge, k)
        self.reports = {MERGED: {"setting": self.setting.to_dict(), "search": report}}
        self.without = {}
        if len(lists) > 1:
            for name in lists:
                rest = {c: r for c, r in lists.items() if c != name}
                self.without[name], report = merge.search(rest, *data, self.tie,
                                                          self.config.merge, k)
                self.reports[WITHOUT + name] = {"setting": self.without[name].to_dict(),
                                                "search": report}
        return self.reports
