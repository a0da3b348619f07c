"""VocabStatsGen's settings: the `vocab` section (docs/configuration.md)."""

from __future__ import annotations

import dataclasses

from clicklog.catalog import CatalogConfig
from clicklog.config import Config, setting


@dataclasses.dataclass(frozen=True)
class VocabConfig(Config):
    """Vocabulary limits, the recent window and the optional item catalog."""

    KEY = "vocab"
    # The splits whose clicks make the vocabulary and statistics: the
    # training split; the final fit on every click counts train and eval.
    count_splits: tuple[str, ...] = setting(("train",), choices=("train", "eval", "test"))
    min_item_count: int = setting(1, min=0)
    max_items: int = setting(0, min=0)  # 0 = no limit
    min_user_count: int = setting(1, min=0)
    max_users: int = setting(0, min=0)  # 0 = no limit
    min_feature_count: int = setting(1, min=0)
    max_feature_values: int = setting(0, min=0)  # per string feature; 0 = no limit
    # Ids outside the vocabulary hash into this many OOV buckets (recorded in stats.json).
    num_oov_buckets: int = setting(1, min=1)
    # Negative-sampling distribution: count^alpha, normalised (0.75 as word2vec).
    negative_sampling_alpha: float = setting(0.75, min=0.0, max=1.0)
    # The last `recent_fraction` of the training period counts as "recent",
    # unless `recent_window_seconds` (> 0) fixes the window length.
    recent_fraction: float = setting(0.1, gt=0.0, max=1.0)
    recent_window_seconds: int = setting(0, min=0)
    # Item side features from a catalog file joined by item id; its items are
    # candidates too (clicklog/catalog.py, item_catalog.py).
    item_catalog: CatalogConfig | None = None

    def check(self) -> None:
        if not self.count_splits or len(set(self.count_splits)) != len(self.count_splits):
            raise self.error("count_splits", "a non-empty list of distinct split names")
