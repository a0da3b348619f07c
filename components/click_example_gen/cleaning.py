"""Cleaning rules of ClickExampleGen as pure functions (each drop has a reason).

Row-level rules (`event_rejection`) run right after parsing; user-level rules
(`dedupe_and_cap`) run on all clicks of one user after the group-by-user that
history building needs anyway, so cleaning adds no extra shuffle.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Iterable

from clicklog.formats import Click

DUPLICATE = "duplicate"
OUTSIDE_TIME_WINDOW = "outside_time_window"
USER_OVER_CLICK_CAP = "user_over_click_cap"
UNKNOWN_EVENT_TYPE = "unknown_event_type"


def event_rejection(click: Click, min_timestamp: int | None, max_timestamp: int | None,
                    event_weights: dict[str, float] | None) -> str | None:
    """The reason to drop one click on its own, or None to keep it.

    Args:
      click: a parsed click.
      min_timestamp: clicks before this (unix s) are dropped; None = no bound.
      max_timestamp: clicks at or after this are dropped; None = no bound.
      event_weights: accepted event types -> weight factor; None accepts any.
    """
    if min_timestamp is not None and click.timestamp < min_timestamp:
        return OUTSIDE_TIME_WINDOW
    if max_timestamp is not None and click.timestamp >= max_timestamp:
        return OUTSIDE_TIME_WINDOW
    if event_weights is not None and click.event_type not in event_weights:
        return UNKNOWN_EVENT_TYPE
    return None


_first = operator.itemgetter(0)


def dedupe_and_cap(clicks: Iterable[tuple[str, Click]], max_clicks_per_user: int,
                   impression_types: Collection[str] = ()
                   ) -> tuple[list[tuple[str, Click]], list[tuple[str, Click, str]]]:
    """Drops repeated events and users with too many clicks (bots).

    Args:
      clicks: (path, Click) of ONE user, any order.
      max_clicks_per_user: a user with more distinct clicks than this is
        dropped entirely (impressions too); 0 = no cap.
      impression_types: event types that are impressions: de-duplicated
        like clicks but not counted against the cap.

    Returns:
      (kept, rejected): kept (path, Click) sorted by (timestamp, item_id,
      event_type); rejected (path, Click, reason). Of events with the same
      (timestamp, item, event type) the copy with the smallest (path, weight)
      is kept, so the result does not depend on input order.
    """
    # One flat key per click, (timestamp, item, event type, path, weight): it
    # orders exactly as ((timestamp, item, event type), path, weight) and is
    # built once (this runs on every click of the per-user step).
    # Sorted on the key alone (stable), so ties keep their input order as before.
    keyed = [((c.timestamp, c.item_id, c.event_type, path, c.weight), path, c)
             for path, c in clicks]
    keyed.sort(key=_first)
    kept: list[tuple[str, Click]] = []
    rejected: list[tuple[str, Click, str]] = []
    previous = None
    for key, path, click in keyed:
        event = key[:3]
        if event == previous:
            rejected.append((path, click, DUPLICATE))
        else:
            kept.append((path, click))
            previous = event
    if max_clicks_per_user and sum(
            c.event_type not in impression_types for _, c in kept) > max_clicks_per_user:
        rejected.extend((path, click, USER_OVER_CLICK_CAP) for path, click in kept)
        kept = []
    return kept, rejected
