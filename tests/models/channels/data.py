"""A seeded synthetic log with category structure (clicklog.synthetic), as
channel fits and held-out next clicks."""

from __future__ import annotations

from clicklog import synthetic
from models.channels.clicks import Catalogue, Clicks, from_lists


def events(num_users: int = 400, num_items: int = 120, seed: int = 3):
    """(catalogue, {user: [(item, time)] in time order}, {item: category `c<n>`})
    of a seeded synthetic log with six categories."""
    clicks, item_category = synthetic.generate(synthetic.SyntheticConfig(
        num_users=num_users, num_items=num_items, num_categories=6, clicks_per_user=12.0,
        late_item_share=0.0, seed=seed))
    by_user: dict[str, list] = {}
    for user, item, time in clicks:
        by_user.setdefault(user, []).append((item, time))
    catalogue = Catalogue(sorted({item for _, item, _ in clicks}))
    return catalogue, by_user, {item: f"c{c}" for item, c in item_category.items()}


def log(num_users: int = 400, num_items: int = 120, seed: int = 3):
    """(catalogue, training clicks, held-out (history, item) pairs): each
    user's last click is held out, its history every earlier click."""
    catalogue, by_user, _ = events(num_users, num_items, seed)
    train, held_out = [], []
    for user, clicks in by_user.items():
        *earlier, last = clicks
        train += [(user, item, time) for item, time in earlier]
        held_out.append(([item for item, _ in earlier], last[0]))
    fit: Clicks = from_lists([u for u, _, _ in train], [i for _, i, _ in train],
                             [t for _, _, t in train], catalogue)
    return catalogue, fit, held_out


def categories(num_users: int = 400, num_items: int = 120, seed: int = 3) -> dict[str, str]:
    """Each item's category (`c<n>`) in the log of `log` with the same arguments."""
    return events(num_users, num_items, seed)[2]


def item_features(catalogue: Catalogue, **log_arguments) -> dict[str, list[list[str]]]:
    """{"genres": [[category] of each candidate]}: the catalog a VocabStats would write."""
    category = categories(**log_arguments)
    return {"genres": [[category[item]] for item in catalogue.item_ids]}
