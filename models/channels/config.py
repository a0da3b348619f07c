"""The `recall` section: which channels run, each channel's settings, and
how their lists are merged (docs/channels.md)."""

from __future__ import annotations

import dataclasses

from clicklog.config import Config, section, setting

CHANNELS = ("two_tower", "trending", "item_cf", "wals", "item2vec", "content")


@dataclasses.dataclass(frozen=True)
class TrendingChannelConfig(Config):
    """Recency-weighted popularity: a click `d` days before the newest one
    counts `0.5 ** (d / half_life_days)`."""

    KEY = "recall.trending"
    # Measured on MovieTweetings' eval split (docs/channels.md): hit@100 0.4009
    # at 14 days against 0.3989 at 7, 0.3862 at 30 and 0.3918 for the
    # recent-window count.
    half_life_days: float = setting(14.0, gt=0.0)


@dataclasses.dataclass(frozen=True)
class ItemCfChannelConfig(Config):
    """EASE up to `ease_max_items` candidates (lambda chosen among `ease_lambdas`
    on the last `validation_fraction` of the training clicks), item-kNN beyond;
    each item keeps its `neighbours` largest weights."""

    KEY = "recall.item_cf"
    ease_max_items: int = setting(20_000, min=1)
    # Validation hit@100 peaks inside the grid: MovieTweetings 0.3856 / 0.3874 /
    # 0.3864 at 500 / 1000 / 2000, synthetic 0.4264 / 0.4302 / 0.4284 at 200 /
    # 500 / 1000 (50 and 4000 were lower on both). One lambda: no validation.
    ease_lambdas: tuple[float, ...] = setting((200.0, 500.0, 1000.0, 2000.0), gt=0.0)
    validation_fraction: float = setting(0.1, gt=0.0, lt=1.0)
    validation_clicks: int = setting(5000, min=1)
    # MovieTweetings hit@100 with EASE's rows cut to their 100 largest
    # weights: 0.3682, against 0.3679 for the full rows (0.3603 at 50).
    neighbours: int = setting(100, min=1)


@dataclasses.dataclass(frozen=True)
class WalsChannelConfig(Config):
    """Implicit ALS: confidence `alpha` on a click, 1 elsewhere."""

    KEY = "recall.wals"
    # Few factors and strong regularisation: on MovieTweetings (median user: 2
    # clicks) hit@100 is 0.34 at 16 factors / 50 and 0.28 at 64 / 0.05.
    factors: int = setting(16, min=1)
    regularization: float = setting(50.0, min=0.0)
    alpha: float = setting(40.0, gt=1.0)
    iterations: int = setting(15, min=1)
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Item2VecChannelConfig(Config):
    """Skip-gram with negative sampling over sessions of each user's clicks
    (a new session after `session_gap_hours` without a click), trained with
    TensorFlow. Airbnb's additions (Grbovic and Cheng, KDD 2018) are options:
    `global_context` adds each session's last item as a context of every item
    in it, `same_category_negatives` draws that many of each pair's negatives
    from the positive's own category (catalog feature `category_feature`). A
    request is the mean centre vector of its `pool_items` most recent history
    items, scored against every item's context vector."""

    KEY = "recall.item2vec"
    # hours; 0 keeps each user's clicks as one session. MovieTweetings is a
    # rating log over years: related items' next-click hit@20 0.152 with one
    # session per user, 0.143 / 0.123 / 0.096 with 7-day / 1-day / 1-hour gaps.
    session_gap_hours: float = setting(0.0, min=0.0)
    dim: int = setting(32, min=2)
    window: int = setting(5, min=1)
    negatives: int = setting(5, min=1)
    # Negatives drawn by count ** power. Uniform (0) keeps popularity in the
    # logit: MovieTweetings related items' next-click hit@20 0.152 at 0,
    # 0.133 at 0.5 and 0.110 at word2vec's 0.75 (docs/item2vec.md).
    sampling_power: float = setting(0.0, min=0.0)
    epochs: int = setting(5, min=1)
    batch_size: int = setting(4096, min=1)
    learning_rate: float = setting(0.01, gt=0.0)
    # Pairs per epoch at most (sampled uniformly when there are more).
    max_pairs: int = setting(5_000_000, min=1)
    # MovieTweetings (docs/item2vec.md), hit@100 alone with a long history
    # 0.371 against 0.348 without; related items' next-click hit@20 0.168
    # against 0.152. Synthetic: equal.
    global_context: bool = True
    same_category_negatives: int = setting(0, min=0)
    category_feature: str = "genres"
    pool_items: int = setting(10, min=1)
    seed: int = 0

    def check(self) -> None:
        if self.same_category_negatives > self.negatives:
            raise self.error("same_category_negatives",
                             f"at most negatives ({self.negatives})")


@dataclasses.dataclass(frozen=True)
class ContentChannelConfig(Config):
    """TF-IDF over the catalog's item features (each token prefixed by its
    feature's name), unit item vectors; a request's profile is the mean of
    its history items' vectors, scored by cosine. Reaches items without a
    click; without a catalog (no item features) the channel is left out."""

    KEY = "recall.content"
    # Tokens on fewer items are dropped.
    min_items: int = setting(2, min=1)


@dataclasses.dataclass(frozen=True)
class MergeConfig(Config):
    """Weighted reciprocal-rank fusion: a channel's item at rank r (1-based,
    r <= its quota) adds `weight / (rrf_k + r)`; weights and quotas per
    history bucket (none; short: 1 .. `short_history_max` items; long) are
    chosen on eval clicks by coordinate ascent over the grids, on the hit
    rate at the K the evaluator blesses on (`evaluation.blessing_k`)."""

    KEY = "recall.merge"
    rrf_k: float = setting(60.0, min=0.0)
    short_history_max: int = setting(5, min=1)
    weight_grid: tuple[float, ...] = setting((0.0, 0.25, 0.5, 1.0, 2.0, 4.0), min=0.0)
    quota_grid: tuple[int, ...] = setting((50, 100, 200), min=1)
    rounds: int = setting(2, min=1)

    def check(self) -> None:
        if not any(self.weight_grid):
            raise self.error("weight_grid", "at least one weight above 0")
        if not self.quota_grid:
            raise self.error("quota_grid", "at least one quota")


@dataclasses.dataclass(frozen=True)
class RecallConfig(Config):
    KEY = "recall"
    channels: tuple[str, ...] = setting(CHANNELS, choices=CHANNELS)
    trending: TrendingChannelConfig = section(TrendingChannelConfig)
    item_cf: ItemCfChannelConfig = section(ItemCfChannelConfig)
    wals: WalsChannelConfig = section(WalsChannelConfig)
    item2vec: Item2VecChannelConfig = section(Item2VecChannelConfig)
    content: ContentChannelConfig = section(ContentChannelConfig)
    merge: MergeConfig = section(MergeConfig)

    def check(self) -> None:
        if not self.channels:
            raise self.error("channels", f"at least one of {list(CHANNELS)}")
        if len(set(self.channels)) != len(self.channels):
            raise self.error("channels", "each channel once")
