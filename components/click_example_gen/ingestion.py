"""ClickExampleGen's Beam transform: records -> split examples.

Every input record ends in exactly one place: an example of some split
(`accepted`), an accepted impression (`impressions`, by event type;
impressions.py) or the quarantine with a reason; the counters reconcile per
input file (`rows_read == accepted + sum(impressions) + sum(quarantined)`).

Stages (one shuffle by user, one small per-item combine, one quantile combine):
parse + row rules (cleaning.py) -> group by user: dedupe and bot cap -> per
user, with the item first-click times (a per-item side input,
vocabulary-sized) and the split cut-offs: history, recency and item age
(click_features.py), split (splits.py) and tf.Example (examples.py).

The group by user is Beam's GroupByKey, or on the local runner a shuffle
through shard files (`shuffle`, file_shuffle.py) that also holds
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
from components.click_example_gen import cleaning as click_cleaning
from components.click_example_gen import click_features, file_shuffle
from components.click_example_gen import impressions as impressions_lib
from components.click_example_gen import report as report_lib
from components.click_example_gen import splits as click_splits
from components.click_example_gen.config import IngestionConfig
from components.click_example_gen.examples import to_example
from components.click_example_gen.inputs import InputFile

QUARANTINE_TAG = "quarantine"
COUNTER_ROWS_READ = report_lib.COUNTER_ROWS_READ
COUNTER_ACCEPTED = report_lib.COUNTER_ACCEPTED
COUNTER_QUARANTINED = report_lib.COUNTER_QUARANTINED
COUNTER_IMPRESSIONS = report_lib.COUNTER_IMPRESSIONS
MIN_SHUFFLE_SHARDS = 4  # so that local workers share the per-shard stages


def shuffle_shards(config: IngestionConfig, files: dict[str, InputFile],
                   local_runner: bool) -> int:
    """Shards of the file shuffle for `files`, or 0 for the runner's GroupByKey."""
    if config.shuffle == "group_by_key" or (config.shuffle == "auto" and not local_runner):
        return 0
    return file_shuffle.num_shards_for(sum(spec.size for spec in files.values()),
                                       config.shuffle_shard_mb * 2**20, MIN_SHUFFLE_SHARDS)


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
            click.features, click.shown)


def pack_clicks(fields: list[tuple]) -> bytes:
    """`click_fields` tuples of one user -> one compact bytes value."""
    return _PACKER.encode(fields)


def _unpack(user_id: str, fields: tuple, paths: tuple[str, ...]) -> tuple[str, formats.Click]:
    file_index, item_id, timestamp, weight, event_type, features, shown = fields
    return paths[file_index], formats.Click(user_id, item_id, timestamp, weight, event_type,
                                            features, shown)


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
        self._accepted = config.accepted_event_types  # clicks and impressions
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
        """-> fields (dict) or a text record; raises RowRejected."""
        fmt = self._files[path].fmt
        if fmt == "parquet":
            return raw
        if fmt == "tfrecord":
            return formats.tf_example_to_fields(raw)
        if fmt == "csv":
            raw = raw[1]  # (line number, record)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise formats.RowRejected("bad_encoding", str(error)) from None
        line = line.rstrip("\r")
        if fmt != "csv":
            line = line.lstrip("\ufeff")
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
        if fmt == "csv":
            raw = raw[1]
        return raw.decode("utf-8", "replace").rstrip("\r")

    def _where(self, path: str, raw) -> str:
        """Where a rejected record is in its file, as a detail prefix."""
        return f"line {raw[0]}: " if self._files[path].fmt == "csv" else ""

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
                path, rejected.reason, self._printable(path, raw),
                self._where(path, raw) + rejected.detail))
            return
        weights = self._weights
        reason = click_cleaning.event_rejection(click, config.min_timestamp,
                                                config.max_timestamp, self._accepted)
        if reason:
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_record(
                path, reason, self._printable(path, raw), self._where(path, raw) +
                f"timestamp {click.timestamp}, "
                f"event type {click.event_type!r}"))
            return
        if weights is not None and weights.get(click.event_type, 1.0) != 1.0:
            click = dataclasses.replace(click, weight=click.weight * weights[click.event_type])
        self._pending.setdefault(click.user_id, []).append(
            click_fields(self._indices[path], click))
        self._num_pending += 1
        if self._num_pending >= MAX_PENDING_CLICKS:
            yield from self._flush()


