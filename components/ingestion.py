"""ClickExampleGen's settings and its Beam transform: records -> split examples.

Every input record ends in exactly one place: an example of some split
(`accepted`) or the quarantine with a reason; the counters reconcile per input
file (`rows_read == accepted + sum(quarantined.values())`).

Stages (one shuffle by user, one small per-item combine, one quantile combine):
parse + row rules (components/click_cleaning.py) -> group by user: dedupe and
bot cap -> per user, with the item first-click times (a per-item side input,
vocabulary-sized) and the split cut-offs: history, recency and item age
(components/click_features.py), split (components/click_splits.py) and
tf.Example (components/click_examples.py).

The group by user is Beam's GroupByKey, or on the local runner a shuffle
through shard files (`shuffle`, components/file_shuffle.py) that also holds
the cleaned clicks while the side inputs are computed, so that memory is
bounded by a shard rather than by the click log.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from clicklog import formats
from clicklog.schema import ClickSchema
from components import click_cleaning, click_features, click_splits, file_shuffle
from components import ingestion_report as report_lib
from components.click_examples import to_example  # noqa: F401 (public: tests, conftest)
from components.click_inputs import InputFile  # noqa: F401 (public)
from components.ingestion_report import summarize_counters  # noqa: F401 (public)
from models import config_dict

QUARANTINE_TAG = "quarantine"
COUNTER_ROWS_READ = report_lib.COUNTER_ROWS_READ
COUNTER_ACCEPTED = report_lib.COUNTER_ACCEPTED
COUNTER_QUARANTINED = report_lib.COUNTER_QUARANTINED
TRAIN, EVAL, TEST = click_splits.TRAIN, click_splits.EVAL, click_splits.TEST
SPLIT_BY = ("time", "user")
# How clicks are grouped by user: `files` (components/file_shuffle.py, memory
# bounded by one shard), `group_by_key` (the runner's shuffle), or `auto`:
# files on Beam's local runner, the runner's shuffle elsewhere.
SHUFFLES = ("auto", "files", "group_by_key")
MIN_SHUFFLE_SHARDS = 4  # so that local workers share the per-shard stages


def _event_types(value) -> tuple[tuple[str, float], ...]:
    """A list of accepted types (weight factor 1) or a {type: factor} mapping."""
    if isinstance(value, dict):
        pairs = list(value.items())
    else:
        pairs = [(v, 1.0) if not isinstance(v, (list, tuple)) else tuple(v) for v in value]
    for event_type, factor in pairs:
        if not isinstance(factor, (int, float)) or not factor >= 0:
            raise ValueError(f"ingestion.event_types[{event_type!r}]={factor!r}: expected a "
                             "weight factor >= 0")
    return tuple(sorted((str(t), float(f)) for t, f in pairs))


@dataclasses.dataclass(frozen=True)
class IngestionConfig:
    """Settings of ClickExampleGen (docs/configuration.md, `ingestion`)."""

    input_format: str = "auto"  # auto | csv | jsonl | movietweetings | parquet | tfrecord
    schema: ClickSchema | dict | None = None  # column names/types; see clicklog/schema.py
    history_length: int = 50
    # Splits: see components/click_splits.py.
    split_by: str = "time"
    eval_fraction: float = 0.1
    test_fraction: float = 0.0
    eval_start_timestamp: int | None = None
    test_start_timestamp: int | None = None
    split_seed: int = 0
    # Cleaning: clicks outside [min_timestamp, max_timestamp) are dropped.
    min_timestamp: int | None = None
    max_timestamp: int | None = None
    max_clicks_per_user: int = 0  # 0 = no cap; a user above it is dropped entirely
    # Accepted event types (list) or {type: weight factor}; empty = any type.
    event_types: tuple | dict = ()
    # Ingestion fails when more than this share of a file's rows is quarantined.
    max_bad_fraction: float = 0.5
    # Shuffle by user (SHUFFLES); with files, about this much input per shard.
    shuffle: str = "auto"
    shuffle_shard_mb: int = 32

    def __post_init__(self):
        schema = self.schema
        if not isinstance(schema, ClickSchema):
            schema = ClickSchema.from_dict(schema)
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "event_types", _event_types(self.event_types))
        if self.input_format != "auto" and self.input_format not in formats.FORMATS:
            raise ValueError(f"ingestion.input_format={self.input_format!r}: expected 'auto' "
                             f"or one of {formats.FORMATS}")
        if not isinstance(self.history_length, int) or self.history_length < 1:
            raise ValueError(f"ingestion.history_length={self.history_length!r}: expected a "
                             "positive integer")
        if self.split_by not in SPLIT_BY:
            raise ValueError(f"ingestion.split_by={self.split_by!r}: expected one of {SPLIT_BY}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"ingestion.eval_fraction={self.eval_fraction!r}: expected a "
                             "number strictly between 0 and 1")
        if not 0.0 <= self.test_fraction < 1.0 - self.eval_fraction:
            raise ValueError(f"ingestion.test_fraction={self.test_fraction!r}: expected a "
                             f"number in [0, 1 - eval_fraction={1.0 - self.eval_fraction:g})")
        self._check_cutoffs()
        if not isinstance(self.max_clicks_per_user, int) or self.max_clicks_per_user < 0:
            raise ValueError(f"ingestion.max_clicks_per_user={self.max_clicks_per_user!r}: "
                             "expected a non-negative integer (0 = no cap)")
        if (self.min_timestamp is not None and self.max_timestamp is not None
                and self.min_timestamp >= self.max_timestamp):
            raise ValueError(f"ingestion.min_timestamp={self.min_timestamp} >= max_timestamp="
                             f"{self.max_timestamp}: expected an empty-free time window")
        if self.event_types and not self.schema.event_type:
            raise ValueError(f"ingestion.event_types={dict(self.event_types)}: set "
                             "ingestion.schema.event_type to the column holding the type")
        if self.shuffle not in SHUFFLES:
            raise ValueError(f"ingestion.shuffle={self.shuffle!r}: expected one of {SHUFFLES}")
        if not isinstance(self.shuffle_shard_mb, int) or self.shuffle_shard_mb < 1:
            raise ValueError(f"ingestion.shuffle_shard_mb={self.shuffle_shard_mb!r}: expected "
                             "a positive integer (MiB of input per shuffle shard)")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ValueError(f"ingestion.max_bad_fraction={self.max_bad_fraction!r}: expected "
                             "a number in [0, 1]")

    def _check_cutoffs(self):
        eval_start, test_start = self.eval_start_timestamp, self.test_start_timestamp
        if self.split_by == "user" and (eval_start is not None or test_start is not None):
            raise ValueError("ingestion.eval_start_timestamp/test_start_timestamp: only with "
                             "split_by=time; split_by=user takes eval_fraction/test_fraction")
        if test_start is not None and (eval_start is None or test_start <= eval_start):
            raise ValueError(f"ingestion.test_start_timestamp={test_start}: expected "
                             f"eval_start_timestamp to be set and earlier (got {eval_start})")
        if eval_start is not None and test_start is None and self.test_fraction:
            raise ValueError("ingestion.test_fraction with eval_start_timestamp: give "
                             "test_start_timestamp instead (fixed cut-offs or fractions, not both)")

    @property
    def with_test(self) -> bool:
        return bool(self.test_fraction) or self.test_start_timestamp is not None

    @property
    def splits(self) -> list[str]:
        return click_splits.split_names(self.with_test)

    def shuffle_shards(self, files: dict[str, InputFile], local_runner: bool) -> int:
        """Shards of the file shuffle for `files`, or 0 for the runner's GroupByKey."""
        if self.shuffle == "group_by_key" or (self.shuffle == "auto" and not local_runner):
            return 0
        return file_shuffle.num_shards_for(sum(spec.size for spec in files.values()),
                                           self.shuffle_shard_mb * 2**20, MIN_SHUFFLE_SHARDS)

    @property
    def event_weights(self) -> dict[str, float] | None:
        return dict(self.event_types) if self.event_types else None

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["schema"] = self.schema.to_dict()
        values["event_types"] = dict(self.event_types)
        return values

    @classmethod
    def from_dict(cls, values: dict | None) -> IngestionConfig:
        return config_dict.from_dict(cls, values, "ingestion")


