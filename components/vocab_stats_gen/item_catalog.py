"""VocabStatsGen's item catalog: reading it with Beam and joining it with the clicks.

`resolve_catalog_files` expands `vocab.item_catalog.path` and checks headers
before any Beam work. `ReadItemCatalog` reads every file with its row numbers
(one DoFn call streams one file, so "first row" is well defined), parses rows
(clicklog/catalog.py), and keeps the first row of each item id by (file name,
row number); later rows of the same id are quarantined as
``duplicate_item_id``. Every row read is counted once: ``rows_read ==
accepted + sum(quarantined)``. `JoinCatalog` joins the accepted items with the
per-item click aggregates by item id (CoGroupByKey) and decides which items
are candidates.
"""

from __future__ import annotations

import csv
import json
import os

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from clicklog import catalog as catalog_lib
from clicklog.formats import RowRejected
from components.vocab_stats_gen import limits

QUARANTINE_TAG = "quarantine"
ROWS_READ, ACCEPTED, QUARANTINED = "rows_read", "accepted", "quarantined"
# Join counters (stats.json "catalog" section).
CATALOG_ITEMS = "catalog_items"
CATALOG_ITEMS_WITH_CLICKS = "catalog_items_with_clicks"
CLICKED_MISSING = "clicked_items_missing_from_catalog"
UNCLICKED_CANDIDATES = "unclicked_catalog_candidates"
# Aggregate (count, weighted count, first ts, last ts) of an item without clicks.
NO_CLICKS = (0, 0.0, -1, -1)


def _list_paths(pattern: str) -> list[str]:
    import tensorflow as tf

    if tf.io.gfile.isdir(pattern):
        paths = [os.path.join(pattern, n) for n in tf.io.gfile.listdir(pattern)
                 if not n.startswith((".", "_"))]
    else:
        paths = tf.io.gfile.glob(pattern)
    return sorted(p for p in paths if not tf.io.gfile.isdir(p))


def _header(path: str) -> list[str] | None:
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        line = f.readline()
    if not line:
        return None
    try:
        text = line.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise ValueError(f"item catalog {path!r}: header {line[:80]!r} is not UTF-8 ({error}); "
                         "expected a UTF-8 CSV header") from None
    return [c.strip() for c in next(csv.reader([text]), [])]


def _parquet_columns(path: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return list(pq.read_schema(f).names)
    except Exception as error:  # pyarrow raises several types; re-raised with the file name
        raise ValueError(f"item catalog {path!r}: not a readable Parquet file ({error}); "
                         "expected Parquet with the catalog's columns") from error


def resolve_catalog_files(config: catalog_lib.CatalogConfig) -> dict[str, tuple]:
    """{path: (format, header columns or None)} of every catalog file, sorted.

    Raises:
      ValueError: nothing matches the path, or a file's format or columns are
        unusable; the message names the path.
    """
    paths = _list_paths(config.path)
    if not paths:
        raise ValueError(f"vocab.item_catalog.path={config.path!r}: no file matches; expected "
                         "an existing item catalog file, glob or directory")
    files = {}
    for path in paths:
        fmt = config.file_format(path)
        columns = None
        if fmt == "csv":
            columns = _header(path)
            if columns is not None:
                catalog_lib.check_header(columns, path, config)
                columns = tuple(columns)
        elif fmt == "parquet":
            catalog_lib.check_header(_parquet_columns(path), path, config)
        files[path] = (fmt, columns)
    return files


class _ReadNumberedRows(beam.DoFn):
    """path -> (path, row number, raw line bytes or Parquet row dict).

    Row numbers are 1-based physical lines (a CSV header is line 1 and not a
    row) or Parquet row positions.
    """

    def __init__(self, files: dict[str, tuple]):
        self._files = files

    def process(self, path):
        fmt, _ = self._files[path]
        if fmt == "parquet":
            import pyarrow.parquet as pq

            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                number = 0
                for batch in pq.ParquetFile(f).iter_batches():
                    for row in batch.to_pylist():
                        number += 1
                        yield path, number, row
            return
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
            number = 0
            while True:
                line = f.readline()
                if not line:
                    break
                number += 1
                if fmt == "csv" and number == 1:
                    continue  # the header
                yield path, number, line.rstrip(b"\n")


def quarantine_record(path: str, row: int, reason: str, raw: str, detail: str = "") -> dict:
    return {"file": path, "row": row, "reason": reason, "detail": detail, "raw": raw[:1000]}


class ParseCatalogRow(beam.DoFn):
    """(path, row, raw) -> (item_id, (path, row, features, raw text)); rejected
    rows go to the `quarantine` output with their reason."""

    def __init__(self, files: dict[str, tuple], config: catalog_lib.CatalogConfig):
        self._files = files
        self._config = config

    def process(self, element):
        path, row, raw = element
        fmt, columns = self._files[path]
        if fmt == "parquet":
            text = json.dumps(raw, default=str, sort_keys=True)
        else:
            text = raw.decode("utf-8", "replace").rstrip("\r")
        try:
            if fmt == "parquet":
                item = catalog_lib.catalog_item(raw, self._config)
            else:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise RowRejected("bad_encoding", str(error)) from None
                line = line.rstrip("\r").lstrip("\ufeff")
                if not line.strip():
                    raise RowRejected("empty_line")
                item = catalog_lib.parse_catalog_line(line, fmt, columns, self._config)
        except RowRejected as rejected:
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_record(
                path, row, rejected.reason, text, rejected.detail))
            return
        yield item.item_id, (path, row, item.features, text)


