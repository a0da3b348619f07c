"""A shuffle through files, for Beam's local runner: memory bounded by one shard.

Why it exists: Beam's local FnApiRunner (DirectRunner) keeps every value of a
`GroupByKey` in the runner process until the stage that consumes it runs
(its in-memory grouping buffer), hands each worker its share of a stage input
at once, and materialises in the same way the main input of any step that
waits for a side input. ClickExampleGen does both with per-click data, so on
that runner its memory grew with the click log (benchmarks/README.md).

`ThroughFiles` replaces such a wait: each bundle appends its (key, value)
elements to one file per shard (a stable hash of the key picks the shard, so
all values of a key land in one shard) and emits only (shard, path) pairs.
Once every file is written (they are a side input, so the next stage waits
for them), a `Create(range(num_shards))` fans the shard numbers out to the
workers, and each reads its shards one at a time: grouped by key
(`group=True`, like GroupByKey) or as the elements were written. Peak memory
is then about one shard's data, and the caller bounds that by choosing
`num_shards` from the input size (`num_shards_for`).

It uses only Beam transforms and Beam's `FileSystems`, so it runs on any
runner and any file system Beam knows; on a runner with a real shuffle
(Dataflow, Flink, Spark) plain `GroupByKey` is the better choice. Files of a
failed or retried bundle are never read (only paths a committed bundle
emitted are); the caller deletes the directory when the pipeline is done.
"""

from __future__ import annotations

import math
import struct
import uuid
import zlib
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

_CODER = beam.coders.FastPrimitivesCoder()
_LENGTH = struct.Struct("<I")
# Each shard of a bundle keeps one file open until the bundle ends.
MAX_SHARDS = 512


def shard_of(key: str, num_shards: int) -> int:
    """The same shard for the same key in every process (unlike `hash`)."""
    return zlib.crc32(key.encode("utf-8")) % num_shards


def num_shards_for(input_bytes: int, shard_bytes: int, min_shards: int = 1) -> int:
    """Shards so that each holds about `shard_bytes` of the input (at most `MAX_SHARDS`)."""
    if shard_bytes <= 0:
        raise ValueError(f"shard_bytes={shard_bytes!r}: expected a positive number of bytes")
    return max(min_shards, min(MAX_SHARDS, math.ceil(max(input_bytes, 0) / shard_bytes)))


def write_record(stream, element) -> None:
    payload = _CODER.encode(element)
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)


def read_records(path: str) -> Iterator:
    """The elements `write_record` wrote to `path`, in order; a cut-off file is an error."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        while True:
            header = stream.read(_LENGTH.size)
            if not header:
                return
            if len(header) < _LENGTH.size:
                raise OSError(f"shuffle file {path!r}: truncated record header")
            (length,) = _LENGTH.unpack(header)
            payload = stream.read(length)
            if len(payload) < length:
                raise OSError(f"shuffle file {path!r}: record of {length} bytes cut off at "
                              f"{len(payload)}")
            yield _CODER.decode(payload)


class WriteShardFiles(beam.DoFn):
    """(key, value) -> appended to this bundle's file of the key's shard;
    emits (shard, path) once per file when the bundle ends."""

    def __init__(self, directory: str, num_shards: int, prefix: str):
        self._directory = directory
        self._num_shards = num_shards
        self._prefix = prefix
        self._open: dict[int, tuple[str, object]] = {}

    def start_bundle(self):
        self._open = {}

    def process(self, element):
        shard = shard_of(element[0], self._num_shards)
        entry = self._open.get(shard)
        if entry is None:
            path = FileSystems.join(self._directory,
                                    f"{self._prefix}-{shard:05d}-{uuid.uuid4().hex}")
            entry = self._open[shard] = (path, FileSystems.create(
                path, mime_type="application/octet-stream",
                compression_type=CompressionTypes.UNCOMPRESSED))
        write_record(entry[1], element)

    def finish_bundle(self):
        opened, self._open = self._open, {}
        for shard, (path, stream) in sorted(opened.items()):
            stream.close()
            yield GlobalWindows.windowed_value((shard, path))


def read_shard(shard: int, files: Iterable[tuple[int, str]], group: bool) -> Iterator:
    """One shard's elements: (key, [values]) per key in key order when `group`,
    else (key, value) as written, file by file in path order."""
    paths = sorted(path for number, path in files if number == shard)
    if not group:
        for path in paths:
            yield from read_records(path)
        return
    grouped: dict = {}
    for path in paths:
        for key, value in read_records(path):
            grouped.setdefault(key, []).append(value)
    for key in sorted(grouped):
        yield key, grouped.pop(key)


class ThroughFiles(beam.PTransform):
    """(key: str, value) -> (key, [values]) (`group=True`) or the same
    elements, by way of `num_shards` shard files under `directory`.

    Every value must be encodable by Beam's FastPrimitivesCoder (primitives,
    bytes and tuples/lists of them).
    """

    def __init__(self, directory: str, num_shards: int, group: bool):
        super().__init__()
        if not 1 <= num_shards <= MAX_SHARDS:
            raise ValueError(f"num_shards={num_shards!r}: expected 1..{MAX_SHARDS}")
        self._directory = directory
        self._num_shards = num_shards
        self._group = group

    def expand(self, pcoll):
        files = pcoll | "WriteShards" >> beam.ParDo(
            WriteShardFiles(self._directory, self._num_shards, "shuffle"))
        return (pcoll.pipeline
                | "Shards" >> beam.Create(range(self._num_shards))
                | "Distribute" >> beam.Reshuffle()
                | "ReadShards" >> beam.FlatMap(read_shard, files=beam.pvalue.AsList(files),
                                               group=self._group))