def quarantine_record(path: str, reason: str, raw: str, detail: str = "") -> dict:
    return {"file": path, "reason": reason, "detail": detail, "raw": raw[:1000]}


def _click_json(click: formats.Click) -> str:
    return json.dumps(dataclasses.asdict(click), default=str)


# Clicks cross the shuffle and the materialized per-user lists as bytes that
# FastPrimitivesCoder writes natively (tuples of str/int/float), never as
# pickled dataclasses: pickling a `Click` per element was the largest per-row
# cost, and DirectRunner keeps every grouped value as a Python object, so a
# bytes value is also ~3x smaller there than a tuple and ~6x smaller than a Click.
# The parse step also batches one user's clicks of a bundle into one value
# (as combiner lifting does for a combine), so the shuffle carries fewer
# elements than clicks (3.3x fewer on the 1M benchmark log, 1.33x on the 10M
# one); no speed or memory gain from it was measurable there
# (benchmarks/README.md, ingest.py).
_PACKER = beam.coders.FastPrimitivesCoder()
# Parsed clicks a ParseRecord holds before it emits its per-user batches.
MAX_PENDING_CLICKS = 100_000


def file_indices(files: dict[str, InputFile]) -> dict[str, int]:
    """{path: small int}: packed clicks carry the index instead of the path."""
    return {path: index for index, path in enumerate(sorted(files))}


