"""Parsing one raw click-log row into a `Click`, or a rejection reason.

Formats:
  * ``csv``: comma-separated with a header row naming at least ``user_id``,
    ``item_id`` and ``timestamp`` (extra columns allowed, ``weight`` used as
    the event weight when present).
  * ``jsonl``: one JSON object per line with the same keys.
  * ``movietweetings``: ``user_id::item_id::rating::unix_timestamp`` (the
    bundled MovieTweetings ``ratings.dat``); the rating becomes the weight.

Every function here is pure, so the Beam ingestion step and the tests share it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math

REQUIRED_COLUMNS = ("user_id", "item_id", "timestamp")
FORMATS = ("csv", "jsonl", "movietweetings")
# Ids longer than this are almost always a corrupted row (a whole line glued
# into one field); they would also bloat every vocabulary file downstream.
MAX_ID_LENGTH = 256
# Unix seconds; anything outside is a unit error (ms) or garbage.
MIN_TIMESTAMP = 0
MAX_TIMESTAMP = 4_102_444_800  # 2100-01-01


@dataclasses.dataclass(frozen=True)
class Click:
    """One accepted interaction."""

    user_id: str
    item_id: str
    timestamp: int  # unix seconds
    weight: float = 1.0


class RowRejected(ValueError):
    """A row that cannot be used; `reason` is a short stable counter key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def detect_format(path: str) -> str:
    """Guesses the format from a file name.

    Args:
      path: a click-log file path.

    Returns:
      One of `FORMATS`.

    Raises:
      ValueError: the extension is not one this module reads.
    """
    lower = path.lower()
    for suffix, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".json", "jsonl"),
                        (".dat", "movietweetings")):
        if lower.endswith(suffix):
            return fmt
    raise ValueError(
        f"click log {path!r}: cannot tell the format from the extension; expected "
        f".csv, .jsonl/.json or .dat (MovieTweetings), or set input_format to one of {FORMATS}")


def parse_header(header_line: str, path: str) -> list[str]:
    """Reads a CSV header and checks the required columns are there.

    Raises:
      ValueError: naming the file, the columns found and those required.
    """
    columns = [c.strip() for c in next(csv.reader([header_line]), [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValueError(
            f"click log {path!r}: header {columns} lacks required column(s) {missing}; "
            f"expected a header naming at least {list(REQUIRED_COLUMNS)}")
    return columns


def _clean_id(value: object, name: str) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise RowRejected(f"empty_{name}")
    if len(text) > MAX_ID_LENGTH:
        raise RowRejected(f"{name}_too_long", f"{len(text)} characters > {MAX_ID_LENGTH}")
    return text


def _clean_timestamp(value: object) -> int:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise RowRejected("bad_timestamp", repr(value)) from None
    if not math.isfinite(number) or not MIN_TIMESTAMP <= number <= MAX_TIMESTAMP:
        raise RowRejected("bad_timestamp", repr(value))
    return int(number)


def _clean_weight(value: object) -> float:
    if value is None or str(value).strip() == "":
        return 1.0
    try:
        weight = float(str(value).strip())
    except ValueError:
        raise RowRejected("bad_weight", repr(value)) from None
    if not math.isfinite(weight) or weight < 0:
        raise RowRejected("bad_weight", repr(value))
    return weight


def _from_fields(fields: dict) -> Click:
    for name in REQUIRED_COLUMNS:
        if name not in fields or fields[name] is None:
            raise RowRejected("missing_field", name)
    return Click(
        user_id=_clean_id(fields["user_id"], "user_id"),
        item_id=_clean_id(fields["item_id"], "item_id"),
        timestamp=_clean_timestamp(fields["timestamp"]),
        weight=_clean_weight(fields.get("weight")),
    )


def parse_row(line: str, fmt: str, columns: list[str] | None = None) -> Click:
    """Parses one line of a click log.

    Args:
      line: the raw line, without its newline.
      fmt: one of `FORMATS`.
      columns: the header columns; required for ``csv``.

    Returns:
      The parsed `Click`.

    Raises:
      RowRejected: the row is unusable; `reason` says why.
    """
    if fmt == "csv":
        if columns is None:
            raise ValueError("csv rows need the header columns")
        values = next(csv.reader([line]), [])
        if len(values) != len(columns):
            raise RowRejected("wrong_column_count", f"{len(values)} != {len(columns)}")
        return _from_fields(dict(zip(columns, values, strict=True)))
    if fmt == "jsonl":
        try:
            record = json.loads(line)
        except ValueError:
            raise RowRejected("bad_json") from None
        if not isinstance(record, dict):
            raise RowRejected("bad_json", "not an object")
        return _from_fields(record)
    if fmt == "movietweetings":
        values = line.split("::")
        if len(values) != 4:
            raise RowRejected("wrong_column_count", f"{len(values)} != 4")
        user_id, item_id, rating, timestamp = values
        return _from_fields(
            {"user_id": user_id, "item_id": item_id, "timestamp": timestamp, "weight": rating})
    raise ValueError(f"input_format {fmt!r} is not one of {FORMATS}")
