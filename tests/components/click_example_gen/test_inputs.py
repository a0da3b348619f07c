"""Compressed inputs must be whole: Beam's reader stops where a truncated
gzip/bzip2 file's bytes stop, so `check_compressed_stream` reads each one to
its end marker before the run starts."""

import bz2
import gzip
import os

import pytest

from components.click_example_gen.inputs import (
    check_compressed_stream,
    check_unchanged,
    resolve_input_files,
)

ROWS = "user_id,item_id,timestamp\n" + "".join(
    f"u{n % 97},i{n % 31},{1600000000 + n}\n" for n in range(20000))


def _write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("suffix,compress", [(".gz", gzip.compress), (".bz2", bz2.compress)])
def test_whole_and_concatenated_streams_pass(tmp_path, suffix, compress):
    check_compressed_stream(_write(tmp_path / f"one.csv{suffix}", compress(ROWS.encode())))
    half = len(ROWS) // 2
    both = compress(ROWS[:half].encode()) + compress(ROWS[half:].encode())
    check_compressed_stream(_write(tmp_path / f"two.csv{suffix}", both))


@pytest.mark.parametrize("suffix,compress,name", [(".gz", gzip.compress, "gzip"),
                                                  (".bz2", bz2.compress, "bzip2")])
def test_a_truncated_stream_stops_the_run_naming_the_file(tmp_path, suffix, compress, name):
    data = compress(ROWS.encode())
    cut = len(data) * 2 // 3
    path = _write(tmp_path / f"cut.csv{suffix}", data[:cut])
    with pytest.raises(ValueError, match=rf"cut\.csv\{suffix}'.*the {name} stream ends at byte "
                                         rf"{cut:,} before its end marker.*expected a complete"):
        check_compressed_stream(path)
    # Through resolve_input_files, as ClickExampleGen's executor calls it.
    with pytest.raises(ValueError, match=r"cut\.csv"):
        resolve_input_files(str(tmp_path / "cut.csv*"), "auto")


def test_garbage_after_a_member_and_a_file_that_is_not_gzip_are_corrupt(tmp_path):
    data = gzip.compress(ROWS.encode())
    with pytest.raises(ValueError, match=r"tail\.csv\.gz'.*corrupt gzip data near byte "
                                         rf"{len(data):,}"):
        check_compressed_stream(_write(tmp_path / "tail.csv.gz", data + b"not gzip at all"))
    with pytest.raises(ValueError, match=r"plain\.csv\.gz'.*corrupt gzip data near byte 0"):
        check_compressed_stream(_write(tmp_path / "plain.csv.gz", ROWS.encode()))


def test_uncompressed_files_are_not_read(tmp_path):
    check_compressed_stream(str(tmp_path / "absent.csv"))  # would raise if it were opened


# --- every kind of damaged file stops the run naming the file and where -----------------


def _tfrecord(path, records: int) -> bytes:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for n in range(records):
            writer.write(b"x" * 100 + str(n).encode())
    return path.read_bytes()


def test_a_truncated_tfrecord_stops_the_run_naming_the_record(tmp_path):
    data = _tfrecord(tmp_path / "whole.tfrecord", 1000)
    (tmp_path / "whole.tfrecord").unlink()
    cut = len(data) // 2
    # Record n holds 100 + len(str(n)) bytes and 16 bytes of framing.
    starts = [0]
    for n in range(1000):
        starts.append(starts[-1] + 16 + 100 + len(str(n)))
    broken = max(n for n, start in enumerate(starts) if start <= cut)
    path = _write(tmp_path / "cut.tfrecord", data[:cut])
    with pytest.raises(ValueError, match=rf"cut\.tfrecord': TFRecord record {broken} at byte "
                                         rf"{starts[broken]:,} is cut short or corrupt .*"
                                         r"expected complete records"):
        resolve_input_files(path, "auto")