def click_fields(file_index: int, click: formats.Click) -> tuple:
    """A click without its user id (the shuffle key) -> a tuple of primitives."""
    return (file_index, click.item_id, click.timestamp, click.weight, click.event_type,
            click.features)


def pack_clicks(fields: list[tuple]) -> bytes:
    """`click_fields` tuples of one user -> one compact bytes value."""
    return _PACKER.encode(fields)


def _unpack(user_id: str, fields: tuple, paths: tuple[str, ...]) -> tuple[str, formats.Click]:
    file_index, item_id, timestamp, weight, event_type, features = fields
    return paths[file_index], formats.Click(user_id, item_id, timestamp, weight, event_type,
                                            features)


def unpack_clicks(user_id: str, batches: Iterable[bytes], paths: tuple[str, ...]
                  ) -> list[tuple[str, formats.Click]]:
    """Inverse of `pack_clicks` over all batches of a user: -> [(path, Click)];
    `paths` in `file_indices` order."""
    return [_unpack(user_id, fields, paths) for batch in batches
            for fields in _PACKER.decode(batch)]


class ParseRecord(beam.DoFn):
    """(path, raw record) -> (user_id, packed clicks), or a quarantine record on the side.

    A user's clicks are held until the end of the bundle (or until
    `MAX_PENDING_CLICKS` clicks are held) and emitted as one `pack_clicks`
    value, so a worker holds a bounded number of clicks.
    """

    def __init__(self, files: dict[str, InputFile], config: IngestionConfig):
        self._files = files
        self._config = config
        self._weights = config.event_weights
        self._indices = file_indices(files)
        self._pending: dict[str, list[tuple]] = {}
        self._num_pending = 0

    def start_bundle(self):
        self._pending, self._num_pending = {}, 0

    def _flush(self) -> list[tuple[str, bytes]]:
        batches = [(user, pack_clicks(fields)) for user, fields in self._pending.items()]
        self._pending, self._num_pending = {}, 0
        return batches

    def finish_bundle(self):
        for batch in self._flush():
            yield GlobalWindows.windowed_value(batch)

    def _decode(self, path: str, raw):
        """-> fields (dict) or a text line; raises RowRejected."""
        fmt = self._files[path].fmt
        if fmt == "parquet":
            return raw
        if fmt == "tfrecord":
            return formats.tf_example_to_fields(raw)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise formats.RowRejected("bad_encoding", str(error)) from None
        line = line.rstrip("\r").lstrip("\ufeff")
        if not line.strip():
            raise formats.RowRejected("empty_line")
        return line

    def _printable(self, path: str, raw) -> str:
        """The raw record as quarantine text (only built for rejected rows)."""
        fmt = self._files[path].fmt
        if fmt == "parquet":
            return json.dumps(raw, default=str)
        if fmt == "tfrecord":
            return repr(raw[:300])
        return raw.decode("utf-8", "replace").rstrip("\r")

    def process(self, element):
        path, raw = element
        spec, config = self._files[path], self._config
        try:
            record = self._decode(path, raw)
            if isinstance(record, str):
                click = formats.parse_row(record, spec.fmt, list(spec.columns or ()) or None,
                                          config.schema)
            else:
                click = formats.parse_fields(record, config.schema)
        except formats.RowRejected as rejected:
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_record(
                path, rejected.reason, self._printable(path, raw), rejected.detail))
            return
        weights = self._weights
        reason = click_cleaning.event_rejection(click, config.min_timestamp,
                                                config.max_timestamp, weights)
        if reason:
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_record(
                path, reason, self._printable(path, raw), f"timestamp {click.timestamp}, "
                f"event type {click.event_type!r}"))
            return
        if weights is not None and weights[click.event_type] != 1.0:
            click = dataclasses.replace(click, weight=click.weight * weights[click.event_type])
        self._pending.setdefault(click.user_id, []).append(
            click_fields(self._indices[path], click))
        self._num_pending += 1
        if self._num_pending >= MAX_PENDING_CLICKS:
            yield from self._flush()


