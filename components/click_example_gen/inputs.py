"""Finding and reading click-log files: one file, a glob or a directory.

`resolve_input_files` expands the input and checks each file's header (CSV)
or column set (Parquet) against the declared schema, and that each gzip or
bzip2 text file's compressed stream is complete, before any Beam work, so a
wrong file fails fast with its name. (Beam's reader ends a compressed file
where its bytes end without checking for the stream's end marker: a truncated
file would be read up to the damage, silently.) `ReadClickRecords` reads every file
with Beam's ``ReadAll*`` transforms (files are split into bundles, so one big
file is read in parallel) and tags each record with its file path.
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
    empty: bool = False  # zero bytes: reported with 0 rows, never read
    size: int = 0  # bytes as stored (sizes the shuffle shards)


def _list_paths(input_base: str) -> list[str]:
    import tensorflow as tf

    if tf.io.gfile.isdir(input_base):
        names = [n for n in tf.io.gfile.listdir(input_base)
                 if not n.startswith((".", "_"))]  # _SUCCESS, .crc and friends
        paths = [os.path.join(input_base, n) for n in names]
    else:
        paths = tf.io.gfile.glob(input_base)
    return sorted(p for p in paths if not tf.io.gfile.isdir(p))


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
    import pyarrow.parquet as pq

    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            columns = pq.read_schema(f).names
    except Exception as error:  # pyarrow raises several types; re-raised with the file name
        raise InputError(f"click log {path!r}: not a readable Parquet file ({error}); "
                         "expected Parquet with the schema's columns") from error
    formats.check_columns(list(columns), path, schema)


def resolve_input_files(input_base: str, input_format: str,
                        schema: ClickSchema | None = None) -> dict[str, InputFile]:
    """Expands a file, glob or directory and checks each file against `schema`.

    Args:
      input_base: a file, a glob, or a directory (files starting with ``.``
        or ``_`` in a directory are skipped).
      input_format: ``auto`` (by extension) or one of `formats.FORMATS`.
      schema: the declared columns (default: ``user_id,item_id,timestamp``).

    Returns:
      {path: InputFile}, sorted by path.

    Raises:
      InputError: nothing matches, or a file's format, header or columns are
        unusable; the message names the file.
    """
    schema = schema or ClickSchema()
    paths = _list_paths(input_base)
    if not paths:
        raise InputError(f"click log input {input_base!r}: no file matches; expected a file, "
                         "a glob or a directory of click logs")
    files = {}
    for path in paths:
        fmt = formats.detect_format(path) if input_format == "auto" else input_format
        size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
        if size == 0:
            files[path] = InputFile(path, fmt, empty=True)
            continue
        columns = None
        if fmt in formats.TEXT_FORMATS:
            check_compressed_stream(path)
        if fmt == "csv":
            columns = _csv_columns(path, schema)
            if columns is None:
                files[path] = InputFile(path, fmt, empty=True, size=size)
                continue
        elif fmt == "parquet":
            _check_parquet(path, schema)
        files[path] = InputFile(path, fmt, columns, size=size)
    return files


class ReadClickRecords(beam.PTransform):
    """-> (path, record): raw line bytes (text formats), serialized tf.Example
    bytes (``tfrecord``) or a column dict (``parquet``)."""

    def __init__(self, files: dict[str, InputFile]):
        super().__init__()
        self._files = files

    def expand(self, pbegin):
        groups: dict[str, list[str]] = {}
        for path, spec in sorted(self._files.items()):
            if not spec.empty:
                kind = "csv" if spec.fmt == "csv" else (
                    "text" if spec.fmt in formats.TEXT_FORMATS else spec.fmt)
                groups.setdefault(kind, []).append(path)
        reads = []
        for kind, paths in sorted(groups.items()):
            if kind in ("csv", "text"):
                reader = beam.io.ReadAllFromText(
                    skip_header_lines=1 if kind == "csv" else 0, coder=beam.coders.BytesCoder(),
                    strip_trailing_newlines=True, with_filename=True)
            elif kind == "parquet":
                reader = beam.io.ReadAllFromParquet(with_filename=True)
            else:
                reader = beam.io.ReadAllFromTFRecord(with_filename=True)
            reads.append(pbegin
                         | f"Paths[{kind}]" >> beam.Create(paths)
                         | f"Read[{kind}]" >> reader)
        if not reads:
            return pbegin | "NoRecords" >> beam.Create([])
        return reads | "AllRecords" >> beam.Flatten()
