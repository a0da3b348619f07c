"""Impression rows: accepted, counted and quarantined like clicks, kept out of
positives, histories and cut-offs, attached to the clicks they precede."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clicklog.config import ConfigError
from clicklog.formats import Click
from components.click_example_gen import cleaning, impressions, ingestion
from components.click_example_gen import report as report_lib
from components.click_example_gen.config import IngestionConfig

COLUMNS = ("user_id", "item_id", "timestamp", "event")
FILES = {"a.csv": ingestion.InputFile("a.csv", "csv", COLUMNS)}
CONFIG = {"schema": {"event_type": "event"}, "event_types": ["click"],
          "impression_event_types": ["impression", "dropped_by_ranker"],
          "impression_window_seconds": 100, "eval_start_timestamp": 1000}


def _shown(item, t, kind="impression"):
    return Click("u", item, t, event_type=kind)


def test_negatives_come_from_the_window_before_the_click_and_skip_clicked_items():
    clicks = [Click("u", "c1", 100, event_type="click"), Click("u", "c2", 300,
                                                               event_type="click")]
    shown = [_shown("a", 10), _shown("b", 50), _shown("c1", 60), _shown("a", 90),
             _shown("d", 100), _shown("e", 101), _shown("c2", 250), _shown("f", 260)]
    # Click at 100, window 60 ([40, 100]): b (50), a (90, its latest showing), d (100,
    # the same time), in that order; a at 10 is too early, e at 101 after the click;
    # c1 and c2 were clicked within the window.
    out = impressions.impressed_negatives(clicks, shown, window=60, max_count=10)
    assert out == [("b", "a", "d"), ("f",)]
    # Never an impression after the click, and the most recent kept first when capped.
    for click, negatives in zip(clicks, out, strict=True):
        for item in negatives:
            assert any(s.item_id == item and click.timestamp - 60 <= s.timestamp
                       <= click.timestamp for s in shown)
    assert impressions.impressed_negatives(clicks, shown, 60, max_count=2) == [("a", "d"),
                                                                                ("f",)]
    # An item clicked soon after the click was not passed over.
    later = clicks + [Click("u", "f", 330, event_type="click")]
    assert impressions.impressed_negatives(later, shown, 60, 10)[1] == ()


def test_impressions_are_deduplicated_but_not_counted_against_the_bot_cap():
    events = [("f", Click("u", "i1", 10, event_type="click")),
              ("f", _shown("i2", 5)), ("f", _shown("i2", 5)), ("f", _shown("i3", 5))]
    kept, rejected = cleaning.dedupe_and_cap(events, 1, ("impression",))
    assert len(kept) == 3 and [r for _, _, r in rejected] == ["duplicate"]
    kept, rejected = cleaning.dedupe_and_cap(events + [("f", Click("u", "i4", 11))], 1,
                                             ("impression",))
    assert kept == [] and len(rejected) == 5


def test_config_needs_an_event_column_and_disjoint_types():
    with pytest.raises(ConfigError, match="ingestion.impression_event_types"):
        IngestionConfig(impression_event_types=["impression"])
    with pytest.raises(ConfigError, match=r"both: \['view'\]"):
        IngestionConfig(schema={"event_type": "e"}, event_types=["click", "view"],
                        impression_event_types=["view"])
    config = IngestionConfig(**CONFIG)
    assert config.accepted_event_types == {"click": 1.0, "impression": 1.0,
                                           "dropped_by_ranker": 1.0}


def _lines(rows):
    return [("a.csv", (number, row.encode())) for number, row in enumerate(rows, 2)]


def _decode(serialized):
    import tensorflow as tf

    feature = tf.train.Example.FromString(serialized).features.feature
    return (feature["user_id"].bytes_list.value[0].decode(),
            feature["item_id"].bytes_list.value[0].decode(),
            tuple(v.decode() for v in feature["history"].bytes_list.value),
            tuple(v.decode() for v in feature["impressed_negatives"].bytes_list.value),
            feature["item_age_seconds"].int64_list.value[0])


@pytest.mark.parametrize("num_shards", [0, 3], ids=["group_by_key", "file_shuffle"])
def test_ingest_attaches_impressions_to_later_clicks_and_counts_them(tmp_path, num_shards):
    rows = ["u1,x,90,impression", "u1,y,95,dropped_by_ranker", "u1,a,100,click",
            "u1,z,150,impression",  # after a's click: only b's (at 200) negative
            "u1,z,150,impression",  # duplicate
            "u1,b,200,click",
            "u1,,210,impression",  # bad item id
            "u1,w,abc,impression",  # bad timestamp
            "u1,v,220,hover",  # unknown type
            "u1,c,1100,click",  # eval; its window (1000..1100) holds no impression
            "u2,a,500,impression",  # a user with impressions only: counted, no example
            "u3,a,50,click", "u3,q,1200,impression"]  # after u3's only click
    config = IngestionConfig(**CONFIG)
    with TestPipeline() as p:
        out = p | beam.Create(_lines(rows)) | ingestion.IngestClicks(
            FILES, config, str(tmp_path / "shuffle"), num_shards)
        assert_that(out["counters"], equal_to([
            (("a.csv", "rows_read", ""), 13),
            (("a.csv", "accepted", "train"), 3),
            (("a.csv", "accepted", "eval"), 1),
            (("a.csv", "impressions", "impression"), 4),
            (("a.csv", "impressions", "dropped_by_ranker"), 1),
            (("a.csv", "quarantined", "duplicate"), 1),
            (("a.csv", "quarantined", "empty_item_id"), 1),
            (("a.csv", "quarantined", "bad_timestamp"), 1),
            (("a.csv", "quarantined", "unknown_event_type"), 1),
        ]), label="counters")
        # Impressions are in no history; item ages come from clicks only (a
        # first clicked at 50 by u3, not shown at 500 to u2).
        assert_that(out["train"] | "DecodeTrain" >> beam.Map(_decode), equal_to([
            ("u1", "a", (), ("x", "y"), 50), ("u1", "b", ("a",), ("z",), 0),
            ("u3", "a", (), (), 0)]), label="train")
        assert_that(out["eval"] | "DecodeEval" >> beam.Map(_decode), equal_to([
            ("u1", "c", ("a", "b"), (), 0)]), label="eval")


def test_report_counts_impressions_and_reconciles_with_them():
    report = report_lib.summarize_counters(
        [(("a.csv", "rows_read", ""), 6), (("a.csv", "accepted", "train"), 2),
         (("a.csv", "accepted", "eval"), 1), (("a.csv", "impressions", "impression"), 2),
         (("a.csv", "quarantined", "duplicate"), 1)], ["a.csv"], [100, None])
    assert report["totals"]["impressions"] == {"impression": 2}
    report_lib.check_report(report, 0.5)
    assert "2 impressions {'impression': 2}" in report_lib.summary_line(report)
    report["files"]["a.csv"]["impressions"] = {"impression": 1}
    with pytest.raises(RuntimeError, match="impressions=1"):
        report_lib.check_report(report, 0.5)


def test_a_listed_impression_column_parses_in_every_text_form():
    from clicklog import formats
    from clicklog.schema import ClickSchema

    schema = ClickSchema(impressed_items="shown")
    assert formats.required_columns(schema) == ["user_id", "item_id", "timestamp", "shown"]
    columns = ["user_id", "item_id", "timestamp", "shown"]
    assert formats.parse_row("u,a,10,b|c||d", "csv", columns, schema).shown == ("b", "c", "d")
    assert formats.parse_row("u,a,10,", "csv", columns, schema).shown == ()
    assert formats.parse_row('{"user_id": "u", "item_id": "a", "timestamp": 10, "shown": '
                             '["b", 7]}', "jsonl", None, schema).shown == ("b", "7")
    with pytest.raises(formats.RowRejected, match="impressed_item_too_long"):
        formats.parse_row("u,a,10,b|" + "x" * 300, "csv", columns, schema)


def test_listed_impressions_become_negatives_of_that_click_and_later_ones(tmp_path):
    files = {"a.csv": ingestion.InputFile("a.csv", "csv",
                                          ("user_id", "item_id", "timestamp", "shown"))}
    rows = ["u1,a,100,x|a|y", "u1,b,150,z", "u1,c,1100,",
            "u2,d,100,x|" + "q" * 300]  # a bad listed id quarantines the row
    config = IngestionConfig(schema={"impressed_items": "shown"}, eval_start_timestamp=1000,
                             impression_window_seconds=100, max_impressed_negatives=2)
    with TestPipeline() as p:
        out = p | beam.Create(_lines(rows)) | ingestion.IngestClicks(files, config)
        assert_that(out["counters"], equal_to([
            (("a.csv", "rows_read", ""), 4),
            (("a.csv", "accepted", "train"), 2),
            (("a.csv", "accepted", "eval"), 1),
            (("a.csv", "quarantined", "impressed_item_too_long"), 1),
        ]), label="counters")
        # a's own list less a itself, top position x kept last; b at 150 sees
        # its z and a's list (the cap of 2 keeps the most recent: z, then x).
        assert_that(out["train"] | "DecodeTrain" >> beam.Map(_decode), equal_to([
            ("u1", "a", (), ("y", "x"), 0), ("u1", "b", ("a",), ("x", "z"), 0)]),
            label="train")
        assert_that(out["eval"] | "DecodeEval" >> beam.Map(_decode), equal_to([
            ("u1", "c", ("a", "b"), (), 0)]), label="eval")