ITEM_FIRST_SEEN_TAG = "item_first_seen"
TIMESTAMPS_TAG = "timestamps"
ACCEPTED_TAG = "accepted"


def clean_user(element, paths: tuple[str, ...], max_clicks_per_user: int) -> Iterable:
    """(user_id, [packed clicks]) -> (user_id, packed kept clicks in time order).

    Side outputs: quarantined duplicates / capped users, (item, first click
    time) once per item of this user (for the per-item min), and this user's
    accepted timestamps as one list (for `TimestampQuantiles`).
    """
    user_id, batches = element
    clicks = unpack_clicks(user_id, batches, paths)
    kept, rejected = click_cleaning.dedupe_and_cap(clicks, max_clicks_per_user)
    for path, click, reason in rejected:
        yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_record(
            path, reason, _click_json(click)))
    if not kept:
        return
    first_seen: dict[str, int] = {}
    for _, click in kept:  # kept is in time order: the first time seen is the item's min
        first_seen.setdefault(click.item_id, click.timestamp)
    for item in first_seen.items():
        yield beam.pvalue.TaggedOutput(ITEM_FIRST_SEEN_TAG, item)
    yield beam.pvalue.TaggedOutput(TIMESTAMPS_TAG, [click.timestamp for _, click in kept])
    index = {path: n for n, path in enumerate(paths)}
    yield user_id, pack_clicks([click_fields(index[path], c) for path, c in kept])


class TimestampQuantiles(beam.CombineFn):
    """`ApproximateQuantiles` of timestamps that arrive as one list per user.

    Each list is added one timestamp at a time, exactly as the unbatched
    combiner adds elements: Beam's ``input_batched=True`` path buffers and
    collapses whole batches at once and gives (slightly) different quantiles,
    hence different split cut-offs, for the same clicks. One element per user
    instead of one per click saves the per-element Beam overhead.
    """

    def __init__(self):
        self._quantiles = beam.transforms.stats.ApproximateQuantilesCombineFn.create(
            click_splits.NUM_QUANTILES)

    def create_accumulator(self):
        return self._quantiles.create_accumulator()

    def add_input(self, accumulator, timestamps):
        add = self._quantiles.add_input
        for timestamp in timestamps:
            accumulator = add(accumulator, timestamp)
        return accumulator

    def merge_accumulators(self, accumulators):
        return self._quantiles.merge_accumulators(accumulators)

    def compact(self, accumulator):
        return self._quantiles.compact(accumulator)

    def extract_output(self, accumulator):
        return self._quantiles.extract_output(accumulator)


def user_examples(element, paths: tuple[str, ...], splits: list[str], config: IngestionConfig,
                  first_seen: dict[str, int], cutoff: tuple) -> Iterable:
    """(user_id, packed kept clicks) -> serialized examples tagged by split name,
    plus ((path, "accepted", split), count) rows tagged `ACCEPTED_TAG`."""
    user_id, packed = element
    clicks = unpack_clicks(user_id, [packed], paths)
    with_event_type = bool(config.schema.event_type)
    user_split = None
    if config.split_by == "user":
        user_split = splits[click_splits.split_by_user(
            user_id, config.eval_fraction, config.test_fraction, config.split_seed)]
    counts: dict[tuple[str, str], int] = {}
    for path, click, features in click_features.user_click_features(clicks,
                                                                     config.history_length):
        split = user_split or splits[click_splits.split_by_time(click.timestamp, cutoff)]
        age = click.timestamp - first_seen[click.item_id]
        yield beam.pvalue.TaggedOutput(split, to_example(
            click, click_features.ClickFeatures(features.history,
                                                features.seconds_since_previous_click, age),
            with_event_type))
        counts[path, split] = counts.get((path, split), 0) + 1
    for (path, split), count in counts.items():
        yield beam.pvalue.TaggedOutput(ACCEPTED_TAG, ((path, COUNTER_ACCEPTED, split), count))


