"""Compressed inputs must be whole: Beam's reader stops where a truncated
gzip/bzip2 file's bytes stop, so `check_compressed_stream` reads each one to
its end marker before the run starts."""

import bz2
import gzip

import pytest

from components.click_example_gen.inputs import check_compressed_stream, resolve_input_files

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