ITEM_FIRST_SEEN_TAG = "item_first_seen"
TIMESTAMPS_TAG = "timestamps"
ACCEPTED_TAG = "accepted"
IMPRESSIONS_TAG = "impressions"


def clean_user(element, paths: tuple[str, ...], max_clicks_per_user: int,
               impression_types: tuple[str, ...] = ()) -> Iterable:
    """(user_id, [packed clicks]) -> (user_id, packed kept clicks and
    impressions in time order).

    Side outputs: quarantined duplicates / capped users, (item, first click
    time) once per clicked item of this user (for the per-item min), this
    user's accepted click timestamps as one list (for `TimestampQuantiles`),
    and ((path, "impressions", event type), count) rows of the kept
    impressions (`IMPRESSIONS_TAG`). Impressions enter neither the first
    click times nor the split cut-offs.
    """
    user_id, batches = element
    clicks = unpack_clicks(user_id, batches, paths)
    kept, rejected = click_cleaning.dedupe_and_cap(clicks, max_clicks_per_user,
                                                   impression_types)
    for path, click, reason in rejected:
        yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, quarantine_record(
            path, reason, _click_json(click)))
    kept_clicks, kept_impressions = impressions_lib.split_events(kept, impression_types)
    shown: dict[tuple[str, str], int] = {}
    for path, click in kept_impressions:
        shown[path, click.event_type] = shown.get((path, click.event_type), 0) + 1
    for (path, event_type), count in shown.items():
        yield beam.pvalue.TaggedOutput(IMPRESSIONS_TAG,
                                       ((path, COUNTER_IMPRESSIONS, event_type), count))
    if not kept_clicks:  # impressions without a click to attach to: counted, no example
        return
    first_seen: dict[str, int] = {}
    for _, click in kept_clicks:  # in time order: the first time seen is the item's min
        first_seen.setdefault(click.item_id, click.timestamp)
    for item in first_seen.items():
        yield beam.pvalue.TaggedOutput(ITEM_FIRST_SEEN_TAG, item)
    yield beam.pvalue.TaggedOutput(TIMESTAMPS_TAG, [click.timestamp for _, click in kept_clicks])
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
    clicks, impressions = impressions_lib.split_events(
        unpack_clicks(user_id, [packed], paths), config.impression_event_types)
    negatives = None
    if config.with_impressions:
        ordered = [c for _, c in clicks]
        negatives = impressions_lib.impressed_negatives(
            ordered, impressions_lib.with_listed([c for _, c in impressions], ordered),
            config.impression_window_seconds, config.max_impressed_negatives)
    with_event_type = bool(config.schema.event_type)
    user_split = None
    if config.split_by == "user":
        user_split = splits[click_splits.split_by_user(
            user_id, config.eval_fraction, config.test_fraction, config.split_seed)]
    counts: dict[tuple[str, str], int] = {}
    # Eval/test split -> the user's history when that split began (the history
    # of the user's first click in it: clicks come in time order).
    at_cutoff: dict[str, tuple[str, ...]] = {}
    for n, (path, click, features) in enumerate(click_features.user_click_features(
            clicks, config.history_length)):
        split = user_split or splits[click_splits.split_by_time(click.timestamp, cutoff)]
        age = click.timestamp - first_seen[click.item_id]
        frozen = None
        if split != click_splits.TRAIN:
            frozen = at_cutoff.setdefault(split, features.history)
        shown = None if negatives is None else negatives[n]
        yield beam.pvalue.TaggedOutput(split, to_example(
            click, click_features.ClickFeatures(features.history,
                                                features.seconds_since_previous_click, age,
                                                frozen, shown),
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
        that many shard files under `shuffle_dir` (file_shuffle.py,
        `shuffle_shards`); 0: the runner's GroupByKey."""
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
            | "CleanUsers" >> beam.FlatMap(clean_user, paths, config.max_clicks_per_user,
                                           config.impression_event_types
                                           ).with_outputs(QUARANTINE_TAG, ITEM_FIRST_SEEN_TAG,
                                                          TIMESTAMPS_TAG, IMPRESSIONS_TAG,
                                                          main="kept"))
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
            users[IMPRESSIONS_TAG] | "CountImpressions" >> beam.CombinePerKey(sum),
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
