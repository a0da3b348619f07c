"""The synthetic generator's options: off, a seed's log is unchanged; order
(chains: a share of clicks follows the user's previous click in its
category's cycle); impressions of disliked items, clicks unchanged by them."""

import collections
import csv
import dataclasses
import hashlib

import numpy as np
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


CONFIG = synthetic.SyntheticConfig(num_users=60, num_items=40, num_categories=4,
                                   clicks_per_user=6, seed=2)


def test_impressions_show_disliked_items_just_before_clicks_and_leave_clicks_as_they_were(
        tmp_path):
    plain = synthetic.generate_log(CONFIG)
    log = synthetic.generate_log(synthetic.SyntheticConfig(
        **{**CONFIG.__dict__, "impressions_per_click": 3}))
    assert plain.impressions == [] and log.clicks == plain.clicks
    assert 0 < len(log.impressions) <= 3 * len(log.clicks)
    clicked = {}
    for user, item, _ in log.clicks:
        clicked.setdefault(user, set()).add(log.item_category[item])
    times = {}
    for user, _, timestamp in log.clicks:
        times.setdefault(user, []).append(timestamp)
    for user, item, timestamp in log.impressions:
        # From a category the user never clicks (below DISLIKE of their taste,
        # almost surely unclicked), within the minute before one of their clicks.
        assert log.item_category[item] not in clicked[user]
        assert any(0 <= t - timestamp < 60 for t in times[user])


def test_the_csv_has_an_event_column_only_with_impressions(tmp_path):
    with open(synthetic.write(CONFIG, str(tmp_path / "plain"))) as f:
        assert next(csv.reader(f)) == ["user_id", "item_id", "timestamp"]
    config = synthetic.SyntheticConfig(**{**CONFIG.__dict__, "impressions_per_click": 2})
    with open(synthetic.write(config, str(tmp_path / "shown"))) as f:
        rows = list(csv.DictReader(f))
    assert {r["event"] for r in rows} == {"click", "impression"}
    assert sum(r["event"] == "click" for r in rows) == len(synthetic.generate(CONFIG)[0])
    assert synthetic.main(["--output", str(tmp_path / "cli"), "--num_users", "20",
                           "--impressions_per_click", "1"]) == 0


def _window(clicks, window=0.1):
    start = clicks[int(len(clicks) * (1 - window))][2]
    first: dict[str, int] = {}
    for user, _, time in clicks:
        first.setdefault(user, time)
    return [(user, first[user] >= start) for user, _, time in clicks if time >= start]


@pytest.mark.parametrize("share", [0.3, 0.7])
def test_new_accounts_hold_the_asked_share_of_the_newest_clicks(share):
    config = synthetic.SyntheticConfig(num_users=600, num_items=120, seed=4)
    plain, _ = synthetic.generate(config)
    clicks, _ = synthetic.generate(dataclasses.replace(config, new_user_click_share=share))
    window = _window(clicks)
    new = np.mean([is_new for _, is_new in window])
    # Whole users are moved, so the share overshoots by at most one user's clicks.
    assert share <= new < share + 0.05
    assert np.mean([is_new for _, is_new in _window(plain)]) < 0.1
    # The same clicks, only the window's clicks of the moved users renamed.
    assert [(i, t) for _, i, t in clicks] == [(i, t) for _, i, t in plain]
    renamed = {u for (u, *_), (p, *_) in zip(clicks, plain, strict=True) if u != p}
    assert renamed and all(u.startswith("n") for u in renamed)


def test_a_new_user_share_outside_0_1_is_refused():
    config = synthetic.SyntheticConfig(num_users=50, num_items=20, new_user_click_share=1.0)
    with pytest.raises(ValueError, match="new_user_click_share=1.0"):
        synthetic.generate(config)
