"""A seeded synthetic log with category structure (clicklog.synthetic), as
channel fits and held-out next clicks."""

from __future__ import annotations

from clicklog import synthetic
from models.channels.clicks import Catalogue, Clicks, from_lists


def log(num_users: int = 400, num_items: int = 120, seed: int = 3):
    """(catalogue, training clicks, held-out (history, item) pairs): each
    user's last click is held out, its history every earlier click."""
    clicks, _ = synthetic.generate(synthetic.SyntheticConfig(
        num_users=num_users, num_items=num_items, num_categories=6, clicks_per_user=12.0,
        late_item_share=0.0, seed=seed))
    by_user: dict[str, list] = {}
    for user, item, time in clicks:
        by_user.setdefault(user, []).append((item, time))
    catalogue = Catalogue(sorted({item for _, item, _ in clicks}))
    train, held_out = [], []
    for user, events in by_user.items():
        *earlier, last = events
        train += [(user, item, time) for item, time in earlier]
        held_out.append(([item for item, _ in earlier], last[0]))
    fit: Clicks = from_lists([u for u, _, _ in train], [i for _, i, _ in train],
                             [t for _, _, t in train], catalogue)
    return catalogue, fit, held_out


def categories(num_users: int = 400, num_items: int = 120, seed: int = 3) -> dict[str, str]:
    """Each item's category (`c<n>`) in the log of `log` with the same arguments."""
    _, item_category = synthetic.generate(synthetic.SyntheticConfig(
        num_users=num_users, num_items=num_items, num_categories=6, clicks_per_user=12.0,
        late_item_share=0.0, seed=seed))
    return {item: f"c{category}" for item, category in item_category.items()}


def item_features(catalogue: Catalogue, **log_arguments) -> dict[str, list[list[str]]]:
    """{"genres": [[category] of each candidate]}: the catalog a VocabStats would write."""
    category = categories(**log_arguments)
    return {"genres": [[category[item]] for item in catalogue.item_ids]}
