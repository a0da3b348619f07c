"""VocabStatsGen: ComputeVocabStats on hand-made clicks, and its executor."""

import json
import math
import os

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from tfx.types import standard_artifacts

from clicklog.formats import Click
from components.artifacts import VocabStats
from components.click_example_gen.click_features import ClickFeatures
from components.click_example_gen.examples import to_example
from components.vocab_stats_gen import executor as vocab_stats_gen
from components.vocab_stats_gen.config import VocabConfig
from components.vocab_stats_gen.limits import keep_top
from components.vocab_stats_gen.vocab_stats import ComputeVocabStats
from models import vocab as vocab_lib
from tests.components.support import tree_bytes


def _example(user, item, ts, weight=1.0, country="de"):
    return to_example(Click(user, item, ts, weight, features=(("country", country),)),
                      ClickFeatures(()))


TRAIN = [_example("u1", "i1", 100), _example("u1", "i2", 200), _example("u1", "i1", 300),
         _example("u2", "i1", 400, weight=2.0, country="fr"),
         _example("u2", "i3", 500, country="fr")]
EVAL = [_example("u1", "i1", 600), _example("u3", "i4", 700)]


def _compute(directory, config):
    with TestPipeline() as p:
        train = p | "Train" >> beam.Create(TRAIN)
        others = {"eval": p | "Eval" >> beam.Create(EVAL)}
        _ = train | ComputeVocabStats(str(directory), config, others)
    return vocab_lib.read_vocab(str(directory))


def test_counts_probabilities_and_recent_window_by_hand(tmp_path):
    vocab = _compute(tmp_path, VocabConfig(max_items=2, negative_sampling_alpha=0.5,
                                           recent_fraction=0.5))
    # Counts i1 3, i2 1, i3 1; max_items=2 keeps i1 and, of the tied i2/i3, i2.
    assert vocab.item_ids == ["i1", "i2"] and vocab.item_counts == [3.0, 1.0]
    assert vocab.item_sampling_probability == [0.75, 0.25]  # 3/4, 1/4 of kept clicks
    # Recent window: 500 - 0.5 * (500 - 100) = 300 -> i1 at 300 and 400.
    assert vocab.item_recent_counts == [2.0, 0.0]
    assert vocab.user_ids == ["u1", "u2"] and vocab.user_counts == [3.0, 2.0]
    rows = vocab_lib.read_item_stats(str(tmp_path))
    # Negative sampling with alpha 0.5: sqrt(3) / (sqrt(3) + 1), 1 / (sqrt(3) + 1).
    root3 = math.sqrt(3)
    assert [r.negative_sampling_probability for r in rows] == pytest.approx(
        [root3 / (root3 + 1), 1 / (root3 + 1)])
    assert [(r.item_id, r.weighted_count, r.first_timestamp, r.last_timestamp)
            for r in rows] == [("i1", 4.0, 100, 400), ("i2", 1.0, 200, 200)]
    assert vocab_lib.read_feature_vocab(str(tmp_path), "country") == [("de", 3.0), ("fr", 2.0)]
    stats = vocab.stats
    assert (stats["num_items"], stats["num_items_before_limits"], stats["num_clicks"],
            stats["total_weight"], stats["recent_start_timestamp"]) == (2, 3, 5, 6.0, 300)
    # Train: i3's click is outside the kept vocabulary; eval: i4 is.
    assert stats["splits"]["train"] == {"num_clicks": 5, "num_users": 2, "min_timestamp": 100,
                                        "max_timestamp": 500, "item_oov_clicks": 1,
                                        "item_oov_rate": 0.2}
    assert stats["splits"]["eval"] == {"num_clicks": 2, "num_users": 2, "min_timestamp": 600,
                                       "max_timestamp": 700, "item_oov_clicks": 1,
                                       "item_oov_rate": 0.5}
    assert stats["num_oov_buckets"] == 1


def test_min_count_and_fixed_recent_window(tmp_path):
    vocab = _compute(tmp_path, VocabConfig(min_item_count=2, min_user_count=3,
                                           recent_window_seconds=150))
    assert vocab.item_ids == ["i1"] and vocab.user_ids == ["u1"]
    assert vocab.item_recent_counts == [1.0]  # window [350, 500]: i1 at 400
    assert vocab.stats["recent_start_timestamp"] == 350


def _write_tfrecord(path, rows):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows:
            writer.write(row)
    return str(path)


@pytest.mark.parametrize("config", [VocabConfig(max_items=2, recent_fraction=0.5),
                                    VocabConfig(recent_window_seconds=150)])
