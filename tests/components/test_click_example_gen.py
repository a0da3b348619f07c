"""ClickExampleGen through Executor().Do on temporary artifacts."""

import json
import os

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components import click_example_gen
from components.artifacts import QuarantinedClicks


def _run(tmp_path, data_path, config=None):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    quarantine = QuarantinedClicks()
    quarantine.uri = str(tmp_path / "quarantine")
    click_example_gen.Executor().Do(
        {}, {"examples": [examples], "quarantine": [quarantine]},
        {"input_base": str(data_path), "config": json.dumps(config or {})})
    return examples, quarantine


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_rows_are_counted_quarantined_and_the_rest_split(tmp_path):
    good = [f"u{i % 7},i{i % 11},{1600000000 + i * 60}" for i in range(60)]
    bad = ["u1,i1", "u1,i1,1600000000,extra", ",i2,1600000100", "u2,,1600000100",
           "u3,i3,not-a-number", '"u4","i4",""']
    data = _write(tmp_path / "clicks.csv", ["user_id,item_id,timestamp"] + good + bad)
    examples, quarantine = _run(tmp_path, data, {"eval_fraction": 0.2})
    with open(os.path.join(quarantine.uri, "ingestion.json")) as f:
        report = json.load(f)
    entry = report["files"][str(data)]
    assert entry["rows_read"] == 66
    assert entry["quarantined"] == {"wrong_column_count": 2, "empty_user_id": 1,
                                    "empty_item_id": 1, "bad_timestamp": 2}
    assert entry["accepted"] == 60 == sum(entry["accepted_by_split"].values())
    assert entry["accepted_by_split"]["eval"] > 0
    quarantined = []
    for name in tf.io.gfile.glob(os.path.join(quarantine.uri, "quarantined*.jsonl")):
        quarantined += [json.loads(line) for line in open(name)]
    assert sorted(q["reason"] for q in quarantined) == sorted(
        ["wrong_column_count"] * 2 + ["empty_user_id", "empty_item_id"] + ["bad_timestamp"] * 2)
    assert examples.split_names == '["train", "eval"]'
    train_files = tf.io.gfile.glob(os.path.join(examples.uri, "Split-train", "*.gz"))
    count = sum(1 for _ in tf.data.TFRecordDataset(train_files, compression_type="GZIP"))
    assert count == entry["accepted_by_split"]["train"]
    assert quarantine.get_int_custom_property("quarantined") == 6


def test_mostly_garbage_file_fails_naming_file_and_counts(tmp_path):
    lines = ["user_id,item_id,timestamp"] + [f"u{i},i{i},{1600000000 + i}" for i in range(3)] + [
        "garbage"] * 7
    data = _write(tmp_path / "garbage.csv", lines)
    with pytest.raises(ValueError, match=r"garbage\.csv.*7 of 10 rows quarantined"):
        _run(tmp_path, data, {"max_bad_fraction": 0.5})


def test_missing_input_and_bad_header_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no file matches"):
        _run(tmp_path, tmp_path / "nothing-*.csv")
    data = _write(tmp_path / "clicks.csv", ["user,item,timestamp", "u,i,1"])
    with pytest.raises(ValueError, match=r"lacks required column\(s\) \['user_id', 'item_id'\]"):
        _run(tmp_path, data)
