"""Seeded synthetic click logs with a known structure (`retrieval-datagen`).

The structure a retrieval model should recover:
  * every item belongs to one of `num_categories` categories and has a Zipf
    popularity rank inside its category;
  * every user has a taste over categories drawn from a sparse Dirichlet, so
    most of a user's clicks fall in one or two categories;
  * items are released over time and a click only picks released items, so
    popularity drifts (new items take over later weeks); `late_item_share`
    of the catalogue is released during the period, the rest exists from the
    start;
  * a user's clicks are spread over sessions of consecutive timestamps;
    `new_user_share` of the users join during the period (their sessions
    start at a random time), the rest are active from the start;
  * with `new_user_click_share` > 0, new users in the newest
    `new_user_window` of the clicks (the eval split of the same fraction):
    whole users, in a seeded order, hand their clicks in that window to a
    new account (same taste, no earlier click) until the accounts hold that
    share of the window's clicks;
  * with `chain_probability` > 0, order: each category's items form a fixed
    random cycle, and with that probability a click is the item after the
    user's previous click in its cycle (when released), otherwise a taste
    draw. Only a model that reads the history's order knows which item that
    is (tests/models/test_sequence_quality.py); at 0 (the default) clicks
    are independent draws and a seed's log is the same as before the option.

A model that uses the user's history should beat global popularity by a wide
margin; tests rely on that.

With `impressions_per_click` > 0, each click also comes with that many
impressions (``event`` column ``impression``; clicks are ``click``): items the
user was shown in the minute before the click and passed over, drawn by
popularity from the released items of the categories the user dislikes
(taste below `DISLIKE`). They are what a model leaning on popularity would
show, and they say which categories each user does not want; the clicks
(drawn from their own random stream) are the same as without them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys

import numpy as np


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    num_users: int = 2000
    num_items: int = 500
    num_categories: int = 10
    clicks_per_user: float = 20.0  # Poisson mean, at least 2 per user
    taste_concentration: float = 0.1  # Dirichlet alpha; small = focused users
    zipf_exponent: float = 1.1
    start_timestamp: int = 1_600_000_000
    days: int = 60
    late_item_share: float = 0.5
    new_user_share: float = 0.0
    new_user_click_share: float = 0.0  # of the newest `new_user_window` of the clicks
    new_user_window: float = 0.1
    chain_probability: float = 0.0
    impressions_per_click: int = 0  # shown and not clicked, per click (module docstring)
    seed: int = 0


# A category with a smaller share of a user's taste is one the user dislikes.
DISLIKE = 0.02
IMPRESSION = "impression"
CLICK = "click"


@dataclasses.dataclass(frozen=True)
class SyntheticLog:
    """A drawn log: clicks and impressions as (user_id, item_id, timestamp)
    sorted by timestamp, and each item's category index."""

    clicks: list[tuple[str, str, int]]
    impressions: list[tuple[str, str, int]]
    item_category: dict[str, int]


def generate(config: SyntheticConfig) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
    """Draws a click log.

    Returns:
      (clicks, item_category): clicks as (user_id, item_id, timestamp) sorted
      by timestamp; item_category maps item_id to its category index.
    """
    log = generate_log(config)
    return log.clicks, log.item_category


