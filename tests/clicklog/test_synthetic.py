"""The synthetic generator: impressions of disliked items, clicks unchanged by them."""

import csv

from clicklog import synthetic

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
