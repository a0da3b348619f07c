"""Per-click features computed from a user's own past only (no leakage).

For a click at time t: `history` holds the items of the user's clicks with
timestamp strictly before t (oldest first, at most N, so clicks sharing t
never see each other), `seconds_since_previous_click` is t minus the latest
earlier timestamp (-1 for the first), and `item_age_seconds` is t minus the
item's first accepted click time (>= 0: the first click is never after t).
A click of the eval or test split also carries `history_at_cutoff`: the
user's history as it stood when that split began (the history of the user's
first click in the split), which is what a model trained at the cut-off and
serving recommendations computed then would have seen (the frozen protocol
of the evaluation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from clicklog.formats import Click

NO_PREVIOUS_CLICK = -1


@dataclasses.dataclass(frozen=True)
class ClickFeatures:
    """What the example of one click carries beyond the click itself."""

    history: tuple[str, ...]
    seconds_since_previous_click: int = NO_PREVIOUS_CLICK
    item_age_seconds: int | None = None
    history_at_cutoff: tuple[str, ...] | None = None
    # Items shown to the user before the click and not clicked (impressions.py);
    # None when no impression event types are configured.
    impressed_negatives: tuple[str, ...] | None = None


def user_click_features(ordered: Iterable[tuple[str, Click]], history_length: int
                        ) -> Iterator[tuple[str, Click, ClickFeatures]]:
    """Features of one user's clicks.

    Args:
      ordered: (path, Click) of one user sorted by timestamp.
      history_length: most recent previous items kept.

    Yields:
      (path, Click, ClickFeatures) in input order; `item_age_seconds` unset.
    """
    earlier: list[str] = []  # items of clicks strictly before the current timestamp
    pending: list[str] = []  # items at the current timestamp, not yet history
    current_ts = None
    previous_ts = None  # latest timestamp strictly before current_ts
    for path, click in ordered:
        if click.timestamp != current_ts:
            earlier.extend(pending)
            if len(earlier) > history_length:
                del earlier[:-history_length]
            pending = []
            previous_ts, current_ts = current_ts, click.timestamp
        since = NO_PREVIOUS_CLICK if previous_ts is None else click.timestamp - previous_ts
        yield path, click, ClickFeatures(tuple(earlier), since)
        pending.append(click.item_id)