def generate_log(config: SyntheticConfig) -> SyntheticLog:
    """Draws a click log and, with `impressions_per_click`, its impressions."""
    rng = np.random.default_rng(config.seed)
    span = config.days * 86_400
    item_category = rng.integers(0, config.num_categories, size=config.num_items)
    # The first items exist from the start; the last `late_item_share` of the
    # catalogue is released uniformly over the period.
    early_items = config.num_items - int(round(config.late_item_share * config.num_items))
    release = np.where(np.arange(config.num_items) < early_items, 0,
                       rng.integers(0, span, size=config.num_items))
    rank_in_category = np.zeros(config.num_items)
    for category in range(config.num_categories):
        members = np.flatnonzero(item_category == category)
        rank_in_category[rng.permutation(members)] = np.arange(1, len(members) + 1)
    base_weight = rank_in_category ** -config.zipf_exponent
    following = _following_items(rng, item_category) if config.chain_probability else None

    clicks: list[tuple[str, str, int]] = []
    tastes = []
    for user in range(config.num_users):
        taste = rng.dirichlet(np.full(config.num_categories, config.taste_concentration))
        tastes.append(taste)
        count = max(2, rng.poisson(config.clicks_per_user))
        joined = 0
        if config.new_user_share and rng.random() < config.new_user_share:
            joined = int(rng.integers(0, span - 1))
        session_starts = np.sort(rng.integers(joined, span, size=max(1, count // 5)))
        times = np.sort(rng.choice(session_starts, size=count)
                        + rng.integers(0, 3600, size=count))
        previous = None
        for t in np.minimum(times, span - 1):
            available = release <= t
            if (following is not None and previous is not None
                    and available[following[previous]]
                    and rng.random() < config.chain_probability):
                item = previous = following[previous]
                clicks.append((f"u{user}", f"i{item}", int(config.start_timestamp + t)))
                continue
            weights = taste[item_category] * base_weight * available
            total = weights.sum()
            if total <= 0:
                continue
            item = previous = rng.choice(config.num_items, p=weights / total)
            clicks.append((f"u{user}", f"i{item}", int(config.start_timestamp + t)))
    impressions = []
    if config.impressions_per_click:
        impressions = _impressions(config, clicks, tastes, item_category, base_weight,
                                   release)
    clicks.sort(key=lambda c: (c[2], c[0], c[1]))
    if config.new_user_click_share:
        clicks, impressions = _new_accounts(config, clicks, impressions)
    impressions.sort(key=lambda c: (c[2], c[0], c[1]))
    return SyntheticLog(clicks, impressions, {f"i{i}": int(c) for i, c in enumerate(item_category)})


def _impressions(config: SyntheticConfig, clicks, tastes, item_category, base_weight,
                 release) -> list[tuple[str, str, int]]:
    """`impressions_per_click` items shown before each click (module docstring),
    from a random stream of their own."""
    rng = np.random.default_rng([config.seed, 1])
    out = []
    for user, _, timestamp in clicks:
        t = timestamp - config.start_timestamp
        disliked = tastes[int(user[1:])][item_category] < DISLIKE
        weights = base_weight * disliked * (release <= t)
        total = weights.sum()
        if total <= 0:
            continue
        count = min(config.impressions_per_click, int(np.count_nonzero(weights)))
        shown = rng.choice(config.num_items, size=count, replace=False, p=weights / total)
        ago = rng.integers(0, 60, size=count)  # shown in the minute before the click
        out.extend((user, f"i{item}", int(timestamp - seconds))
                   for item, seconds in zip(shown, ago, strict=True))
    # Clicks moments apart may show the same item at the same second: one row.
    return list(set(out))


def _new_accounts(config: SyntheticConfig, clicks: list, impressions: list
                  ) -> tuple[list, list]:
    """Moves users' clicks (and impressions) in the newest `new_user_window`
    of `clicks` (sorted by time) to new accounts `n<user>` until they hold
    `new_user_click_share` of that window's clicks."""
    share, window = config.new_user_click_share, config.new_user_window
    if not 0.0 < share < 1.0 or not 0.0 < window < 1.0:
        raise ValueError(f"new_user_click_share={share}, new_user_window={window}: expected "
                         "a share in (0, 1) and a window in (0, 1)")
    start = clicks[int(len(clicks) * (1.0 - window))][2]
    in_window: dict[str, int] = {}
    for user, _, time in clicks:
        if time >= start:
            in_window[user] = in_window.get(user, 0) + 1
    # Its own stream: the log without new accounts stays the seed's log.
    rng = np.random.default_rng([config.seed, 1])
    moved, target, renamed = 0, share * sum(in_window.values()), set()
    for user in rng.permutation(sorted(in_window)):
        if moved >= target:
            break
        renamed.add(str(user))
        moved += in_window[str(user)]

    def rename(rows: list) -> list:
        return [(f"n{user[1:]}" if user in renamed and time >= start else user, *rest, time)
                for user, *rest, time in rows]

    return rename(clicks), rename(impressions)


def _following_items(rng: np.random.Generator, item_category: np.ndarray) -> np.ndarray:
    """`[num_items]`: the item after each one in a random cycle through its
    category's items (an item alone in its category follows itself)."""
    following = np.arange(len(item_category))
    for category in np.unique(item_category):
        cycle = rng.permutation(np.flatnonzero(item_category == category))
        following[cycle] = np.roll(cycle, -1)
    return following


def write(config: SyntheticConfig, output_dir: str) -> str:
    """Writes ``clicks.csv`` and ``items.csv`` into `output_dir`; returns the clicks path.

    With impressions, ``clicks.csv`` has an ``event`` column (``click`` or
    ``impression``); read it with ``ingestion.schema.event_type: event`` and
    ``ingestion.impression_event_types: [impression]``.
    """
    os.makedirs(output_dir, exist_ok=True)
    log = generate_log(config)
    clicks_path = os.path.join(output_dir, "clicks.csv")
    with open(clicks_path, "w", newline="") as f:
        writer = csv.writer(f)
        if not config.impressions_per_click:
            writer.writerow(["user_id", "item_id", "timestamp"])
            writer.writerows(log.clicks)
        else:  # an event column (ingestion.schema.event_type: event)
            writer.writerow(["user_id", "item_id", "timestamp", "event"])
            rows = ([(*c, CLICK) for c in log.clicks]
                    + [(*i, IMPRESSION) for i in log.impressions])
            writer.writerows(sorted(rows, key=lambda r: (r[2], r[0], r[1], r[3])))
    item_category = log.item_category
    with open(os.path.join(output_dir, "items.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["item_id", "category"])
        writer.writerows(sorted(item_category.items()))
    return clicks_path


def main(argv: list[str] | None = None) -> int:
    defaults = SyntheticConfig()
    parser = argparse.ArgumentParser(
        prog="retrieval-datagen", description="Write a seeded synthetic click log.")
    parser.add_argument("--output", required=True, help="directory for clicks.csv and items.csv")
    for field in dataclasses.fields(SyntheticConfig):
        parser.add_argument(f"--{field.name}", type=type(getattr(defaults, field.name)),
                            default=getattr(defaults, field.name))
    args = parser.parse_args(argv)
    config = SyntheticConfig(**{f.name: getattr(args, f.name)
                                for f in dataclasses.fields(SyntheticConfig)})
    path = write(config, args.output)
    with open(path) as f:
        rows = sum(1 for _ in f) - 1
    what = "rows (clicks and impressions)" if config.impressions_per_click else "clicks"
    print(f"retrieval-datagen: wrote {rows} {what} to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
