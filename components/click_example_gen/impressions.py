"""Impressions: items shown to a user (or retrieved and dropped by a ranker)
that become per-click negatives, never positives.

Rows whose event type is one of `ingestion.impression_event_types` are parsed,
validated and de-duplicated like clicks, then set apart from the user's clicks
here: they make no example, enter no history, split cut-off or item age, and
so no vocabulary count or popularity either (VocabStatsGen reads the
examples). What they give is each click's `impressed_negatives`: the items
the user was shown in the `window` seconds up to the click (timestamp in
``[t - window, t]``, never after it), less every item the user clicked
within `window` seconds either side of it (a shown item clicked a moment
later was not passed over), de-duplicated, oldest first, the most recent
`max_count` kept. The model may score them as extra negatives of that click
(`model.negatives.impressions`).

The other form, a click row listing the items shown with it
(`ingestion.schema.impressed_items`, in position order), gives impressions at
the click's time (`with_listed`); with more than `max_count`, the top
positions are the ones kept.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence

from clicklog.formats import Click


def split_events(kept: Sequence[tuple[str, Click]], impression_types: Collection[str]
                 ) -> tuple[list[tuple[str, Click]], list[tuple[str, Click]]]:
    """(path, Click) of one user -> (clicks, impressions), each in input order."""
    if not impression_types:
        return list(kept), []
    clicks, impressions = [], []
    for path, click in kept:
        (impressions if click.event_type in impression_types else clicks).append((path, click))
    return clicks, impressions


LISTED = "listed"  # event type of the impressions a click row lists


def with_listed(impressions: Sequence[Click], clicks: Sequence[Click]) -> list[Click]:
    """`impressions` plus those the `clicks` list (`Click.shown`), sorted by
    timestamp; a click's listed items come in reverse position order, so that
    the top positions are the most recent and survive a cap."""
    listed = [Click(click.user_id, item, click.timestamp, event_type=LISTED)
              for click in clicks for item in reversed(click.shown)]
    if not listed:
        return list(impressions)
    return sorted([*impressions, *listed], key=lambda c: c.timestamp)  # stable


def impressed_negatives(clicks: Sequence[Click], impressions: Sequence[Click], window: int,
                        max_count: int) -> list[tuple[str, ...]]:
    """Each click's impressed negatives (see the module docstring).

    Args:
      clicks: one user's clicks sorted by timestamp.
      impressions: the same user's impressions sorted by timestamp.
      window: seconds before a click (inclusive) its impressions come from.
      max_count: the most recent negatives kept per click.

    Returns:
      One tuple of item ids per click, in `clicks` order.
    """
    shown_at = [i.timestamp for i in impressions]
    clicked_at = [c.timestamp for c in clicks]
    out = []
    for click in clicks:
        t = click.timestamp
        first, last = bisect.bisect_left(shown_at, t - window), bisect.bisect_right(shown_at, t)
        if first == last:
            out.append(())
            continue
        clicked = {c.item_id for c in clicks[bisect.bisect_left(clicked_at, t - window):
                                             bisect.bisect_right(clicked_at, t + window)]}
        latest: dict[str, int] = {}  # item -> index of its latest showing
        for n in range(first, last):
            item = impressions[n].item_id
            if item not in clicked:
                latest.pop(item, None)
                latest[item] = n
        out.append(tuple(list(latest)[-max_count:]))
    return out
