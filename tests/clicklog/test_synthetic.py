"""The synthetic log's order option: off, a seed's log is unchanged; on,
that share of clicks follows the user's previous click in its category's
cycle."""

import collections
import hashlib

import pytest

from clicklog import synthetic

SMALL = {"num_users": 50, "num_items": 40, "num_categories": 4, "seed": 3}


def _by_user(clicks):
    by_user = collections.defaultdict(list)
    for user, item, _ in clicks:  # clicks are in time order
        by_user[user].append(item)
    return by_user


def test_without_chains_a_seed_draws_the_same_log_as_before_the_option():
    clicks, _ = synthetic.generate(synthetic.SyntheticConfig(**SMALL))
    assert len(clicks) == 972
    assert hashlib.sha256(repr(clicks).encode()).hexdigest()[:16] == "e9aafec5a423521b"


def test_chained_clicks_follow_the_previous_item_in_its_category():
    clicks, category = synthetic.generate(synthetic.SyntheticConfig(
        **{**SMALL, "num_users": 300, "late_item_share": 0.0, "chain_probability": 0.6}))
    pairs = [(a, b) for items in _by_user(clicks).values()
             for a, b in zip(items[:-1], items[1:], strict=True)]
    # An item's most frequent next click is its successor in the cycle
    # (judged on items with at least 10 next clicks).
    successor = {}
    for (a, b), _ in collections.Counter(pairs).most_common()[::-1]:
        successor[a] = b
    frequent = {a for a, n in collections.Counter(a for a, _ in pairs).items() if n >= 10}
    assert len(frequent) >= 20
    assert all(category[a] == category[successor[a]] for a in frequent)
    # A cycle: no two items share a successor.
    assert len({successor[a] for a in frequent}) == len(frequent)
    pairs = [(a, b) for a, b in pairs if a in frequent]
    followed = sum(successor[a] == b for a, b in pairs) / len(pairs)
    # 0.6 of the clicks chained (every item released from the start), plus
    # taste draws that land on the successor by chance.
    assert followed == pytest.approx(0.6, abs=0.06)
