"""The shuffle through shard files (components/file_shuffle.py)."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from components.click_example_gen import file_shuffle


def test_shard_of_is_stable_and_spreads_keys():
    # crc32, not the per-process salted hash(): the same key, the same shard, everywhere.
    assert file_shuffle.shard_of("u1", 7) == file_shuffle.shard_of("u1", 7)
    assert file_shuffle.shard_of("user-42", 1) == 0
    shards = [file_shuffle.shard_of(f"u{n}", 4) for n in range(4000)]
    assert sorted(set(shards)) == [0, 1, 2, 3]
    assert all(900 < shards.count(s) < 1100 for s in range(4))


@pytest.mark.parametrize("input_bytes, shard_bytes, min_shards, expected", [
    (0, 100, 1, 1), (100, 100, 1, 1), (101, 100, 1, 2), (250, 100, 4, 4), (10**12, 1, 1, 512)])
def test_num_shards_for(input_bytes, shard_bytes, min_shards, expected):
    assert file_shuffle.num_shards_for(input_bytes, shard_bytes, min_shards) == expected


def test_num_shards_rejects_a_non_positive_shard_size():
    with pytest.raises(ValueError, match=r"shard_bytes=0: expected a positive"):
        file_shuffle.num_shards_for(10, 0)


def test_records_round_trip_and_a_cut_off_file_is_an_error(tmp_path):
    path = str(tmp_path / "f")
    elements = [("u1", b"\x00\xffpacked"), ("u2", b""), ("é", b"x" * 70000)]
    with open(path, "wb") as f:
        for element in elements:
            file_shuffle.write_record(f, element)
    assert list(file_shuffle.read_records(path)) == elements
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-10])
    with pytest.raises(OSError, match=r"record of 70\d+ bytes cut off"):
        list(file_shuffle.read_records(path))
    open(path, "wb").write(data[:2])
    with pytest.raises(OSError, match="truncated record header"):
        list(file_shuffle.read_records(path))


def test_write_shard_files_one_file_per_shard_and_bundle(tmp_path):
    write = file_shuffle.WriteShardFiles(str(tmp_path), 3, "t")
    files = []
    for bundle in ([("a", 1), ("b", 2), ("a", 3)], [("a", 4)]):
        write.start_bundle()
        for element in bundle:
            assert list(write.process(element) or []) == []  # nothing until the bundle ends
        files += [w.value for w in write.finish_bundle()]
    shard_a, shard_b = file_shuffle.shard_of("a", 3), file_shuffle.shard_of("b", 3)
    assert sorted(shard for shard, _ in files) == sorted([*{shard_a, shard_b}, shard_a])
    grouped = list(file_shuffle.read_shard(shard_a, files, group=True))
    assert ("a", [1, 3, 4]) in [(k, sorted(v)) for k, v in grouped]
    # Paths that no committed bundle reported (e.g. a retried bundle's) are never read.
    assert list(file_shuffle.read_shard(shard_a, [], group=True)) == []


def test_through_files_groups_like_group_by_key_and_passes_elements_through(tmp_path):
    elements = [(f"k{n % 13}", n) for n in range(200)]
    with TestPipeline() as p:
        pcoll = p | beam.Create(elements)
        grouped = pcoll | "Files" >> file_shuffle.ThroughFiles(str(tmp_path / "g"), 5, True)
        expected = pcoll | "GBK" >> beam.GroupByKey()
        passed = pcoll | "Pass" >> file_shuffle.ThroughFiles(str(tmp_path / "p"), 5, False)
        assert_that(grouped | "SortFiles" >> beam.MapTuple(lambda k, v: (k, sorted(v))),
                    equal_to([(f"k{r}", list(range(r, 200, 13))) for r in range(13)]),
                    label="grouped")
        assert_that(expected | "SortGBK" >> beam.MapTuple(lambda k, v: (k, sorted(v))),
                    equal_to([(f"k{r}", list(range(r, 200, 13))) for r in range(13)]),
                    label="gbk")
        assert_that(passed, equal_to(elements), label="passed")


def test_through_files_rejects_a_bad_shard_count(tmp_path):
    with pytest.raises(ValueError, match=r"num_shards=0: expected 1\.\.512"):
        file_shuffle.ThroughFiles(str(tmp_path), 0, True)