class IngestClicks(beam.PTransform):
    """(path, raw record) -> {split: serialized examples, "quarantine",
    "counters", "cutoff"}.

    `quarantine` is {"rows": rows rejected on their own, "users": clicks
    rejected by the per-user rules (duplicates, bot cap)}, quarantine records
    with their reason. `counters` is a PCollection of ((path, counter, reason), count) rows, one
    per file and reason: small however large the input. `cutoff` holds one
    (eval_start, test_start) pair ((None, None) for split_by=user).
    """

    def __init__(self, files: dict[str, InputFile], config: IngestionConfig,
                 shuffle_dir: str | None = None, num_shards: int = 0):
        """`num_shards` > 0: group by user and hold the cleaned clicks through
        that many shard files under `shuffle_dir` (components/file_shuffle.py,
        `IngestionConfig.shuffle_shards`); 0: the runner's GroupByKey."""
        super().__init__()
        if num_shards and not shuffle_dir:
            raise ValueError(f"IngestClicks: num_shards={num_shards} needs a shuffle_dir")
        self._files = files
        self._config = config
        self._shuffle_dir = shuffle_dir
        self._num_shards = num_shards

    def _shuffle_path(self, name: str) -> str:
        return FileSystems.join(self._shuffle_dir, name)

    def _cutoff(self, pipeline, timestamps):
        config = self._config
        if config.split_by == "user":
            return pipeline | "NoCutoff" >> beam.Create([(None, None)])
        if config.eval_start_timestamp is not None:
            return pipeline | "FixedCutoff" >> beam.Create(
                [(config.eval_start_timestamp, config.test_start_timestamp)])
        return (timestamps
                | "Quantiles" >> beam.CombineGlobally(TimestampQuantiles())
                | "Cutoff" >> beam.Map(click_splits.cutoffs_from_quantiles,
                                       config.eval_fraction, config.test_fraction))

    def expand(self, records):
        config = self._config
        paths = tuple(sorted(self._files))
        splits = config.splits
        parsed = records | "Parse" >> beam.ParDo(ParseRecord(self._files, config)).with_outputs(
            QUARANTINE_TAG, main="clicks")
        if self._num_shards:
            group = file_shuffle.ThroughFiles(self._shuffle_path("by_user"), self._num_shards,
                                              group=True)
        else:
            group = beam.GroupByKey()
        users = (
            parsed.clicks
            | "GroupByUser" >> group
            | "CleanUsers" >> beam.FlatMap(clean_user, paths, config.max_clicks_per_user
                                           ).with_outputs(QUARANTINE_TAG, ITEM_FIRST_SEEN_TAG,
                                                          TIMESTAMPS_TAG, main="kept"))
        first_seen = users[ITEM_FIRST_SEEN_TAG] | "ItemFirstSeen" >> beam.CombinePerKey(min)
        cutoff = self._cutoff(records.pipeline, users[TIMESTAMPS_TAG])
        # The side inputs come from the kept clicks, so the examples are built
        # in a later stage; what waits for them is the compact per-user list,
        # never the examples with their histories (in shard files, with the
        # file shuffle: a step waiting for side inputs otherwise holds its
        # whole input in the local runner's memory).
        kept = users.kept
        if self._num_shards:
            kept = kept | "HoldKept" >> file_shuffle.ThroughFiles(
                self._shuffle_path("kept"), self._num_shards, group=False)
        examples = kept | "Examples" >> beam.FlatMap(
            user_examples, paths, splits, config, first_seen=beam.pvalue.AsDict(first_seen),
            cutoff=beam.pvalue.AsSingleton(cutoff)).with_outputs(ACCEPTED_TAG, *splits)

        # The quarantine stays in two parts and each count source is summed
        # before the Flatten: the local runner materialises a Flatten's output
        # (its consumers cannot be fused with all of its producers), so
        # quarantined rows or one (key, 1) row per input record would
        # otherwise wait in its memory.
        quarantine = {"rows": parsed[QUARANTINE_TAG], "users": users[QUARANTINE_TAG]}
        counts = [
            records | "ReadKeys" >> beam.Map(lambda pr: ((pr[0], COUNTER_ROWS_READ, ""), 1))
            | "CountRead" >> beam.CombinePerKey(sum),
            examples[ACCEPTED_TAG] | "CountAccepted" >> beam.CombinePerKey(sum),
        ]
        for part, rows in quarantine.items():
            counts.append(rows | f"QuarantineKeys[{part}]" >> beam.Map(
                lambda q: ((q["file"], COUNTER_QUARANTINED, q["reason"]), 1))
                | f"CountQuarantined[{part}]" >> beam.CombinePerKey(sum))
        counters = (counts | "AllCounts" >> beam.Flatten()
                    | "Count" >> beam.CombinePerKey(sum))
        outputs = {split: examples[split] for split in splits}
        outputs.update({"quarantine": quarantine, "counters": counters, "cutoff": cutoff})
        return outputs


def check_report(report: dict, config: IngestionConfig) -> None:
    """Raises if counts do not reconcile, a file is mostly garbage or a split is empty."""
    report_lib.check_report(report, config.max_bad_fraction)
