"""An item catalog: one row per item with side features (title, genres, ...).

Declared under ``vocab.item_catalog`` (docs/configuration.md):

    vocab:
      item_catalog:
        path: data/movietweetings-100k/movies.dat   # file, glob or directory
        format: dat                    # auto | csv | jsonl | dat | parquet
        columns: [item_id, title, genres]   # the `::`-separated fields of `dat`
        item_id: item_id               # column holding the item id
        features: {title: text, genres: string_list}

Feature types and their tokens (every feature value becomes a token list):
  * ``string``: the value as one token (none when empty);
  * ``string_list``: a list in JSONL / Parquet, ``|``-separated in text formats;
  * ``text``: lower-cased and split on non-alphanumeric characters, so
    ``"The Conjuring (2013)"`` -> ``["the", "conjuring", "2013"]``.
Characters that would break the one-row-per-item ``|``-joined file
(``|``, tabs, line breaks) are removed from tokens; tokens left empty are
dropped. Item ids are cleaned exactly as click item ids (clicklog/formats.py),
so the catalog joins the clicks on the same strings.

Every function here is pure; the Beam reading and join live in
components/item_catalog.py.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from clicklog import formats
from clicklog.config import Config, setting
from clicklog.errors import InputError
from clicklog.formats import RowRejected

FEATURE_TYPES = ("string", "string_list", "text")
CATALOG_FORMATS = ("csv", "jsonl", "dat", "parquet")
TEXT_FORMATS = ("csv", "jsonl", "dat")
DAT_SEPARATOR = "::"
LIST_SEPARATOR = "|"
# Removed from tokens: the token separator and everything str.splitlines() splits on.
_UNSAFE = re.compile("[|\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_WORD = re.compile(r"[^\W_]+")


@dataclasses.dataclass(frozen=True)
class CatalogConfig(Config):
    """Where the item catalog is and which of its columns are features."""

    KEY = "vocab.item_catalog"
    path: str = setting("", path=True)
    format: str = setting("auto", choices=("auto",) + CATALOG_FORMATS)  # auto: by extension
    # Field names of a `dat` row (`a::b::c`, no header); CSV takes its header.
    columns: tuple[str, ...] = ()
    item_id: str = "item_id"
    # (column, type), sorted by name.
    features: tuple[tuple[str, str], ...] = setting((), mapping=True, choices=FEATURE_TYPES)
    # True: every catalog item is a candidate (unclicked ones with count 0),
    # whatever vocab.min_item_count says; False: the catalog only adds features.
    include_unclicked: bool = True
    # The VocabStatsGen run fails when more than this share of rows is quarantined.
    max_bad_fraction: float = setting(0.5, min=0.0, max=1.0)

    def check(self) -> None:
        if not self.path.strip():
            raise self.error("path", "a file, glob or directory of item catalog rows")
        if not all(name.strip() for name in self.columns):
            raise self.error("columns", "non-empty column names")
        if not self.item_id:
            raise self.error("item_id", "the name of the column holding the item id")
        names = [name for name, _ in self.features]
        for name in names:
            if _UNSAFE.search(name):
                raise self.error("features", "column names without tab, line break or '|'")
        if self.item_id in names or "item_id" in names:
            raise self.error("features", f"side features only, not the item id column "
                             f"{self.item_id!r} or 'item_id'")
        if self.columns:
            missing = [c for c in self.required_columns if c not in self.columns]
            if missing:
                raise self.error("columns", f"the item id and every feature column; {missing} "
                                 "are missing")
        if self.format == "dat" and not self.columns:
            raise self.error("columns", "the list of the `dat` format's fields (it has no "
                             "header), e.g. [item_id, title, genres]")

    @property
    def required_columns(self) -> list[str]:
        """The item id column and every feature column."""
        return [self.item_id] + [name for name, _ in self.features]

    def file_format(self, path: str) -> str:
        """The format of one catalog file (`format`, or guessed from its name)."""
        if self.format != "auto":
            return self.format
        try:
            guessed = formats.detect_format(path)
        except ValueError:
            guessed = None
        guessed = "dat" if guessed == "movietweetings" else guessed
        if guessed not in CATALOG_FORMATS:
            raise InputError(f"item catalog {path!r}: cannot tell the format from the name; "
                             "expected .csv, .jsonl/.json, .dat or .parquet (optionally .gz), "
                             f"or set vocab.item_catalog.format to one of {CATALOG_FORMATS}")
        if guessed == "dat" and not self.columns:
            raise InputError(f"item catalog {path!r} is a `dat` file without a header; set "
                             "vocab.item_catalog.columns to its fields, e.g. "
                             "[item_id, title, genres]")
        return guessed


@dataclasses.dataclass(frozen=True)
class CatalogItem:
    """One accepted catalog row: the item id and (feature name, tokens) pairs."""

    item_id: str
    features: tuple[tuple[str, tuple[str, ...]], ...] = ()


def clean_token(value: str) -> str:
    return _UNSAFE.sub("", value).strip()


def tokenize_text(text: str) -> tuple[str, ...]:
    """Lower case, split on anything that is not a letter or digit."""
    return tuple(_WORD.findall(text.lower()))


def _as_text(name: str, value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise RowRejected("bad_feature", f"{name}={value!r}: expected one value")
        return _as_text(name, value[0])
    if isinstance(value, (dict, bool)):
        raise RowRejected("bad_feature", f"{name}={value!r}: expected a string")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def feature_tokens(name: str, kind: str, value: object) -> tuple[str, ...]:
    """A raw feature value -> its tokens under `kind` (missing/empty -> ()).

    Raises:
      RowRejected: ``bad_feature``, naming the feature and the value.
    """
    if value is None:
        return ()
    if kind == "string_list":
        if isinstance(value, (list, tuple)):
            values = [_as_text(name, v) for v in value if v is not None]
        else:
            values = _as_text(name, value).split(LIST_SEPARATOR)
        tokens = (clean_token(v) for v in values)
    elif kind == "text":
        tokens = tokenize_text(_as_text(name, value))
    else:
        tokens = (clean_token(_as_text(name, value)),)
    return tuple(t for t in tokens if t)


def catalog_item(fields: Mapping, config: CatalogConfig) -> CatalogItem:
    """A record (column -> value) -> `CatalogItem`.

    Raises:
      RowRejected: ``missing_field``, ``empty_item_id``, ``item_id_too_long``,
        ``bad_item_id`` or ``bad_feature``.
    """
    raw_id = fields.get(config.item_id)
    if raw_id is None:
        raise RowRejected("missing_field", config.item_id)
    # The same cleaning as click item ids: the join must see the same strings.
    item_id = formats._clean_id(raw_id, "item_id")  # noqa: SLF001
    return CatalogItem(item_id, tuple(
        (name, feature_tokens(name, kind, fields.get(name))) for name, kind in config.features))


def parse_catalog_line(line: str, fmt: str, columns: tuple[str, ...] | None,
                       config: CatalogConfig) -> CatalogItem:
    """One line of a text catalog (no newline) -> `CatalogItem`.

    Args:
      columns: the header columns (``csv``); ``dat`` uses `config.columns`.

    Raises:
      RowRejected: the row is unusable; `reason` says why.
    """
    if fmt == "csv":
        if not columns:
            raise ValueError("csv catalog rows need the header columns")
        return catalog_item(formats.csv_record(line, columns), config)
    if fmt == "jsonl":
        return catalog_item(formats.json_record(line), config)
    if fmt == "dat":
        values = line.split(DAT_SEPARATOR)
        if len(values) != len(config.columns):
            raise RowRejected("wrong_column_count",
                              f"{len(values)} != {len(config.columns)} ({list(config.columns)})")
        return catalog_item(dict(zip(config.columns, values, strict=True)), config)
    raise ValueError(f"item catalog format {fmt!r} is not one of {TEXT_FORMATS}")


def check_header(columns: list[str], path: str, config: CatalogConfig) -> None:
    """Raises ValueError naming the file when declared columns are missing."""
    missing = [c for c in config.required_columns if c not in columns]
    if missing:
        raise InputError(f"item catalog {path!r}: columns {columns} lack {missing}; expected "
                         f"the item id and feature columns {config.required_columns} "
                         "(vocab.item_catalog)")
