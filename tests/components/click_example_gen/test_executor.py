"""ClickExampleGen through Executor().Do on temporary artifacts."""

import json
import os

import pytest
import tensorflow as tf

from tests.components.click_example_gen.support import run_click_example_gen as _run


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_rows_are_counted_quarantined_and_the_rest_split(tmp_path):
    good = [f"u{i % 7},i{i % 11},{1600000000 + i * 60}" for i in range(60)]
    bad = ["u1,i1", "u1,i1,1600000000,extra", ",i2,1600000100", "u2,,1600000100",
           "u3,i3,not-a-number", '"u4","i4",""']
    data = _write(tmp_path / "clicks.csv", ["user_id,item_id,timestamp"] + good + bad)
    examples, quarantine = _run(tmp_path, data,
                                {"eval_fraction": 0.2, "max_quarantine_fraction": 1.0})
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
    # The local runner grouped through shard files and left none behind.
    assert report["shuffle"] == {"mode": "files", "num_shards": 4}
    assert sorted(os.listdir(examples.uri)) == ["Split-eval", "Split-train"]


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


def _examples(examples, split):
    files = tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*.gz"))
    return [tf.train.Example.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _value(example, name):
    feature = example.features.feature[name]
    values = list(getattr(feature, feature.WhichOneof("kind")).value)
    values = [v.decode() if isinstance(v, bytes) else v for v in values]
    return values[0] if len(values) == 1 else values


SCHEMA = {"user_id": "uid", "item_id": "movie", "timestamp": "ts",
          "timestamp_unit": "milliseconds", "weight": None, "event_type": "action",
          "user_features": {"country": "string"}, "item_features": {"genres": "string_list"},
          "context_features": {"hour": "int"}}
T_MS = 1_600_000_000_000


def _rows(count=30):
    return [{"uid": f"u{n % 3}", "movie": f"m{n % 5}", "ts": T_MS + n * 60_000,
             "action": "buy" if n % 4 == 0 else "view", "country": f"c{n % 3}",
             "genres": ["drama", "comedy"] if n % 2 else ["drama"], "hour": n % 24}
            for n in range(count)]


def _check_declared_schema_run(tmp_path, data_path):
    config = {"schema": SCHEMA, "event_types": {"view": 1.0, "buy": 4.0},
              "eval_fraction": 0.2}
    examples, quarantine = _run(tmp_path, data_path, config)
    with open(os.path.join(quarantine.uri, "ingestion.json")) as f:
        report = json.load(f)
    assert report["totals"]["rows_read"] == 30 and report["totals"]["accepted"] == 30
    train = _examples(examples, "train")
    first = min(train, key=lambda e: _value(e, "timestamp"))
    # Row 0: user u0, m0 bought at T (ms -> s), weight 1 x 4 for "buy".
    assert (_value(first, "user_id"), _value(first, "item_id"), _value(first, "timestamp"),
            _value(first, "weight"), _value(first, "event_type")) == (
                "u0", "m0", T_MS // 1000, 4.0, "buy")
    assert (_value(first, "country"), _value(first, "genres"), _value(first, "hour")) == (
        "c0", "drama", 0)
    assert _value(first, "seconds_since_previous_click") == -1
    assert len(train) + len(_examples(examples, "eval")) == 30


def test_parquet_with_declared_schema_features_and_event_weights(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "clicks.parquet"
    pq.write_table(pa.Table.from_pylist(_rows()), str(path))
    _check_declared_schema_run(tmp_path, path)


def test_tfrecord_of_tf_examples_with_declared_schema(tmp_path):
    path = tmp_path / "clicks.tfrecord.gz"
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in _rows():
            feature = {}
            for key, value in row.items():
                values = value if isinstance(value, list) else [value]
                if isinstance(values[0], str):
                    feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[v.encode() for v in values]))
                else:
                    feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
            writer.write(tf.train.Example(features=tf.train.Features(
                feature=feature)).SerializeToString())
    _check_declared_schema_run(tmp_path, path)


def test_directory_of_gzipped_jsonl_and_csv_parts_with_test_split(tmp_path):
    import gzip

    data = tmp_path / "logs"
    data.mkdir()
    rows = [{"user_id": f"u{n % 4}", "item_id": f"i{n % 6}", "timestamp": 1600000000 + n}
            for n in range(100)]
    with gzip.open(data / "part-0.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows[:50])
    _write(data / "part-1.csv", ["user_id,item_id,timestamp"] + [
        f"{r['user_id']},{r['item_id']},{r['timestamp']}" for r in rows[50:]])
    (data / "_SUCCESS").write_text("")  # job markers in a directory are skipped
    examples, quarantine = _run(tmp_path, data, {"eval_fraction": 0.2, "test_fraction": 0.1})
    report = json.loads(open(os.path.join(quarantine.uri, "ingestion.json")).read())
    assert sorted(os.path.basename(p) for p in report["files"]) == ["part-0.jsonl.gz",
                                                                    "part-1.csv"]
    by_split = report["totals"]["accepted_by_split"]
    # Timestamps 0..99: quantile cut-offs at 70 (eval) and 90 (test), within +-1.
    assert abs(by_split["train"] - 70) <= 1 and abs(by_split["test"] - 10) <= 1
    assert sum(by_split.values()) == 100
    assert examples.split_names == '["train", "eval", "test"]'
    assert len(_examples(examples, "test")) == by_split["test"]
    assert report["eval_start_timestamp"] < report["test_start_timestamp"]
    times = [_value(e, "timestamp") for e in _examples(examples, "test")]
    assert min(times) >= report["test_start_timestamp"]


def test_glob_and_missing_declared_column_errors_name_the_file(tmp_path):
    _write(tmp_path / "a.csv", ["user_id,item_id,timestamp", "u,i,1600000000"])
    with pytest.raises(ValueError, match=r"a\.csv.*lacks required column\(s\) \['action'\]"):
        _run(tmp_path, tmp_path / "*.csv", {"schema": {"event_type": "action"}})


def test_file_shuffle_and_group_by_key_write_the_same_examples(tmp_path):
    lines = ["user_id,item_id,timestamp"] + [
        f"u{i % 9},i{i % 13},{1600000000 + 37 * i}" for i in range(120)] + ["u1,i1,bad"]
    data = _write(tmp_path / "clicks.csv", lines)

    def run(shuffle):
        examples, quarantine = _run(tmp_path / shuffle, data,
                                    {"shuffle": shuffle, "eval_fraction": 0.25})
        with open(os.path.join(quarantine.uri, "ingestion.json")) as f:
            report = json.load(f)
        written = {}
        for split in ("train", "eval"):
            files = tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*.gz"))
            written[split] = sorted(r.numpy() for r in tf.data.TFRecordDataset(
                files, compression_type="GZIP"))
        return report, written

    report_gbk, by_gbk = run("group_by_key")
    report_files, by_files = run("files")
    assert report_gbk["shuffle"] == {"mode": "group_by_key", "num_shards": 0}
    assert report_files["shuffle"]["mode"] == "files"
    assert by_files == by_gbk and len(by_gbk["train"]) + len(by_gbk["eval"]) == 120
    assert report_files["totals"] == report_gbk["totals"]


def test_impressions_of_a_synthetic_log_are_counted_and_reach_vocab_stats_as_no_clicks(
        tmp_path):
    from clicklog import synthetic
    from components.artifacts import VocabStats
    from components.vocab_stats_gen import executor as vocab_stats_gen
    from models import vocab as vocab_lib

    config = synthetic.SyntheticConfig(num_users=40, num_items=30, num_categories=4,
                                       clicks_per_user=6, impressions_per_click=3, seed=4)
    data = synthetic.write(config, str(tmp_path / "data"))
    log = synthetic.generate_log(config)
    examples, quarantine = _run(tmp_path, data, {
        "schema": {"event_type": "event"}, "event_types": ["click"],
        "impression_event_types": ["impression"], "eval_fraction": 0.2})
    with open(os.path.join(quarantine.uri, "ingestion.json")) as f:
        totals = json.load(f)["totals"]
    assert totals["impressions"] == {"impression": len(log.impressions)}
    assert totals["accepted"] == len(log.clicks) and totals["quarantined"] == {}
    files = tf.io.gfile.glob(os.path.join(examples.uri, "Split-*", "*.gz"))
    attached = set()
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        attached.update(v.decode() for v in feature["impressed_negatives"].bytes_list.value)
    assert attached and attached <= {item for _, item, _ in log.impressions}
    output = VocabStats()
    output.uri = str(tmp_path / "vocab")
    vocab_stats_gen.Executor().Do({"examples": [examples]}, {"vocab_stats": [output]},
                                  {"config": json.dumps({"min_item_count": 1})})
    vocab = vocab_lib.read_vocab(output.uri)
    # Only clicks are counted: an item only ever shown is no candidate.
    assert output.get_int_custom_property("num_clicks") == totals["accepted_by_split"]["train"]
    assert set(vocab.item_ids) <= {item for _, item, _ in log.clicks}
