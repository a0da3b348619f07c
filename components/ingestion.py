"""Beam transforms of ClickExampleGen: parse, quarantine, dedupe, history, split.

Every input line ends in exactly one place: an example of some split
(`accepted`) or the quarantine with a reason; the counters reconcile per input
file (`rows_read == accepted + sum(quarantined.values())`).

History is built per user after grouping: for a click at time t it holds the
user's previous items with timestamp strictly before t (most recent last), so
nothing from the click's own time or later leaks into its features.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

import apache_beam as beam

from clicklog import formats
from models import config_dict

QUARANTINE_TAG = "quarantine"
COUNTER_ROWS_READ = "rows_read"
COUNTER_ACCEPTED = "accepted"
COUNTER_QUARANTINED = "quarantined"
TRAIN = "train"
EVAL = "eval"


@dataclasses.dataclass(frozen=True)
class IngestionConfig:
    """Settings of ClickExampleGen."""

    input_format: str = "auto"  # auto | csv | jsonl | movietweetings
    history_length: int = 50
    # The newest `eval_fraction` of clicks (by timestamp) form the eval split,
    # unless `eval_start_timestamp` fixes the cut-off.
    eval_fraction: float = 0.1
    eval_start_timestamp: int | None = None
    # Ingestion fails when more than this share of a file's rows is quarantined.
    max_bad_fraction: float = 0.5

    def __post_init__(self):
        if self.input_format != "auto" and self.input_format not in formats.FORMATS:
            raise ValueError(f"ingestion.input_format={self.input_format!r}: expected 'auto' "
                             f"or one of {formats.FORMATS}")
        if not isinstance(self.history_length, int) or self.history_length < 1:
            raise ValueError(f"ingestion.history_length={self.history_length!r}: expected a "
                             "positive integer")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"ingestion.eval_fraction={self.eval_fraction!r}: expected a "
                             "number strictly between 0 and 1")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ValueError(f"ingestion.max_bad_fraction={self.max_bad_fraction!r}: expected "
                             "a number in [0, 1]")

    @classmethod
    def from_dict(cls, values: dict | None) -> IngestionConfig:
        return config_dict.from_dict(cls, values, "ingestion")


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One matched input file, its format and (CSV) header columns."""

    path: str
    fmt: str
    columns: tuple[str, ...] | None = None


def quarantine_record(path: str, reason: str, raw: str, detail: str = "") -> dict:
    return {"file": path, "reason": reason, "detail": detail, "raw": raw[:1000]}


class ParseLine(beam.DoFn):
    """(path, raw bytes) -> (path, Click), or a quarantine record on the side."""

    def __init__(self, files: dict[str, InputFile]):
        self._files = files

    def process(self, element):
        path, raw = element
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_record(
                path, "bad_encoding", raw.decode("utf-8", "replace"), str(error)))
            return
        line = line.rstrip("\r")
        if not line.strip():
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG,
                                           quarantine_record(path, "empty_line", line))
            return
        spec = self._files[path]
        try:
            click = formats.parse_row(line, spec.fmt, list(spec.columns) if spec.columns else None)
        except formats.RowRejected as rejected:
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_record(
                path, rejected.reason, line, rejected.detail))
            return
        yield path, click


def _dedupe(element) -> Iterable:
    """Keeps one copy of each (user, item, timestamp); the rest are quarantined."""
    _, copies = element
    copies = sorted(copies, key=lambda pc: (pc[0], pc[1].weight))
    yield copies[0]
    for path, click in copies[1:]:
        yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_record(
            path, "duplicate", json.dumps(dataclasses.asdict(click))))


def with_history(element, history_length: int) -> Iterable:
    """All clicks of one user -> (path, click, history) with no leakage.

    Args:
      element: (user_id, iterable of (path, Click)).
      history_length: most recent previous items kept.

    Yields:
      (path, Click, history) with history the items of the user's clicks
      strictly earlier than the click, oldest first, at most `history_length`.
    """
    _, clicks = element
    ordered = sorted(clicks, key=lambda pc: (pc[1].timestamp, pc[1].item_id))
    earlier: list[str] = []  # items of clicks strictly before the current timestamp
    pending: list[str] = []  # items at the current timestamp, not yet history
    current_ts = None
    for path, click in ordered:
        if click.timestamp != current_ts:
            earlier.extend(pending)
            pending = []
            current_ts = click.timestamp
        yield path, click, tuple(earlier[-history_length:])
        pending.append(click.item_id)


