"""Parsing one raw click-log record into a `Click`, or a rejection reason.

Formats (`FORMATS`):
  * ``csv``: comma-separated with a header row naming at least the schema's
    user, item and timestamp columns (default ``user_id,item_id,timestamp``;
    extra columns allowed; the weight column is used when present).
  * ``jsonl``: one JSON object per line with the same keys.
  * ``movietweetings``: ``user_id::item_id::rating::unix_timestamp`` (the
    bundled MovieTweetings ``ratings.dat``); the rating becomes the weight.
  * ``parquet``: one row per click, columns as in the schema.
  * ``tfrecord``: serialized ``tf.Example`` records, features named as the
    schema's columns (bytes, int64 or float lists).
Text formats may be gzip/bz2 compressed (``clicks.csv.gz``).

Every function here is pure, so the Beam ingestion step and the tests share it.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Iterator, Mapping

from clicklog import schema as schema_lib
from clicklog.errors import InputError
from clicklog.schema import ClickSchema

DEFAULT_SCHEMA = ClickSchema()
FORMATS = ("csv", "jsonl", "movietweetings", "parquet", "tfrecord")
TEXT_FORMATS = ("csv", "jsonl", "movietweetings")
_SUFFIXES = ((".csv", "csv"), (".tsv", None), (".jsonl", "jsonl"), (".json", "jsonl"),
             (".ndjson", "jsonl"), (".dat", "movietweetings"), (".parquet", "parquet"),
             (".pq", "parquet"), (".tfrecord", "tfrecord"), (".tfrecords", "tfrecord"))
_COMPRESSION_SUFFIXES = (".gz", ".gzip", ".bz2", ".deflate", ".zst")
# Ids longer than this are almost always a corrupted row (a whole line glued
# into one field); they would also bloat every vocabulary file downstream.
MAX_ID_LENGTH = 256
# Unix seconds; anything outside is a unit error (ms) or garbage.
MIN_TIMESTAMP = 0
MAX_TIMESTAMP = 4_102_444_800  # 2100-01-01
_UTF8_BOM = "\ufeff"
# A quoted CSV field may span lines; a record still open after this many
# lines is taken to be a stray quote: its first line is quarantined and
# reading resumes on the next line.
MAX_CSV_RECORD_LINES = 100


@dataclasses.dataclass(frozen=True)
class Click:
    """One accepted interaction.

    `features` holds the declared user/item/context features as sorted
    (name, value) pairs; `event_type` is "" when the schema declares none;
    `shown` the items of the schema's `impressed_items` column, in position
    order (empty without one).
    """

    user_id: str
    item_id: str
    timestamp: int  # unix seconds
    weight: float = 1.0
    event_type: str = ""
    features: tuple = ()
    shown: tuple[str, ...] = ()


class RowRejected(ValueError):
    """A row that cannot be used; `reason` is a short stable counter key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def detect_format(path: str) -> str:
    """Guesses the format from a file name (a compression suffix is skipped).

    Raises:
      InputError: the extension is not one this module reads.
    """
    lower = path.lower()
    for compression in _COMPRESSION_SUFFIXES:
        if lower.endswith(compression) and not lower.endswith((".tfrecord.gz",)):
            lower = lower[: -len(compression)]
            break
    if lower.endswith(".tfrecord.gz") or lower.endswith(".tfrecord"):
        return "tfrecord"
    for suffix, fmt in _SUFFIXES:
        if lower.endswith(suffix) and fmt:
            return fmt
    raise InputError(
        f"click log {path!r}: cannot tell the format from the extension; expected .csv, "
        ".jsonl/.json, .dat (MovieTweetings), .parquet or .tfrecord (optionally .gz), or "
        f"set ingestion.input_format to one of {FORMATS}")


def required_columns(schema: ClickSchema) -> list[str]:
    """Columns a file with a header (CSV, Parquet) must have under `schema`."""
    columns = list(schema.required_columns)
    if schema.event_type:
        columns.append(schema.event_type)
    if schema.impressed_items:
        columns.append(schema.impressed_items)
    return columns + [name for name, _ in schema.features]


def parse_header(header_line: str, path: str, schema: ClickSchema = DEFAULT_SCHEMA) -> list[str]:
    """Reads a CSV header and checks the declared columns are there.

    Raises:
      InputError: naming the file, the columns found and those required.
    """
    columns = [c.strip() for c in next(csv.reader([header_line.lstrip(_UTF8_BOM)]), [])]
    check_columns(columns, path, schema)
    return columns


