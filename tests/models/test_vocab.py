"""item_features.tsv: write/read round trip in items.tsv order, absent file, bad files."""

import os

import pytest

from models import vocab as vocab_lib

NAMES = ["genres", "title"]
ROWS = [("i1", [["Horror", "Thriller"], ["the", "conjuring", "2013"]]),
        ("i3", [[], []]),
        ("i9", [["Drama"], ["amélie"]])]


def _vocab(directory, items=(("i1", 3, 1), ("i3", 1, 0), ("i9", 0, 0))):
    vocab_lib.write_vocab(str(directory), list(items), [("u1", 1)], {})


def test_round_trip_in_items_order(tmp_path):
    _vocab(tmp_path)
    vocab_lib.write_item_features(str(tmp_path), NAMES, ROWS)
    assert (tmp_path / "item_features.tsv").read_text(encoding="utf-8").splitlines() == [
        "item_id\tgenres\ttitle", "i1\tHorror|Thriller\tthe|conjuring|2013", "i3\t\t",
        "i9\tDrama\tamélie"]
    assert vocab_lib.read_item_features(str(tmp_path)) == {
        "genres": [["Horror", "Thriller"], [], ["Drama"]],
        "title": [["the", "conjuring", "2013"], [], ["amélie"]]}
    assert vocab_lib.read_vocab(str(tmp_path)).item_ids == ["i1", "i3", "i9"]


def test_absent_file_is_none(tmp_path):
    _vocab(tmp_path)
    assert vocab_lib.read_item_features(str(tmp_path)) is None


def test_rows_out_of_items_order_fail_naming_the_file(tmp_path):
    _vocab(tmp_path)
    vocab_lib.write_item_features(str(tmp_path), NAMES, [ROWS[1], ROWS[0], ROWS[2]])
    with pytest.raises(ValueError, match=r"item_features.tsv:2: item 'i3', expected 'i1'"):
        vocab_lib.read_item_features(str(tmp_path))


def test_missing_rows_fail(tmp_path):
    _vocab(tmp_path)
    vocab_lib.write_item_features(str(tmp_path), NAMES, ROWS[:2])
    with pytest.raises(ValueError, match=r"2 item rows, expected one per candidate"):
        vocab_lib.read_item_features(str(tmp_path))


@pytest.mark.parametrize("names,rows,message", [
    (["title", "genres"], [], "expected unique names in sorted order"),
    (["item_id"], [], "name 'item_id'"),
    (["title"], [("i1", [["a|b"]])], r"token 'a\|b'"),
    (["title"], [("i1", [["a\u2028b"]])], "token"),
    (["title"], [("i1", [[""]])], "token ''"),
    (["title"], [("i1", [["a"], ["b"]])], "2 feature values, expected 1"),
])
def test_writer_refuses_what_would_not_read_back(tmp_path, names, rows, message):
    with pytest.raises(ValueError, match=message):
        vocab_lib.write_item_features(str(tmp_path), names, rows)


def test_a_url_directory_is_written_and_read_through_tensorflow_file_systems(
        tmp_path, monkeypatch):
    # On Dataflow or Flink the VocabStats artifact is a gs:// (s3://, ...) URI
    # written from a Beam worker. TensorFlow's in-memory file system stands in
    # for it: a URL, and no local file may appear in its place.
    monkeypatch.chdir(tmp_path)
    url = f"ram://{tmp_path.name}/vocab"
    _vocab(url)
    stats = [vocab_lib.ItemStats("i1", 3, 3.0, 0.75, 0.7, 1, 100, 200),
             vocab_lib.ItemStats("i3", 1, 1.0, 0.25, 0.3, 0, 150, 150),
             vocab_lib.ItemStats("i9", 0, 0.0, 0.0, 0.0, 0, 0, 0)]
    vocab_lib.write_item_stats(url, stats)
    vocab_lib.write_feature_vocab(url, "country", [("de", 2.0)])
    vocab_lib.write_item_features(url, NAMES, ROWS)
    assert os.listdir(tmp_path) == []
    vocab = vocab_lib.read_vocab(url)
    assert (vocab.item_ids, vocab.item_counts, vocab.user_ids) == (
        ["i1", "i3", "i9"], [3.0, 1.0, 0.0], ["u1"])
    assert vocab_lib.read_item_stats(url) == stats
    assert vocab.item_negative_sampling_probability == [0.7, 0.3, 0.0]
    assert vocab_lib.read_feature_vocab(url, "country") == [("de", 2.0)]
    assert vocab_lib.read_item_features(url)["title"] == [
        ["the", "conjuring", "2013"], [], ["amélie"]]
    assert vocab_lib.read_item_features(f"ram://{tmp_path.name}/none") is None
