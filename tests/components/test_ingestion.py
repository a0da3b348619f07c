"""Beam transforms of ClickExampleGen, checked with assert_that on hand-made input."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clicklog.formats import Click
from components import ingestion

FILES = {"a.csv": ingestion.InputFile("a.csv", "csv", ("user_id", "item_id", "timestamp"))}


def test_history_holds_only_strictly_earlier_items():
    clicks = [("f", Click("u", item, ts)) for item, ts in
              [("c", 30), ("a", 10), ("b", 20), ("d", 30), ("e", 40)]]
    out = list(ingestion.with_history(("u", clicks), history_length=2))
    by_item = {click.item_id: history for _, click, history in out}
    # Hand-computed: c and d share t=30, so neither sees the other.
    assert by_item == {"a": (), "b": ("a",), "c": ("a", "b"), "d": ("a", "b"),
                       "e": ("c", "d")}
    timestamps = {click.item_id: click.timestamp for _, click, _ in out}
    for _, click, history in out:
        assert all(timestamps[item] < click.timestamp for item in history)


def _lines(rows):
    return [("a.csv", row.encode("utf-8") if isinstance(row, str) else row) for row in rows]


def test_ingest_counts_reconcile_and_splits_are_temporal():
    rows = ["u1,i1,100", "u1,i2,200", "u2,i1,300", "u2,i3,400", "u1,i3,500",
            "u1,i3,500",  # duplicate
            "u3,,600", "u3,i1,abc", "u3,i1", "", b"u4,\xff\xfe,700", "u3,i2,700"]
    config = ingestion.IngestionConfig(eval_start_timestamp=450)
    with TestPipeline() as p:
        out = p | beam.Create(_lines(rows)) | ingestion.IngestClicks(FILES, config)
        assert_that(out["counters"], equal_to([
            (("a.csv", "rows_read", ""), 12),
            (("a.csv", "accepted", "train"), 4),
            (("a.csv", "accepted", "eval"), 2),
            (("a.csv", "quarantined", "duplicate"), 1),
            (("a.csv", "quarantined", "empty_item_id"), 1),
            (("a.csv", "quarantined", "bad_timestamp"), 1),
            (("a.csv", "quarantined", "wrong_column_count"), 1),
            (("a.csv", "quarantined", "empty_line"), 1),
            (("a.csv", "quarantined", "bad_encoding"), 1),
        ]), label="counters")
        eval_items = out[ingestion.EVAL] | beam.Map(_item_and_history)
        assert_that(eval_items, equal_to([("i3", ("i1", "i2")), ("i2", ())]), label="eval")


def _item_and_history(serialized):
    import tensorflow as tf

    feature = tf.train.Example.FromString(serialized).features.feature
    return (feature["item_id"].bytes_list.value[0].decode(),
            tuple(v.decode() for v in feature["history"].bytes_list.value))


def _report(rows_read, accepted, quarantined, train=1, eval_=1):
    return {"files": {"x.csv": {"rows_read": rows_read, "accepted": accepted,
                                "quarantined": quarantined}},
            "totals": {"accepted_by_split": {"train": train, "eval": eval_}},
            "eval_start_timestamp": 5}


def test_check_report_fails_on_mostly_garbage_naming_file_and_counts():
    config = ingestion.IngestionConfig(max_bad_fraction=0.5)
    ingestion.check_report(_report(10, 5, {"bad_timestamp": 5}), config)
    with pytest.raises(ValueError, match=r"x\.csv.*6 of 10 rows quarantined.*bad_timestamp"):
        ingestion.check_report(_report(10, 4, {"bad_timestamp": 6}), config)


def test_check_report_catches_unreconciled_counts_and_empty_split():
    config = ingestion.IngestionConfig()
    with pytest.raises(RuntimeError, match="do not reconcile"):
        ingestion.check_report(_report(10, 8, {"x": 1}), config)
    with pytest.raises(ValueError, match="eval split is empty"):
        ingestion.check_report(_report(10, 10, {}, eval_=0), config)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="eval_fraction=1.5"):
        ingestion.IngestionConfig(eval_fraction=1.5)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['history'\]"):
        ingestion.IngestionConfig.from_dict({"history": 3})