def check_columns(columns: list[str], path: str, schema: ClickSchema) -> None:
    """Raises InputError naming the file and the missing declared columns."""
    expected = required_columns(schema)
    missing = [c for c in expected if c not in columns]
    if missing:
        raise InputError(
            f"click log {path!r}: header {columns} lacks required column(s) {missing}; "
            f"expected a header naming at least {expected} (ingestion.schema)")


def _clean_id(value: object, name: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Parquet/JSON numeric ids: 7.0 -> "7"
    text = "" if value is None else str(value).strip()
    if not text:
        raise RowRejected(f"empty_{name}")
    if len(text) > MAX_ID_LENGTH:
        raise RowRejected(f"{name}_too_long", f"{len(text)} characters > {MAX_ID_LENGTH}")
    if "\t" in text or "\n" in text:
        raise RowRejected(f"bad_{name}", f"{text[:50]!r} contains a tab or newline")
    return text


def _clean_timestamp(value: object, unit: str) -> int:
    try:
        seconds = schema_lib.parse_timestamp(value, unit)
    except schema_lib.ValueRejected as rejected:
        raise RowRejected(rejected.reason, rejected.detail) from None
    if not MIN_TIMESTAMP <= seconds <= MAX_TIMESTAMP:
        raise RowRejected("bad_timestamp", f"{value!r} -> {seconds:.0f} s is outside "
                          f"[{MIN_TIMESTAMP}, {MAX_TIMESTAMP}] unix seconds ({unit})")
    return int(seconds)


def _clean_weight(value: object) -> float:
    if value is None or str(value).strip() == "":
        return 1.0
    try:
        weight = float(str(value).strip())
    except ValueError:
        raise RowRejected("bad_weight", repr(value)) from None
    if not weight >= 0 or weight == float("inf"):
        raise RowRejected("bad_weight", f"{value!r}: expected a finite number >= 0")
    return weight


def _clean_shown(value: object) -> tuple[str, ...]:
    """An impressed-items value (a list, or ``|``-separated text) -> item ids;
    empty entries are skipped, a bad one rejects the row."""
    if value is None:
        return ()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    values = (value if isinstance(value, (list, tuple))
              else str(value).split(schema_lib.LIST_SEPARATOR))
    return tuple(_clean_id(v, "impressed_item") for v in values
                 if v is not None and str(v).strip())


def parse_fields(fields: Mapping, schema: ClickSchema = DEFAULT_SCHEMA) -> Click:
    """A record (column -> value) -> `Click` under `schema`.

    Raises:
      RowRejected: the record is unusable; `reason` says why.
    """
    for column in schema.required_columns:
        if fields.get(column) is None:
            raise RowRejected("missing_field", column)
    features = []
    for name, kind in sorted(schema.features):
        try:
            features.append((name, schema_lib.parse_feature(name, kind, fields.get(name))))
        except schema_lib.ValueRejected as rejected:
            raise RowRejected(rejected.reason, rejected.detail) from None
    event_type = ""
    if schema.event_type:
        raw = fields.get(schema.event_type)
        event_type = "" if raw is None else str(raw).strip()
    return Click(
        user_id=_clean_id(fields[schema.user_id], "user_id"),
        item_id=_clean_id(fields[schema.item_id], "item_id"),
        timestamp=_clean_timestamp(fields[schema.timestamp], schema.timestamp_unit),
        weight=_clean_weight(fields.get(schema.weight)) if schema.weight else 1.0,
        event_type=event_type,
        features=tuple(features),
        shown=_clean_shown(fields.get(schema.impressed_items)) if schema.impressed_items else (),
    )


def csv_record(text: str, columns) -> dict:
    """One CSV record (quoted fields may hold newlines) -> {column: value};
    raises RowRejected on bad quoting, a width other than the header's, or a
    byte order mark inside the file."""
    if _UTF8_BOM in text:
        raise RowRejected("bom", "a byte order mark inside the file (files concatenated "
                          "with their BOMs?); expected one only before the header")
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as error:
        raise RowRejected("bad_csv_quoting", str(error)) from None
    if len(rows) > 1:
        raise RowRejected("bad_csv_quoting", f"{len(rows)} records in one")
    values = rows[0] if rows else []
    if len(values) != len(columns):
        raise RowRejected("wrong_column_count", f"{len(values)} != {len(columns)}")
    return dict(zip(columns, values, strict=True))


def _csv_state(lines: list[tuple[int, bytes]]) -> str:
    """``open`` (these physical lines end inside a quoted field), ``bad``
    (a quoting error) or ``whole``."""
    if len(lines) == 1 and b'"' not in lines[0][1]:
        return "whole"
    text = b"".join(raw for _, raw in lines).decode("utf-8", "surrogateescape")
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), strict=True):
            pass
    except csv.Error as error:
        return "open" if "unexpected end of data" in str(error) else "bad"
    return "whole"


