"""Finding and reading click-log files: one file, a glob or a directory.

`resolve_input_files` expands the input and reads every file before any Beam
work: each CSV header (or Parquet column set) against the declared schema,
each gzip/bzip2 stream to its end marker, every Parquet row group and every
TFRecord record's checksums; a zero-byte or unreadable file fails too. So a
wrong or damaged file stops the run with its name and the offset instead of
becoming a shorter dataset (Beam's reader ends a compressed file where its
bytes end, and TensorFlow's TFRecord reader at a record cut short, silently:
docs/dependencies.md). `check_unchanged` then finds a file that changed while
it was read. `ReadClickRecords` reads CSV files whole (a quoted field may
hold a newline) and the other formats in byte ranges with Beam's ``ReadAll*``
transforms, and tags each record with its file path.
"""

from __future__ import annotations

import bz2
import dataclasses
import os
import zlib

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from clicklog import formats
from clicklog.errors import InputError
from clicklog.schema import ClickSchema


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One matched input file, its format and (CSV) header columns."""

    path: str
    fmt: str
    columns: tuple[str, ...] | None = None
    empty: bool = False  # no rows after decompression: reported with 0 rows, never read
    size: int = 0  # bytes as stored (sizes the shuffle shards)
    modified: float = 0.0  # last-modified time when resolved (unix seconds)
    # Why the whole file was set aside (ingestion.corrupt_files=quarantine);
    # "" for a file that is read.
    quarantined: str = ""


def _list_paths(input_base: str) -> list[str]:
    import tensorflow as tf

    if tf.io.gfile.isdir(input_base):
        names = [n for n in tf.io.gfile.listdir(input_base)
                 if not n.startswith((".", "_"))]  # _SUCCESS, .crc and friends
        paths = [os.path.join(input_base, n) for n in names]
    else:
        paths = tf.io.gfile.glob(input_base)
    return sorted(p for p in paths if not tf.io.gfile.isdir(p))


def file_version(path: str) -> tuple[int, float]:
    """(size in bytes, last-modified unix seconds) of one file; raises the
    file system's error when it cannot be stat'ed (a dangling link, a file
    removed since it was listed)."""
    metadata = FileSystems.match([path])[0].metadata_list[0]
    return metadata.size_in_bytes, getattr(metadata, "last_updated_in_seconds", 0.0)


def _read_first_line(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        return f.readline()


def _csv_columns(path: str, schema: ClickSchema) -> tuple[str, ...] | None:
    """Header columns, or None for a file with no bytes after decompression."""
    header = _read_first_line(path)
    if not header:
        return None
    try:
        text = header.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise InputError(f"click log {path!r}: header {header[:80]!r} is not UTF-8 ({error}); "
                         "expected a UTF-8 CSV header") from None
    if not text.strip():
        raise InputError(f"click log {path!r}: first line is blank; expected a CSV header "
                         f"naming {formats.required_columns(schema)}")
    return tuple(formats.parse_header(text, path, schema))


_DECOMPRESSORS = {
    CompressionTypes.GZIP: ("gzip", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)),
    CompressionTypes.BZIP2: ("bzip2", bz2.BZ2Decompressor),
}
_CHUNK = 1 << 20


def check_compressed_stream(path: str) -> None:
    """Decompresses a gzip/bzip2 file to its end (concatenated members
    included) and raises ValueError naming it if the stream is cut short or
    corrupt; other files pass untouched."""
    kind = CompressionTypes.detect_compression_type(path)
    if kind not in _DECOMPRESSORS:
        return
    name, new = _DECOMPRESSORS[kind]
    decompressor, offset = new(), 0
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        pending = f.read(_CHUNK)
        while pending:
            if decompressor.eof:  # the previous member ended with the previous chunk
                decompressor = new()
            try:
                decompressor.decompress(pending)
            except (zlib.error, OSError, EOFError) as error:
                raise InputError(f"click log {path!r}: corrupt {name} data near byte {offset:,} "
                                 f"({error}); expected a complete {name} file") from None
            offset += len(pending)
            if decompressor.eof and decompressor.unused_data:  # the next member
                pending = decompressor.unused_data
                offset -= len(pending)
            else:
                pending = f.read(_CHUNK)
    if not decompressor.eof:
        raise InputError(f"click log {path!r}: the {name} stream ends at byte {offset:,} before "
                         f"its end marker (a truncated or partly copied file); expected a "
                         f"complete {name} file")


def _check_parquet(path: str, schema: ClickSchema) -> None:
    """Reads the footer and decodes every row group of the schema's columns."""
    import pyarrow.parquet as pq

    columns = formats.required_columns(schema)
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            parquet = pq.ParquetFile(f)
            formats.check_columns(list(parquet.schema_arrow.names), path, schema)
            for group in range(parquet.num_row_groups):
                try:
                    parquet.read_row_group(group, columns=columns)
                except Exception as error:  # pyarrow raises several types
                    raise InputError(
                        f"click log {path!r}: Parquet row group {group} of "
                        f"{parquet.num_row_groups} is unreadable ({error}); expected a "
                        "complete Parquet file") from error
    except InputError:
        raise
    except Exception as error:  # pyarrow raises several types; re-raised with the file name
        raise InputError(f"click log {path!r}: not a readable Parquet file ({error}); "
                         "expected Parquet with the schema's columns") from error