def test_a_corrupt_tfrecord_stops_the_run(tmp_path):
    data = bytearray(_tfrecord(tmp_path / "flip.tfrecord", 200))
    data[5000] ^= 0xFF
    path = _write(tmp_path / "flip.tfrecord", bytes(data))
    with pytest.raises(ValueError, match=r"flip\.tfrecord': TFRecord record 4\d at byte "
                                         r"[\d,]+ is cut short or corrupt \(Not a valid TFRecord"):
        resolve_input_files(path, "auto")


def test_a_truncated_gzipped_tfrecord_stops_the_run(tmp_path):
    data = gzip.compress(_tfrecord(tmp_path / "x.tfrecord", 500))
    (tmp_path / "x.tfrecord").unlink()
    path = _write(tmp_path / "cut.tfrecord.gz", data[: len(data) - 20])
    with pytest.raises(ValueError, match=r"cut\.tfrecord\.gz'.*gzip stream ends at byte"):
        resolve_input_files(path, "auto")


def _parquet(path, compression="gzip"):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 20000
    pq.write_table(pa.table({"user_id": [f"u{i % 97}" for i in range(n)],
                             "item_id": [f"i{i % 31}" for i in range(n)],
                             "timestamp": [1600000000 + i for i in range(n)]}),
                   str(path), row_group_size=5000, compression=compression)
    return pq.ParquetFile(str(path)).metadata


def test_a_parquet_file_with_a_corrupt_row_group_stops_the_run(tmp_path):
    metadata = _parquet(tmp_path / "bad.parquet")
    data = bytearray((tmp_path / "bad.parquet").read_bytes())
    offset = metadata.row_group(1).column(0).data_page_offset + 40
    for k in range(20):
        data[offset + k] ^= 0x55
    path = _write(tmp_path / "bad.parquet", bytes(data))
    with pytest.raises(ValueError, match=r"bad\.parquet': Parquet row group 1 of 4 is unreadable "
                                         r"\(.*\); expected a complete Parquet file"):
        resolve_input_files(path, "auto")


def test_a_truncated_parquet_file_stops_the_run(tmp_path):
    _parquet(tmp_path / "whole.parquet")
    data = (tmp_path / "whole.parquet").read_bytes()
    path = _write(tmp_path / "cut.parquet", data[: len(data) - 100])
    with pytest.raises(ValueError, match=r"cut\.parquet': not a readable Parquet file"):
        resolve_input_files(path, "auto")


def test_a_zero_byte_and_an_unreadable_file_stop_the_run(tmp_path):
    (tmp_path / "good.csv").write_text(ROWS)
    (tmp_path / "zero.csv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"zero\.csv': the file is empty \(0 bytes"):
        resolve_input_files(str(tmp_path), "auto")
    (tmp_path / "zero.csv").unlink()
    (tmp_path / "gone.csv").symlink_to(tmp_path / "nowhere.csv")  # a dangling link
    with pytest.raises(ValueError, match=r"gone\.csv': cannot be read \(.*\); expected a "
                                         r"readable file"):
        resolve_input_files(str(tmp_path), "auto")


def test_corrupt_files_quarantine_sets_the_whole_file_aside_with_its_reason(tmp_path):
    (tmp_path / "good.csv").write_text(ROWS)
    data = gzip.compress(ROWS.encode())
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "zero.csv").write_bytes(b"")
    files = resolve_input_files(str(tmp_path), "auto", corrupt_files="quarantine")
    reasons = {os.path.basename(p): spec.quarantined for p, spec in files.items()}
    assert reasons["good.csv"] == ""
    assert "the gzip stream ends at byte" in reasons["cut.csv.gz"]
    assert "the file is empty (0 bytes" in reasons["zero.csv"]


def test_a_file_that_changes_while_it_is_read_stops_the_run(tmp_path):
    path = _write(tmp_path / "growing.csv", ROWS.encode())
    files = resolve_input_files(path, "auto")
    check_unchanged(files)  # untouched: passes
    with open(path, "a") as f:  # another process appends while the run reads
        f.write("u1,i1,1700000000\n")
    with pytest.raises(ValueError, match=rf"growing\.csv': changed while it was read \(size "
                                         rf"{len(ROWS):,} bytes, .* -> size {len(ROWS) + 17}"):
        check_unchanged(files)