def _csv_join(lines: list[tuple[int, bytes]]) -> tuple[int, bytes]:
    raw = b"".join(raw for _, raw in lines)
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    return lines[0][0], raw[:-1] if raw.endswith(b"\r") else raw


def csv_records(lines: Iterable[bytes], max_record_lines: int = MAX_CSV_RECORD_LINES
                ) -> Iterator[tuple[int, bytes]]:
    """Physical lines of a CSV file (with their newlines) -> records.

    A record is one line, or several when a quoted field holds newlines.
    Yields (number of the record's first line, counting from 1, record bytes
    without the final newline). A record still inside a quoted field after
    `max_record_lines` lines or at the end of the file, or whose lines do not
    parse together, yields its first line alone (parsing it then fails as
    ``bad_csv_quoting``) and reading resumes on the line after it, so one
    stray quote costs one row.
    """
    source = enumerate(lines, 1)
    replay: collections.deque = collections.deque()
    pending: list[tuple[int, bytes]] = []
    ended = False
    while True:
        if replay:
            pending.append(replay.popleft())
        elif not ended:
            line = next(source, None)
            if line is None:
                ended = True
            else:
                pending.append(line)
        if not pending:
            if ended:
                return
            continue
        state = _csv_state(pending)
        if state == "whole" or (state == "bad" and len(pending) == 1):
            yield _csv_join(pending)
        elif state == "bad" or len(pending) >= max_record_lines or (ended and not replay):
            yield _csv_join(pending[:1])
            replay.extendleft(reversed(pending[1:]))
        else:
            continue  # inside a quoted field: read the next line
        pending = []


def json_record(line: str) -> dict:
    """One JSONL line -> its object; raises RowRejected unless it is a JSON object."""
    try:
        record = json.loads(line)
    except ValueError:
        raise RowRejected("bad_json") from None
    if not isinstance(record, dict):
        raise RowRejected("bad_json", "not an object")
    return record


def parse_row(line: str, fmt: str, columns: list[str] | None = None,
              schema: ClickSchema = DEFAULT_SCHEMA) -> Click:
    """Parses one line of a text click log.

    Args:
      line: the raw line, without its newline.
      fmt: one of `TEXT_FORMATS`.
      columns: the header columns; required for ``csv``.
      schema: the declared columns.

    Returns:
      The parsed `Click`.

    Raises:
      RowRejected: the row is unusable; `reason` says why.
    """
    if fmt == "csv":
        if columns is None:
            raise ValueError("csv rows need the header columns")
        return parse_fields(csv_record(line, columns), schema)
    if fmt == "jsonl":
        return parse_fields(json_record(line), schema)
    if fmt == "movietweetings":
        values = line.split("::")
        if len(values) != 4:
            raise RowRejected("wrong_column_count", f"{len(values)} != 4")
        user_id, item_id, rating, timestamp = values
        return parse_fields({schema.user_id: user_id, schema.item_id: item_id,
                             schema.timestamp: timestamp, schema.weight or "rating": rating},
                            schema)
    raise ValueError(f"input_format {fmt!r} is not one of {TEXT_FORMATS}")


def tf_example_to_fields(serialized: bytes) -> dict:
    """A serialized tf.Example -> {feature name: value or list of values}.

    Single-valued features become scalars; bytes are decoded as UTF-8.

    Raises:
      RowRejected: ``bad_tf_example`` (not a tf.Example) or ``bad_encoding``.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    try:
        example = example_pb2.Example.FromString(serialized)
    except DecodeError as error:
        raise RowRejected("bad_tf_example", str(error)) from None
    fields = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind is None:
            continue
        values = list(getattr(feature, kind).value)
        if kind == "bytes_list":
            try:
                values = [v.decode("utf-8") for v in values]
            except UnicodeDecodeError as error:
                raise RowRejected("bad_encoding", f"feature {name!r}: {error}") from None
        fields[name] = values[0] if len(values) == 1 else (values or None)
    return fields
