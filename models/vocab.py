"""Reading and writing the VocabStats files (no Beam; TensorFlow only for URLs).

Layout of a VocabStats directory:
  * ``items.tsv``: ``item_id<TAB>count<TAB>sampling_probability<TAB>recent_count``,
    one row per candidate item, most clicked first (ties by id). The row order
    is the candidate index used by the model and the serving index.
  * ``users.tsv``: ``user_id<TAB>count``, most active first.
  * ``stats.json``: totals (examples, items, users, weight, time range,
    ``num_oov_buckets``, per-split ``splits`` with out-of-vocabulary rates).
  * ``item_stats.tsv`` (optional, same row order as items.tsv, header row):
    count, weighted count, logQ and popularity^alpha negative-sampling
    probabilities, recent count, first/last click time (`read_item_stats`).
  * ``features/<name>.tsv`` (optional): ``value<TAB>count`` of a string
    feature, most frequent first (`read_feature_vocab`).
  * ``item_features.tsv`` (only with ``vocab.item_catalog``): header
    ``item_id<TAB><feature>...`` (feature names sorted), then one row per
    candidate in items.tsv order; each value is the feature's tokens joined
    by ``|`` (empty: no tokens, e.g. an item missing from the catalog)
    (`read_item_features`). ``stats.json`` ``item_features`` maps each name
    to its catalog type (``string``, ``string_list``, ``text``).

`sampling_probability` is the item's share of training clicks: the logQ
correction of in-batch sampled softmax subtracts its log from the logit.

A directory may be a URL (``gs://``, ``s3://``, ``hdfs://``): VocabStatsGen
writes the files from a Beam worker into the artifact's URI, which on
Dataflow or Flink is remote storage, and the trainer reads them from there.
"""

from __future__ import annotations

import dataclasses
import json
import os

ITEMS_FILE = "items.tsv"
USERS_FILE = "users.tsv"
STATS_FILE = "stats.json"
ITEM_STATS_FILE = "item_stats.tsv"
FEATURES_DIR = "features"
ITEM_FEATURES_FILE = "item_features.tsv"
TOKEN_SEPARATOR = "|"


def _gfile(path: str):
    """TensorFlow's file systems when `path` is a URL (gs://, s3://, hdfs://),
    else None: builtin `open` would take ``gs://b/x`` for a local path."""
    if "://" not in path:
        return None
    import tensorflow as tf

    return tf.io.gfile


def _open(path: str, mode: str = "r", newline: str | None = None):
    gfile = _gfile(path)
    if gfile:
        return gfile.GFile(path, mode)
    return open(path, mode, encoding="utf-8", newline=newline)


def _makedirs(directory: str) -> None:
    gfile = _gfile(directory)
    if gfile:
        gfile.makedirs(directory)
    else:
        os.makedirs(directory, exist_ok=True)


def _exists(path: str) -> bool:
    gfile = _gfile(path)
    return gfile.exists(path) if gfile else os.path.exists(path)


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
    # count^alpha shares (VocabStats' `vocab.negative_sampling_alpha`), from
    # item_stats.tsv in items.tsv order; None when the directory has none.
    item_negative_sampling_probability: list[float] | None = None

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_oov_buckets(self) -> int:
        """OOV buckets of the query tower's id lookups (`oov_buckets` of the stats)."""
        return oov_buckets(self.stats)


def oov_buckets(stats: dict) -> int:
    """``stats.json`` ``num_oov_buckets`` (VocabStatsGen's `vocab.num_oov_buckets`).

    Vocabularies written before the setting existed have no such key and get
    1, the single OOV bucket the towers always used, so they load unchanged.

    Raises:
      ValueError: the value is not an integer >= 1.
    """
    return check_oov_buckets(stats.get("num_oov_buckets", 1), "stats.json num_oov_buckets")