def to_example(click: formats.Click, history: tuple[str, ...]) -> bytes:
    import tensorflow as tf

    def _bytes(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

    return tf.train.Example(features=tf.train.Features(feature={
        "user_id": _bytes([click.user_id]),
        "item_id": _bytes([click.item_id]),
        "history": _bytes(history),
        "timestamp": tf.train.Feature(int64_list=tf.train.Int64List(value=[click.timestamp])),
        "weight": tf.train.Feature(float_list=tf.train.FloatList(value=[click.weight])),
    })).SerializeToString()


def eval_cutoff(quantiles: list[int], eval_fraction: float) -> int:
    """Timestamp at which the eval split starts, from evenly spaced quantiles."""
    index = int(round((1.0 - eval_fraction) * (len(quantiles) - 1)))
    return int(quantiles[index])


class IngestClicks(beam.PTransform):
    """(path, raw line bytes) -> {"train", "eval", "quarantine", "counters"}.

    `counters` is a PCollection of ((path, counter, reason), count) rows, one
    per file and reason: small however large the input.
    """

    def __init__(self, files: dict[str, InputFile], config: IngestionConfig):
        super().__init__()
        self._files = files
        self._config = config

    def expand(self, lines):
        config = self._config
        parsed = lines | "Parse" >> beam.ParDo(ParseLine(self._files)).with_outputs(
            QUARANTINE_TAG, main="clicks")
        deduped = (
            parsed.clicks
            | "KeyByEvent" >> beam.Map(
                lambda pc: ((pc[1].user_id, pc[1].item_id, pc[1].timestamp), pc))
            | "GroupEvents" >> beam.GroupByKey()
            | "Dedupe" >> beam.FlatMap(_dedupe).with_outputs(QUARANTINE_TAG, main="unique"))
        examples = (
            deduped.unique
            | "KeyByUser" >> beam.Map(lambda pc: (pc[1].user_id, pc))
            | "GroupByUser" >> beam.GroupByKey()
            | "History" >> beam.FlatMap(with_history, config.history_length))

        if config.eval_start_timestamp is not None:
            cutoff = examples.pipeline | "FixedCutoff" >> beam.Create(
                [config.eval_start_timestamp])
        else:
            cutoff = (
                examples
                | "Timestamps" >> beam.Map(lambda e: e[1].timestamp)
                | "Quantiles" >> beam.ApproximateQuantiles.Globally(1001)
                | "Cutoff" >> beam.Map(eval_cutoff, config.eval_fraction))
        cutoff_view = beam.pvalue.AsSingleton(cutoff)
        splits = examples | "Split" >> beam.Partition(
            lambda e, _, cut: 1 if e[1].timestamp >= cut else 0, 2, cut=cutoff_view)

        quarantine = ((parsed[QUARANTINE_TAG], deduped[QUARANTINE_TAG])
                      | "AllQuarantined" >> beam.Flatten())
        counter_keys = (
            lines | "ReadKeys" >> beam.Map(lambda pl: (pl[0], COUNTER_ROWS_READ, "")),
            quarantine | "QuarantineKeys" >> beam.Map(
                lambda q: (q["file"], COUNTER_QUARANTINED, q["reason"])),
            splits[0] | "TrainKeys" >> beam.Map(lambda e: (e[0], COUNTER_ACCEPTED, TRAIN)),
            splits[1] | "EvalKeys" >> beam.Map(lambda e: (e[0], COUNTER_ACCEPTED, EVAL)),
        ) | "AllCounterKeys" >> beam.Flatten()
        counters = counter_keys | "Count" >> beam.combiners.Count.PerElement()
        return {
            TRAIN: splits[0] | "TrainExamples" >> beam.MapTuple(lambda _, c, h: to_example(c, h)),
            EVAL: splits[1] | "EvalExamples" >> beam.MapTuple(lambda _, c, h: to_example(c, h)),
            "quarantine": quarantine,
            "counters": counters,
            "cutoff": cutoff,
        }


def summarize_counters(rows: Iterable[tuple[tuple[str, str, str], int]],
                       files: Iterable[str], cutoff: int | None) -> dict:
    """Counter rows -> the ingestion report (per file and totals).

    Returns:
      {"files": {path: {"rows_read", "accepted", "accepted_by_split",
      "quarantined": {reason: n}}}, "totals": {...}, "eval_start_timestamp"}.
    """
    per_file = {path: {"rows_read": 0, "accepted": 0, "accepted_by_split": {TRAIN: 0, EVAL: 0},
                       "quarantined": {}} for path in files}
    for (path, counter, reason), count in rows:
        entry = per_file.setdefault(path, {"rows_read": 0, "accepted": 0, "accepted_by_split":
                                           {TRAIN: 0, EVAL: 0}, "quarantined": {}})
        if counter == COUNTER_ROWS_READ:
            entry["rows_read"] += count
        elif counter == COUNTER_ACCEPTED:
            entry["accepted"] += count
            entry["accepted_by_split"][reason] += count
        else:
            entry["quarantined"][reason] = entry["quarantined"].get(reason, 0) + count
    totals = {"rows_read": 0, "accepted": 0, "accepted_by_split": {TRAIN: 0, EVAL: 0},
              "quarantined": {}}
    for entry in per_file.values():
        totals["rows_read"] += entry["rows_read"]
        totals["accepted"] += entry["accepted"]
        for split, count in entry["accepted_by_split"].items():
            totals["accepted_by_split"][split] += count
        for reason, count in entry["quarantined"].items():
            totals["quarantined"][reason] = totals["quarantined"].get(reason, 0) + count
    return {"files": per_file, "totals": totals, "eval_start_timestamp": cutoff}


def check_report(report: dict, config: IngestionConfig) -> None:
    """Raises if counts do not reconcile or a file is mostly garbage."""
    for path, entry in report["files"].items():
        bad = sum(entry["quarantined"].values())
        if entry["rows_read"] != entry["accepted"] + bad:
            raise RuntimeError(f"click log {path!r}: counts do not reconcile: rows_read="
                               f"{entry['rows_read']} != accepted={entry['accepted']} + "
                               f"quarantined={bad}")
        if entry["rows_read"] and bad / entry["rows_read"] > config.max_bad_fraction:
            raise ValueError(
                f"click log {path!r}: {bad} of {entry['rows_read']} rows quarantined "
                f"({bad / entry['rows_read']:.0%}) > max_bad_fraction "
                f"{config.max_bad_fraction:.0%}; reasons {entry['quarantined']}")
    totals = report["totals"]
    for split in (TRAIN, EVAL):
        if totals["accepted_by_split"][split] == 0:
            raise ValueError(
                f"click logs {sorted(report['files'])}: the {split} split is empty "
                f"(accepted by split {totals['accepted_by_split']}, eval starts at "
                f"{report['eval_start_timestamp']}); expected clicks on both sides of the "
                "temporal cut-off")