def keep_first(element):
    """(item_id, [(path, row, features, raw)]) -> (item_id, features) of the
    first row by (path, row); the others as ``duplicate_item_id`` quarantine."""
    item_id, rows = element
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    first_path, first_row, features, _ = rows[0]
    yield item_id, features
    for path, row, _, raw in rows[1:]:
        yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_record(
            path, row, "duplicate_item_id", raw,
            f"item {item_id!r} first at {first_path}:{first_row}; the first row is kept"))


class ParseCatalog(beam.PTransform):
    """(path, row, raw) -> {"items": (item_id, features), "quarantine": dicts,
    "counters": ((counter, reason), count)}."""

    def __init__(self, files: dict[str, tuple], config: catalog_lib.CatalogConfig):
        super().__init__()
        self._files = files
        self._config = config

    def expand(self, rows):
        parsed = rows | "ParseRows" >> beam.ParDo(
            ParseCatalogRow(self._files, self._config)).with_outputs(QUARANTINE_TAG, main="rows")
        deduped = (parsed.rows | "GroupById" >> beam.GroupByKey()
                   | "KeepFirst" >> beam.FlatMap(keep_first).with_outputs(
                       QUARANTINE_TAG, main="items"))
        quarantine = ((parsed[QUARANTINE_TAG], deduped[QUARANTINE_TAG])
                      | "AllQuarantined" >> beam.Flatten())
        counters = (
            (rows | "ReadKeys" >> beam.Map(lambda _: (ROWS_READ, "")),
             deduped.items | "AcceptedKeys" >> beam.Map(lambda _: (ACCEPTED, "")),
             quarantine | "QuarantineKeys" >> beam.Map(lambda q: (QUARANTINED, q["reason"])))
            | "CounterKeys" >> beam.Flatten()
            | "Count" >> beam.combiners.Count.PerElement())
        return {"items": deduped.items, "quarantine": quarantine, "counters": counters}