def check_oov_buckets(value, label: str = "num_oov_buckets") -> int:
    """`value` if it is an integer >= 1; raises naming `label` and the value otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{label}={value!r}: expected an integer >= 1")
    return value


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
    _makedirs(directory)
    total = float(sum(count for _, count, _ in items))
    if total <= 0:
        raise ValueError(f"vocab for {directory!r}: no item has a positive click count")
    with _open(os.path.join(directory, ITEMS_FILE), "w") as f:
        for item_id, count, recent in sorted(items, key=lambda r: (-r[1], r[0])):
            _check_id(item_id, "item")
            f.write(f"{item_id}\t{count:g}\t{count / total:.10g}\t{recent:g}\n")
    with _open(os.path.join(directory, USERS_FILE), "w") as f:
        for user_id, count in sorted(users, key=lambda r: (-r[1], r[0])):
            _check_id(user_id, "user")
            f.write(f"{user_id}\t{count:g}\n")
    with _open(os.path.join(directory, STATS_FILE), "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)


def _read_tsv(path: str, columns: int) -> list[list[str]]:
    rows = []
    with _open(path) as f:
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
    with _open(os.path.join(directory, STATS_FILE)) as f:
        stats = json.load(f)
    if not items:
        raise ValueError(f"vocab {directory!r}: {ITEMS_FILE} is empty; no candidates to retrieve")
    negative = None
    if _exists(os.path.join(directory, ITEM_STATS_FILE)):
        rows = read_item_stats(directory)
        if [r.item_id for r in rows] != [r[0] for r in items]:
            raise ValueError(f"vocab {directory!r}: {ITEM_STATS_FILE} lists other items or "
                             f"another order than {ITEMS_FILE}; expected the same rows")
        negative = [r.negative_sampling_probability for r in rows]
    return Vocab(
        item_ids=[r[0] for r in items],
        item_counts=[float(r[1]) for r in items],
        item_sampling_probability=[float(r[2]) for r in items],
        item_recent_counts=[float(r[3]) for r in items],
        user_ids=[r[0] for r in users],
        user_counts=[float(r[1]) for r in users],
        stats=stats,
        item_negative_sampling_probability=negative,
    )


@dataclasses.dataclass(frozen=True)
class ItemStats:
    """One row of ``item_stats.tsv``."""

    item_id: str
    count: float
    weighted_count: float
    sampling_probability: float  # count share: the logQ correction
    negative_sampling_probability: float  # count^alpha share
    recent_count: float
    first_timestamp: int
    last_timestamp: int


_ITEM_STATS_COLUMNS = [f.name for f in dataclasses.fields(ItemStats)]


def write_item_stats(directory: str, rows: list[ItemStats]) -> None:
    """Writes ``item_stats.tsv`` (rows in items.tsv order) with a header row."""
    with _open(os.path.join(directory, ITEM_STATS_FILE), "w") as f:
        f.write("\t".join(_ITEM_STATS_COLUMNS) + "\n")
        for row in rows:
            _check_id(row.item_id, "item")
            f.write(f"{row.item_id}\t{row.count:g}\t{row.weighted_count:.10g}\t"
                    f"{row.sampling_probability:.10g}\t{row.negative_sampling_probability:.10g}\t"
                    f"{row.recent_count:g}\t{row.first_timestamp}\t{row.last_timestamp}\n")


def read_item_stats(directory: str) -> list[ItemStats]:
    """Reads ``item_stats.tsv``; raises naming the file if it is malformed."""
    path = os.path.join(directory, ITEM_STATS_FILE)
    rows = _read_tsv(path, len(_ITEM_STATS_COLUMNS))
    if not rows or rows[0] != _ITEM_STATS_COLUMNS:
        raise ValueError(f"{path}: expected the header {_ITEM_STATS_COLUMNS}")
    return [ItemStats(r[0], float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]),
                      int(r[6]), int(r[7])) for r in rows[1:]]


def write_feature_vocab(directory: str, name: str, values: list[tuple[str, float]]) -> None:
    """Writes ``features/<name>.tsv``: value and count, in the given order."""
    _makedirs(os.path.join(directory, FEATURES_DIR))
    with _open(os.path.join(directory, FEATURES_DIR, f"{name}.tsv"), "w") as f:
        for value, count in values:
            if "\t" in value or "\n" in value:
                raise ValueError(f"feature {name!r} value {value!r}: expected no tab or newline")
            f.write(f"{value}\t{count:g}\n")


def read_feature_vocab(directory: str, name: str) -> list[tuple[str, float]]:
    """(value, count) rows of a string feature's vocabulary."""
    rows = _read_tsv(os.path.join(directory, FEATURES_DIR, f"{name}.tsv"), 2)
    return [(r[0], float(r[1])) for r in rows]


