"""The backtest's baselines, each fitted on the clicks before a cut-off.

Every scorer maps a batch of request histories (item ids, most recent last)
to float scores `[Q, N]` over the candidate items:

  * `popularity`: all-time click counts;
  * `recent_popularity`: click counts in the last `recent_fraction` of the
    training period (VocabStats' recent window);
  * `ease`: the item_cf recall channel (models/channels/item_cf.py) at its
    default settings: EASE with lambda chosen on the last `recent_fraction`
    of the training period, or item-kNN over `ease_max_items` candidates; a
    query without history falls back to popularity;
  * `last_item`: the transition counts from the user's most recent item to
    the next one, popularity breaking ties and answering queries without
    history.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from models.channels.base import Requests
from models.channels.clicks import Catalogue, from_lists
from models.channels.config import ItemCfChannelConfig
from models.channels.item_cf import ItemCfChannel

# Added to a model's scores so that popularity breaks ties (and answers an
# empty history) without reordering any non-tied pair.
TIE_BREAK = 1e-9


def counts(items: list[str], candidates: Catalogue) -> np.ndarray:
    out = np.zeros(len(candidates), np.float64)
    for item in items:
        out[candidates.index[item]] += 1
    return out


def baselines(users: list[str], items: list[str], timestamps: list[int],
              candidates: Catalogue, recent_fraction: float = 0.1) -> tuple[dict, dict]:
    """The scorers fitted on the clicks given (those before the cut-off, in
    time order) and a report of how they were fitted."""
    popularity = counts(items, candidates)
    times = np.asarray(timestamps)
    recent_start = times.max() - recent_fraction * (times.max() - times.min())
    recent = counts([i for i, t in zip(items, times, strict=True) if t >= recent_start],
                    candidates)
    tie = TIE_BREAK * popularity / max(popularity.max(), 1.0)
    report: dict = {"candidates": len(candidates), "recent_start": int(recent_start)}
    item_cf = ItemCfChannel.fit(from_lists(users, items, timestamps, candidates),
                                ItemCfChannelConfig(validation_fraction=recent_fraction))
    similarity_name = "ease" if item_cf.report["kind"] == "ease" else "item_knn"
    report[similarity_name] = {k: v for k, v in item_cf.report.items() if k != "kind"}
    transitions = scipy.sparse.lil_matrix((len(candidates), len(candidates)), dtype=np.float32)
    last: dict[str, int] = {}
    for user, item in zip(users, items, strict=True):
        column = candidates.index[item]
        if user in last:
            transitions[last[user], column] += 1
        last[user] = column
    transitions = transitions.tocsr()

    def constant(row: np.ndarray):
        return lambda histories: np.tile(row.astype(np.float32), (len(histories), 1))

    def similarity(histories):
        scores, answered = item_cf.score(Requests({}, candidates.rows(histories)))
        scores[~answered] = popularity
        return scores + tie

    def last_item(histories):
        scores = np.tile(tie.astype(np.float32), (len(histories), 1))
        for row, history in enumerate(histories):
            known = [candidates.index[i] for i in history if i in candidates.index]
            if known:
                scores[row] += transitions.getrow(known[-1]).toarray().ravel()
            else:
                scores[row] = popularity
        return scores

    scorers = {"popularity": constant(popularity), "recent_popularity": constant(recent),
               similarity_name: similarity, "last_item": last_item}
    return scorers, report