def test_second_train_read_gives_identical_outputs(tmp_path, config):
    # The recent-window counts from a second read of the train files (as the
    # executor does) must equal those from the parsed clicks, file for file.
    train = _write_tfrecord(tmp_path / "train.tfrecord", TRAIN)
    eval_ = _write_tfrecord(tmp_path / "eval.tfrecord", EVAL)
    outputs = {}
    for mode in ("once", "again"):
        with TestPipeline() as p:
            others = {"eval": p | "Eval" >> beam.io.ReadFromTFRecord(eval_)}
            again = (p | "ReadAgain" >> beam.io.ReadFromTFRecord(train)
                     if mode == "again" else None)
            _ = (p | "Train" >> beam.io.ReadFromTFRecord(train)
                 | ComputeVocabStats(str(tmp_path / mode), config, others, train_again=again))
        outputs[mode] = tree_bytes(tmp_path / mode)
    assert "stats.json" in outputs["once"] and "items.tsv" in outputs["once"]
    assert sorted(outputs["again"]) == sorted(outputs["once"])
    for name, content in outputs["once"].items():
        assert outputs["again"][name] == content, name
    # Not vacuous: some recent clicks were counted.
    assert any(vocab_lib.read_vocab(str(tmp_path / "again")).item_recent_counts)


def test_keep_top_breaks_ties_by_id_and_config_rejects_bad_values():
    assert keep_top([("b", 2), ("a", 2), ("c", 1)], 2, 0) == [("a", 2), ("b", 2)]
    assert keep_top([("b", 2), ("a", 2), ("c", 1)], 1, 1) == [("a", 2)]
    with pytest.raises(ValueError, match=r"vocab.negative_sampling_alpha=2: expected a number "
                                         r"in \[0, 1\]"):
        VocabConfig(negative_sampling_alpha=2)
    with pytest.raises(ValueError, match="vocab.num_oov_buckets=0: expected an integer >= 1"):
        VocabConfig(num_oov_buckets=0)


def _examples(tmp_path, splits):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = json.dumps(list(splits))
    for split, rows in splits.items():
        os.makedirs(os.path.join(examples.uri, f"Split-{split}"))
        with tf.io.TFRecordWriter(os.path.join(examples.uri, f"Split-{split}", "d.gz"),
                                  options="GZIP") as writer:
            for row in rows:
                writer.write(row)
    return examples


def _run_executor(tmp_path, splits, config):
    output = VocabStats()
    output.uri = str(tmp_path / "vocab")
    vocab_stats_gen.Executor().Do({"examples": [_examples(tmp_path, splits)]},
                                  {"vocab_stats": [output]}, {"config": json.dumps(config)})
    return output


def test_executor_reads_every_split_and_sets_properties(tmp_path):
    output = _run_executor(tmp_path, {"train": TRAIN, "eval": EVAL}, {"min_item_count": 1})
    assert output.get_int_custom_property("num_items") == 3
    assert output.get_int_custom_property("num_clicks") == 5
    split_stats = json.loads(output.get_string_custom_property("split_stats"))
    assert split_stats["eval"]["item_oov_clicks"] == 1  # i4
    vocab = vocab_lib.read_vocab(output.uri)
    assert vocab.item_ids == ["i1", "i2", "i3"]
    # Recent window (second read of the train split): 500 - 0.1 * 400 = 460 -> i3.
    assert vocab.item_recent_counts == [0.0, 0.0, 1.0]


def test_executor_counts_every_listed_split(tmp_path):
    # The final fit's vocabulary: train and eval clicks counted together.
    output = _run_executor(tmp_path, {"train": TRAIN, "eval": EVAL},
                           {"min_item_count": 1, "count_splits": ["train", "eval"]})
    assert output.get_int_custom_property("num_clicks") == 7
    vocab = vocab_lib.read_vocab(output.uri)
    # i1: 3 train clicks (one weighted 2 counts once) + 1 eval click; i4 only in eval.
    assert vocab.item_ids == ["i1", "i2", "i3", "i4"]
    assert vocab.item_counts == [4.0, 1.0, 1.0, 1.0]
    assert vocab.stats["min_timestamp"] == 100 and vocab.stats["max_timestamp"] == 700
    # Recent window over the counted clicks: 700 - 0.1 * 600 = 640 -> i4 at 700.
    assert vocab.item_recent_counts == [0.0, 0.0, 0.0, 1.0]
    split_stats = json.loads(output.get_string_custom_property("split_stats"))
    assert split_stats["train"]["num_clicks"] == 5 and split_stats["eval"]["num_clicks"] == 2
    assert split_stats["eval"]["item_oov_clicks"] == 0


def test_executor_without_a_counted_split_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match=r"splits \['eval'\]; expected the counted split\(s\) "
                                         r"\['train'\] \(vocab.count_splits\)"):
        _run_executor(tmp_path, {"eval": EVAL}, {})
    with pytest.raises(ValueError, match="count_splits"):
        VocabConfig(count_splits=("train", "train"))