def write_item_features(directory: str, names: list[str],
                        rows: list[tuple[str, list[list[str]]]]) -> None:
    """Writes ``item_features.tsv``.

    Args:
      names: feature names (written sorted; `rows` must follow the same order).
      rows: (item_id, [tokens of each feature]) in items.tsv order.

    Raises:
      ValueError: names unsorted, a row of the wrong width, or a token with a
        tab, line break or ``|`` (the writer cleans tokens before this).
    """
    if list(names) != sorted(names) or len(set(names)) != len(names):
        raise ValueError(f"item features {names}: expected unique names in sorted order")
    for name in names:
        if not name or name == "item_id" or any(c in name for c in "\t\n\r|"):
            raise ValueError(f"item feature name {name!r}: expected a non-empty name other "
                             "than 'item_id' without tab, line break or '|'")
    with _open(os.path.join(directory, ITEM_FEATURES_FILE), "w", newline="\n") as f:
        f.write("\t".join(["item_id", *names]) + "\n")
        for item_id, values in rows:
            _check_id(item_id, "item")
            if len(values) != len(names):
                raise ValueError(f"item {item_id!r}: {len(values)} feature values, expected "
                                 f"{len(names)} ({names})")
            cells = []
            for name, tokens in zip(names, values, strict=True):
                for token in tokens:
                    if not token or len(token.splitlines()) != 1 or any(
                            c in token for c in "\t|"):
                        raise ValueError(f"item {item_id!r} feature {name!r} token {token!r}: "
                                         "expected a non-empty token without tab, line break "
                                         "or '|'")
                cells.append(TOKEN_SEPARATOR.join(tokens))
            f.write("\t".join([item_id, *cells]) + "\n")


def read_item_features(directory: str) -> dict[str, list[list[str]]] | None:
    """{feature name: token list of every candidate, in items.tsv order}, or
    None when the directory has no ``item_features.tsv`` (no catalog).

    Raises:
      ValueError: naming the file, when its header, widths or item order do
        not match items.tsv.
    """
    path = os.path.join(directory, ITEM_FEATURES_FILE)
    if not _exists(path):
        return None
    with _open(path, newline="\n") as f:
        lines = [line[:-1] if line.endswith("\n") else line for line in f]
    if not lines or not lines[0].startswith("item_id"):
        raise ValueError(f"{path}: expected a header row 'item_id<TAB><feature>...'")
    header = lines[0].split("\t")
    if header[0] != "item_id" or header[1:] != sorted(header[1:]):
        raise ValueError(f"{path}: header {header}: expected 'item_id' then sorted names")
    names = header[1:]
    item_ids = [r[0] for r in _read_tsv(os.path.join(directory, ITEMS_FILE), 4)]
    if len(lines) - 1 != len(item_ids):
        raise ValueError(f"{path}: {len(lines) - 1} item rows, expected one per candidate "
                         f"in {ITEMS_FILE} ({len(item_ids)})")
    result: dict[str, list[list[str]]] = {name: [] for name in names}
    for number, (line, expected_id) in enumerate(zip(lines[1:], item_ids, strict=True), 2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(f"{path}:{number}: expected {len(header)} tab-separated fields, "
                             f"got {len(fields)}")
        if fields[0] != expected_id:
            raise ValueError(f"{path}:{number}: item {fields[0]!r}, expected {expected_id!r} "
                             f"(rows follow {ITEMS_FILE} order)")
        for name, cell in zip(names, fields[1:], strict=True):
            result[name].append(cell.split(TOKEN_SEPARATOR) if cell else [])
    return result