class ReadItemCatalog(beam.PTransform):
    """Reads and parses the catalog files: see `ParseCatalog` for the outputs."""

    def __init__(self, files: dict[str, tuple], config: catalog_lib.CatalogConfig):
        super().__init__()
        self._files = files
        self._config = config

    def expand(self, pbegin):
        rows = (pbegin | "Paths" >> beam.Create(sorted(self._files))
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadRows" >> beam.ParDo(_ReadNumberedRows(self._files)))
        return rows | "Parse" >> ParseCatalog(self._files, self._config)


def join_item(element, min_item_count: int, include_unclicked: bool):
    """(item_id, {"clicks": [aggregate], "catalog": [features]}) -> candidate
    (item_id, aggregate, features) when the item is one, plus join counter
    keys on the `counters` output.

    A clicked item is a candidate with >= min_item_count clicks; a catalog
    item always is when `include_unclicked` (an unclicked one with the
    `NO_CLICKS` aggregate). Items missing from the catalog get () features.
    """
    item_id, joined = element
    clicks, catalog = list(joined["clicks"]), list(joined["catalog"])
    aggregate = clicks[0] if clicks else NO_CLICKS
    in_catalog = bool(catalog)
    features = catalog[0] if in_catalog else ()
    if in_catalog:
        yield beam.pvalue.TaggedOutput("counters", CATALOG_ITEMS)
        if clicks:
            yield beam.pvalue.TaggedOutput("counters", CATALOG_ITEMS_WITH_CLICKS)
    elif clicks:
        yield beam.pvalue.TaggedOutput("counters", CLICKED_MISSING)
    if (clicks and aggregate[0] >= min_item_count) or (in_catalog and include_unclicked):
        if in_catalog and not clicks:
            yield beam.pvalue.TaggedOutput("counters", UNCLICKED_CANDIDATES)
        yield item_id, aggregate, features


class JoinCatalog(beam.PTransform):
    """{"clicks": (item_id, aggregate), "catalog": (item_id, features)} ->
    {"candidates": (item_id, aggregate, features), "counters": (key, count)}.

    An empty `catalog` leaves the clicked items with >= min_item_count
    clicks. With `max_items`, only the top items by count
    (ties by id) are emitted: clicked items come before unclicked ones.
    """

    def __init__(self, min_item_count: int, max_items: int, include_unclicked: bool):
        super().__init__()
        self._min_item_count = min_item_count
        self._max_items = max_items
        self._include_unclicked = include_unclicked

    def expand(self, inputs):
        joined = ({"clicks": inputs["clicks"], "catalog": inputs["catalog"]}
                  | "JoinById" >> beam.CoGroupByKey()
                  | "Candidates" >> beam.FlatMap(
                      join_item, self._min_item_count, self._include_unclicked
                  ).with_outputs("counters", main="candidates"))
        candidates = joined.candidates
        if self._max_items:
            candidates = (candidates | "TopItems" >> beam.combiners.Top.Of(
                self._max_items, key=lambda c: (c[1][0], limits.top_key(c[0])))
                | "FlattenTop" >> beam.FlatMap(lambda top: top))
        counters = joined.counters | "CountJoin" >> beam.combiners.Count.PerElement()
        return {"candidates": candidates, "counters": counters}


def catalog_report(config: catalog_lib.CatalogConfig, counters, join_counters) -> dict:
    """The stats.json "catalog" section from the read and join counters."""
    read = {ROWS_READ: 0, ACCEPTED: 0}
    quarantined: dict[str, int] = {}
    for (counter, reason), count in counters:
        if counter == QUARANTINED:
            quarantined[reason] = quarantined.get(reason, 0) + count
        else:
            read[counter] += count
    join = dict(join_counters)
    return {
        "path": config.path,
        "rows_read": read[ROWS_READ],
        "accepted": read[ACCEPTED],
        "quarantined": dict(sorted(quarantined.items())),
        CATALOG_ITEMS: join.get(CATALOG_ITEMS, 0),
        CATALOG_ITEMS_WITH_CLICKS: join.get(CATALOG_ITEMS_WITH_CLICKS, 0),
        CLICKED_MISSING: join.get(CLICKED_MISSING, 0),
        UNCLICKED_CANDIDATES: join.get(UNCLICKED_CANDIDATES, 0),
    }


def check_catalog_report(report: dict, config: catalog_lib.CatalogConfig) -> None:
    """Raises if the counts do not reconcile, no row is usable or too many are bad."""
    bad = sum(report["quarantined"].values())
    where = f"item catalog {config.path!r}"
    if report["rows_read"] != report["accepted"] + bad:
        raise ValueError(f"{where}: rows_read={report['rows_read']} != accepted="
                         f"{report['accepted']} + quarantined={bad} {report['quarantined']}; "
                         "expected every row to be counted exactly once")
    if not report["accepted"]:
        raise ValueError(f"{where}: no usable row ({report['rows_read']} read, quarantined "
                         f"{report['quarantined']}); expected at least one item")
    if report["rows_read"] and bad / report["rows_read"] > config.max_bad_fraction:
        raise ValueError(f"{where}: {bad} of {report['rows_read']} rows quarantined "
                         f"{report['quarantined']}; expected at most "
                         f"vocab.item_catalog.max_bad_fraction={config.max_bad_fraction:g}")