def _check_tfrecord(path: str) -> None:
    """Reads every record's framing and checksums (a truncated last record is
    what TensorFlow's own reader skips without a word)."""
    from apache_beam.io.tfrecordio import _TFRecordUtil  # Beam 2.59 (requirements.lock)

    number, offset = 0, 0
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        while True:
            try:
                record = _TFRecordUtil.read_record(f)
            except ValueError as error:
                raise InputError(
                    f"click log {path!r}: TFRecord record {number:,} at byte {offset:,} is "
                    f"cut short or corrupt ({str(error)[:120]}); expected complete records "
                    "with valid checksums") from None
            if record is None:
                return
            number += 1
            offset += 16 + len(record)


def _check_file(path: str, fmt: str, schema: ClickSchema) -> tuple[str, ...] | None:
    """Reads `path` enough to know it is whole and matches `schema`; returns
    the CSV header columns (None: no rows, or not CSV). Raises InputError."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.read(1)
    except Exception as error:  # OSError and the filesystems' own types
        raise InputError(f"click log {path!r}: cannot be read ({error}); expected a "
                         "readable file") from None
    if fmt in formats.TEXT_FORMATS or fmt == "tfrecord":
        check_compressed_stream(path)
    if fmt == "csv":
        return _csv_columns(path, schema)
    if fmt == "parquet":
        _check_parquet(path, schema)
    elif fmt == "tfrecord":
        _check_tfrecord(path)
    return None


def resolve_input_files(input_base: str, input_format: str,
                        schema: ClickSchema | None = None,
                        corrupt_files: str = "fail") -> dict[str, InputFile]:
    """Expands a file, glob or directory and checks each file against `schema`.

    Every file is read before any Beam work: compressed streams to their end,
    CSV headers, Parquet row groups and TFRecord checksums, so a truncated,
    corrupt, empty or unreadable file stops the run at once instead of
    becoming a shorter dataset.

    Args:
      input_base: a file, a glob, or a directory (files starting with ``.``
        or ``_`` in a directory are skipped).
      input_format: ``auto`` (by extension) or one of `formats.FORMATS`.
      schema: the declared columns (default: ``user_id,item_id,timestamp``).
      corrupt_files: ``fail`` (raise) or ``quarantine``: set a zero-byte,
        unreadable, truncated or corrupt file aside whole, with its reason
        (`InputFile.quarantined`), and read the others.

    Returns:
      {path: InputFile}, sorted by path.

    Raises:
      InputError: nothing matches, or a file's format, header, columns or
        bytes are unusable; the message names the file and the offset.
    """
    schema = schema or ClickSchema()
    paths = _list_paths(input_base)
    if not paths:
        raise InputError(f"click log input {input_base!r}: no file matches; expected a file, "
                         "a glob or a directory of click logs")
    files = {}
    for path in paths:
        fmt = formats.detect_format(path) if input_format == "auto" else input_format
        try:
            size, modified = file_version(path)
        except Exception as error:  # a dangling link, a file removed since it was listed
            (size, modified), problem = (0, 0.0), InputError(
                f"click log {path!r}: cannot be read ({error}); expected a readable file")
        else:
            problem = None if size else InputError(
                f"click log {path!r}: the file is empty (0 bytes; a failed or unfinished "
                "export?); expected click rows (ingestion.corrupt_files=quarantine sets such "
                "files aside)")
        columns = None
        if problem is None:
            try:
                columns = _check_file(path, fmt, schema)
            except InputError as error:
                problem = error
        if problem is not None:
            if corrupt_files != "quarantine":
                raise problem
            files[path] = InputFile(path, fmt, size=size, modified=modified,
                                    quarantined=str(problem))
            continue
        empty = fmt == "csv" and columns is None
        files[path] = InputFile(path, fmt, columns, empty=empty, size=size, modified=modified)
    return files


def input_fingerprint(patterns: list[str]) -> str:
    """Names the current version of every file matched by `patterns` (a file,
    glob or directory each) by path, size and modification time, as TFX's
    file-based ExampleGen does for its cache key."""
    lines = []
    for pattern in patterns:
        for path in _list_paths(pattern):
            size, modified = file_version(path)
            lines.append(f"{path}:{size}:{modified}")
    return "\n".join(lines)


def check_unchanged(files: dict[str, InputFile]) -> None:
    """Raises InputError naming a file whose size or modification time differs
    from when it was resolved: it changed while it was read, so the rows read
    are from no single version of it."""
    for path, spec in sorted(files.items()):
        if spec.quarantined:
            continue
        try:
            now = file_version(path)
        except Exception as error:  # removed or unreadable since
            now = (None, str(error))
        if now != (spec.size, spec.modified):
            raise InputError(
                f"click log {path!r}: changed while it was read (size {spec.size:,} bytes, "
                f"modified {spec.modified:.3f} -> size {now[0]}, modified {now[1]}); expected "
                "input files that are complete and not written to during the run")


def read_csv_file(path: str, max_record_lines: int = formats.MAX_CSV_RECORD_LINES):
    """A CSV file -> (path, (line number, record bytes)) for every record
    after the header; a quoted field may span lines (`formats.csv_records`)."""
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        records = formats.csv_records(iter(f.readline, b""), max_record_lines)
        next(records, None)  # the header, checked by resolve_input_files
        for record in records:
            yield path, record


class ReadClickRecords(beam.PTransform):
    """-> (path, record): (line number, record bytes) for CSV, raw line bytes
    (other text formats), serialized tf.Example bytes (``tfrecord``) or a
    column dict (``parquet``).

    CSV files are read whole, one file per worker (a quoted field may hold a
    newline, so a file cannot be cut at an arbitrary line); the other formats
    are split into byte ranges read in parallel.
    """

    def __init__(self, files: dict[str, InputFile],
                 csv_max_record_lines: int = formats.MAX_CSV_RECORD_LINES):
        super().__init__()
        self._files = files
        self._csv_max_record_lines = csv_max_record_lines

    def expand(self, pbegin):
        groups: dict[str, list[str]] = {}
        for path, spec in sorted(self._files.items()):
            if not spec.empty and not spec.quarantined:
                kind = "csv" if spec.fmt == "csv" else (
                    "text" if spec.fmt in formats.TEXT_FORMATS else spec.fmt)
                groups.setdefault(kind, []).append(path)
        reads = []
        for kind, paths in sorted(groups.items()):
            files = pbegin | f"Paths[{kind}]" >> beam.Create(paths)
            if kind == "csv":
                reads.append(files
                             | "SpreadCsvFiles" >> beam.Reshuffle()
                             | "Read[csv]" >> beam.FlatMap(read_csv_file,
                                                           self._csv_max_record_lines))
                continue
            if kind == "text":
                reader = beam.io.ReadAllFromText(coder=beam.coders.BytesCoder(),
                                                 strip_trailing_newlines=True, with_filename=True)
            elif kind == "parquet":
                reader = beam.io.ReadAllFromParquet(with_filename=True)
            else:
                reader = beam.io.ReadAllFromTFRecord(with_filename=True)
            reads.append(files | f"Read[{kind}]" >> reader)
        if not reads:
            return pbegin | "NoRecords" >> beam.Create([])
        return reads | "AllRecords" >> beam.Flatten()
