import numpy as np
import pytest

from models.channels.base import Requests
from models.channels.clicks import Catalogue, from_lists
from models.channels.config import TrendingChannelConfig
from models.channels.trending import DAY, TrendingChannel, trending_counts


def test_a_click_counts_half_per_half_life_before_the_newest():
    catalogue = Catalogue(["old", "new", "unclicked"])
    clicks = from_lists(["u", "u", "v", "w"], ["old", "old", "new", "outside"],
                        [0, 0, 14 * DAY, 14 * DAY], catalogue)
    counts = trending_counts(clicks, half_life_days=7.0)
    # Two clicks two half-lives old against one of today.
    np.testing.assert_allclose(counts, [0.5, 1.0, 0.0])


def test_every_request_gets_the_same_answered_list():
    catalogue = Catalogue(["a", "b"])
    clicks = from_lists(["u", "v", "w"], ["a", "b", "b"], [0, 0, 0], catalogue)
    channel = TrendingChannel.fit(clicks, TrendingChannelConfig())
    scores, answered = channel.score(Requests({}, catalogue.rows([[], ["a"]])))
    assert scores.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert answered.tolist() == [True, True]


def test_half_life_must_be_positive():
    with pytest.raises(ValueError, match=r"recall.trending.half_life_days=0"):
        TrendingChannelConfig(half_life_days=0)
