"""The trending channel: every click of the fit counted with a weight that
halves every `half_life_days` before the newest click; the same list for
every request."""

from __future__ import annotations

import numpy as np

from models.channels.base import Requests
from models.channels.clicks import NOT_A_CANDIDATE, Clicks
from models.channels.config import TrendingChannelConfig

DAY = 86400.0


def trending_counts(clicks: Clicks, half_life_days: float) -> np.ndarray:
    """float64 `[N]`: sum over each candidate's clicks of `0.5 ** (age / half-life)`,
    age measured from the newest click."""
    known = clicks.items != NOT_A_CANDIDATE
    age_days = (clicks.timestamps.max() - clicks.timestamps[known]) / DAY
    weights = np.power(0.5, age_days / half_life_days)
    return np.bincount(clicks.items[known], weights=weights, minlength=clicks.num_items)


class TrendingChannel:
    name = "trending"

    def __init__(self, counts: np.ndarray):
        self.counts = np.asarray(counts, np.float32)

    @classmethod
    def fit(cls, clicks: Clicks, config: TrendingChannelConfig) -> TrendingChannel:
        return cls(trending_counts(clicks, config.half_life_days))

    def score(self, requests: Requests) -> tuple[np.ndarray, np.ndarray]:
        return (np.tile(self.counts, (len(requests), 1)),
                np.ones(len(requests), bool))
