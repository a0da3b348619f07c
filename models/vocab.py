"""Reading and writing the VocabStats files (no TensorFlow, no Beam).

Layout of a VocabStats directory:
  * ``items.tsv``: ``item_id<TAB>count<TAB>sampling_probability<TAB>recent_count``,
    one row per candidate item, most clicked first (ties by id). The row order
    is the candidate index used by the model and the serving index.
  * ``users.tsv``: ``user_id<TAB>count``, most active first.
  * ``stats.json``: totals (examples, items, users, weight, time range).

`sampling_probability` is the item's share of training clicks: the logQ
correction of in-batch sampled softmax subtracts its log from the logit.
"""

from __future__ import annotations

import dataclasses
import json
import os

ITEMS_FILE = "items.tsv"
USERS_FILE = "users.tsv"
STATS_FILE = "stats.json"


@dataclasses.dataclass(frozen=True)
class Vocab:
    """Candidate items and known users with their training statistics."""

    item_ids: list[str]
    item_counts: list[float]
    item_sampling_probability: list[float]
    item_recent_counts: list[float]
    user_ids: list[str]
    user_counts: list[float]
    stats: dict

    @property
    def num_items(self) -> int:
        return len(self.item_ids)


def _check_id(value: str, kind: str) -> None:
    if not value or "\t" in value or "\n" in value:
        raise ValueError(f"{kind} id {value!r}: expected a non-empty id without tab or newline")


def write_vocab(directory: str, items: list[tuple[str, float, float]],
                users: list[tuple[str, float]], stats: dict) -> None:
    """Writes a VocabStats directory.

    Args:
      directory: target directory (created if missing).
      items: (item_id, count, recent_count) rows; written most clicked first.
      users: (user_id, count) rows; written most active first.
      stats: JSON-serialisable totals.
    """
    os.makedirs(directory, exist_ok=True)
    total = float(sum(count for _, count, _ in items))
    if total <= 0:
        raise ValueError(f"vocab for {directory!r}: no item has a positive click count")
    with open(os.path.join(directory, ITEMS_FILE), "w", encoding="utf-8") as f:
        for item_id, count, recent in sorted(items, key=lambda r: (-r[1], r[0])):
            _check_id(item_id, "item")
            f.write(f"{item_id}\t{count:g}\t{count / total:.10g}\t{recent:g}\n")
    with open(os.path.join(directory, USERS_FILE), "w", encoding="utf-8") as f:
        for user_id, count in sorted(users, key=lambda r: (-r[1], r[0])):
            _check_id(user_id, "user")
            f.write(f"{user_id}\t{count:g}\n")
    with open(os.path.join(directory, STATS_FILE), "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=2, sort_keys=True)


def _read_tsv(path: str, columns: int) -> list[list[str]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != columns:
                raise ValueError(f"{path}:{number}: expected {columns} tab-separated fields, "
                                 f"got {len(fields)}")
            rows.append(fields)
    return rows


def read_vocab(directory: str) -> Vocab:
    """Reads a VocabStats directory written by `write_vocab`."""
    items = _read_tsv(os.path.join(directory, ITEMS_FILE), 4)
    users = _read_tsv(os.path.join(directory, USERS_FILE), 2)
    with open(os.path.join(directory, STATS_FILE), encoding="utf-8") as f:
        stats = json.load(f)
    if not items:
        raise ValueError(f"vocab {directory!r}: {ITEMS_FILE} is empty; no candidates to retrieve")
    return Vocab(
        item_ids=[r[0] for r in items],
        item_counts=[float(r[1]) for r in items],
        item_sampling_probability=[float(r[2]) for r in items],
        item_recent_counts=[float(r[3]) for r in items],
        user_ids=[r[0] for r in users],
        user_counts=[float(r[1]) for r in users],
        stats=stats,
    )
