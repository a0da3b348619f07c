"""Beam transforms of ClickExampleGen, checked with assert_that on hand-made input."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clicklog.formats import Click
from components.click_example_gen import cleaning as click_cleaning
from components.click_example_gen import click_features, ingestion
from components.click_example_gen import report as report_lib
from components.click_example_gen import splits as click_splits
from components.click_example_gen.config import IngestionConfig
from components.click_example_gen.splits import EVAL, TRAIN

COLUMNS = ("user_id", "item_id", "timestamp")
FILES = {"a.csv": ingestion.InputFile("a.csv", "csv", COLUMNS)}


def _features(clicks, history_length=2):
    ordered, _ = click_cleaning.dedupe_and_cap([("f", c) for c in clicks], 0)
    return list(click_features.user_click_features(ordered, history_length))


def test_history_holds_only_strictly_earlier_items():
    clicks = [Click("u", item, ts) for item, ts in
              [("c", 30), ("a", 10), ("b", 20), ("d", 30), ("e", 40)]]
    out = _features(clicks)
    by_item = {click.item_id: f.history for _, click, f in out}
    # Hand-computed: c and d share t=30, so neither sees the other.
    assert by_item == {"a": (), "b": ("a",), "c": ("a", "b"), "d": ("a", "b"),
                       "e": ("c", "d")}
    since = {click.item_id: f.seconds_since_previous_click for _, click, f in out}
    # a is the first click (-1); c and d both look back to b at 20, e to 30.
    assert since == {"a": -1, "b": 10, "c": 10, "d": 10, "e": 10}


def test_leakage_history_never_holds_an_item_clicked_at_or_after_the_click():
    # Same item clicked twice: at 10 and at 50; a click at 50 on x must not see
    # the x at 50 nor y at 50, only the x at 10 and z at 20.
    clicks = [Click("u", "x", 10), Click("u", "z", 20), Click("u", "y", 50),
              Click("u", "x", 50), Click("u", "w", 60)]
    out = _features(clicks, history_length=10)
    times = [(c.item_id, c.timestamp) for c in clicks]
    for _, click, f in out:
        for item in f.history:
            assert any(i == item and t < click.timestamp for i, t in times), (click, item)
        if click.timestamp == 50:
            assert f.history == ("x", "z")
    assert [f.history for _, c, f in out if c.item_id == "w"] == [("x", "z", "x", "y")]


def test_dedupe_keeps_one_copy_and_bot_cap_drops_the_whole_user():
    a, b = Click("u", "i1", 10, 2.0), Click("u", "i1", 10, 1.0)
    kept, rejected = click_cleaning.dedupe_and_cap(
        [("f2", a), ("f1", a), ("f1", b), ("f1", Click("u", "i2", 5))], 0)
    # Sorted by (timestamp, item, event type), then (path, weight): f1/weight 1 wins.
    assert kept == [("f1", Click("u", "i2", 5)), ("f1", b)]
    assert sorted((p, c.weight, r) for p, c, r in rejected) == [
        ("f1", 2.0, "duplicate"), ("f2", 2.0, "duplicate")]
    kept, rejected = click_cleaning.dedupe_and_cap(
        [("f", Click("bot", f"i{n}", n)) for n in range(4)], max_clicks_per_user=3)
    assert kept == [] and [r for _, _, r in rejected] == ["user_over_click_cap"] * 4
    kept, _ = click_cleaning.dedupe_and_cap(
        [("f", Click("human", f"i{n}", n)) for n in range(3)], max_clicks_per_user=3)
    assert len(kept) == 3


def test_event_rejection_window_is_half_open_and_types_are_checked():
    rule = click_cleaning.event_rejection
    assert rule(Click("u", "i", 99), 100, 200, None) == "outside_time_window"
    assert rule(Click("u", "i", 100), 100, 200, None) is None
    assert rule(Click("u", "i", 200), 100, 200, None) == "outside_time_window"
    assert rule(Click("u", "i", 150, event_type="view"), None, None,
                {"click": 1.0}) == "unknown_event_type"
    assert rule(Click("u", "i", 150, event_type="click"), None, None, {"click": 1.0}) is None


def test_split_rules():
    # 11 quantiles 0..100 by 10: eval 20% + test 10% -> eval from q[7]=70, test from q[9]=90.
    quantiles = list(range(0, 101, 10))
    assert click_splits.cutoffs_from_quantiles(quantiles, 0.2, 0.1) == (70, 90)
    assert click_splits.cutoffs_from_quantiles(quantiles, 0.1, 0.0) == (90, None)
    assert [click_splits.split_by_time(t, (70, 90)) for t in (69, 70, 89, 90)] == [0, 1, 1, 2]
    assert [click_splits.split_by_time(t, (70, None)) for t in (69, 70, 1000)] == [0, 1, 1]
    buckets = [click_splits.split_by_user(f"u{n}", 0.2, 0.1, seed=0) for n in range(5000)]
    assert abs(buckets.count(1) / 5000 - 0.2) < 0.03
    assert abs(buckets.count(2) / 5000 - 0.1) < 0.03
    assert buckets == [click_splits.split_by_user(f"u{n}", 0.2, 0.1, seed=0)
                       for n in range(5000)]  # stable


def _lines(rows, path="a.csv"):
    """Records as the reader yields them: CSV (path, (line number, bytes)) as
    `inputs.read_csv_file`, other text formats (path, line bytes)."""
    raws = [row.encode("utf-8") if isinstance(row, str) else row for row in rows]
    if path.endswith(".csv"):
        return [(path, (number, raw)) for number, raw in enumerate(raws, 2)]
    return [(path, raw) for raw in raws]


def _decode(serialized):
    import tensorflow as tf

    feature = tf.train.Example.FromString(serialized).features.feature
    return (feature["item_id"].bytes_list.value[0].decode(),
            tuple(v.decode() for v in feature["history"].bytes_list.value),
            feature["seconds_since_previous_click"].int64_list.value[0],
            feature["item_age_seconds"].int64_list.value[0],
            round(feature["weight"].float_list.value[0], 3))


@pytest.mark.parametrize("num_shards", [0, 3], ids=["group_by_key", "file_shuffle"])
def test_ingest_counts_reconcile_and_splits_are_temporal(tmp_path, num_shards):
    rows = ["u1,i1,100", "u1,i2,200", "u2,i1,300", "u2,i3,400", "u1,i3,500",
            "u1,i3,500",  # duplicate
            "u3,,600", "u3,i1,abc", "u3,i1", "", b"u4,\xff\xfe,700", "u3,i2,700"]
    config = IngestionConfig(eval_start_timestamp=450)
    with TestPipeline() as p:
        out = p | beam.Create(_lines(rows)) | ingestion.IngestClicks(
            FILES, config, str(tmp_path / "shuffle"), num_shards)
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
        # Hand-computed (item, history, seconds since previous, item age, weight):
        # u1's i3 at 500: history i1, i2; previous click at 200; i3 first seen at 400.
        # u3's i2 at 700: no history; i2 first seen at 200 (u1).
        assert_that(out[EVAL] | "DecodeEVAL" >> beam.Map(_decode), equal_to(
            [("i3", ("i1", "i2"), 300, 100, 1.0), ("i2", (), -1, 500, 1.0)]), label="eval")
        assert_that(out[TRAIN] | "DecodeTRAIN" >> beam.Map(_decode), equal_to(
            [("i1", (), -1, 0, 1.0), ("i2", ("i1",), 100, 0, 1.0),
             ("i1", (), -1, 200, 1.0), ("i3", ("i1",), 100, 0, 1.0)]), label="train")


def _frozen(serialized):
    import tensorflow as tf

    feature = tf.train.Example.FromString(serialized).features.feature
    frozen = (tuple(v.decode() for v in feature["history_at_cutoff"].bytes_list.value)
              if "history_at_cutoff" in feature else None)
    return (feature["item_id"].bytes_list.value[0].decode(),
            tuple(v.decode() for v in feature["history"].bytes_list.value), frozen)


def test_eval_clicks_carry_the_history_as_it_stood_at_the_cutoff():
    # u1: i1, i2 in training, then i3, i4 after the cut-off at 450: both eval
    # clicks carry (i1, i2), the history when the eval period began; i4's own
    # history also has i3. u2's only click is in the eval period: nothing then.
    rows = ["u1,i1,100", "u1,i2,200", "u1,i3,500", "u1,i4,600", "u2,i1,700"]
    with TestPipeline() as p:
        out = p | beam.Create(_lines(rows)) | ingestion.IngestClicks(
            FILES, IngestionConfig(eval_start_timestamp=450))
        assert_that(out[EVAL] | "FrozenEVAL" >> beam.Map(_frozen), equal_to(
            [("i3", ("i1", "i2"), ("i1", "i2")), ("i4", ("i1", "i2", "i3"), ("i1", "i2")),
             ("i1", (), ())]), label="eval")
        assert_that(out[TRAIN] | "FrozenTRAIN" >> beam.Map(_frozen), equal_to(
            [("i1", (), None), ("i2", ("i1",), None)]), label="train")


def test_ingest_cleaning_rules_and_three_way_split_with_event_weights():
    files = {"e.jsonl": ingestion.InputFile("e.jsonl", "jsonl")}
    rows = ['{"user_id": "u1", "item_id": "i1", "timestamp": 100, "type": "click"}',
            '{"user_id": "u1", "item_id": "i2", "timestamp": 200, "type": "buy"}',
            '{"user_id": "u1", "item_id": "i3", "timestamp": 300, "type": "click"}',
            '{"user_id": "u1", "item_id": "i4", "timestamp": 400, "type": "click"}',
            '{"user_id": "u1", "item_id": "i5", "timestamp": 999, "type": "click"}',  # window
            '{"user_id": "u1", "item_id": "i6", "timestamp": 150, "type": "hover"}',  # type
            '{"user_id": "u2", "item_id": "i1", "timestamp": 310, "type": "click"}',
            '{"user_id": "bot", "item_id": "i1", "timestamp": 110, "type": "click"}',
            '{"user_id": "bot", "item_id": "i2", "timestamp": 120, "type": "click"}',
            '{"user_id": "bot", "item_id": "i3", "timestamp": 130, "type": "click"}',
            '{"user_id": "bot", "item_id": "i4", "timestamp": 140, "type": "click"}',
            '{"user_id": "bot", "item_id": "i5", "timestamp": 150, "type": "click"}']
    config = IngestionConfig(
        schema={"event_type": "type"}, event_types={"click": 1.0, "buy": 3.0},
        min_timestamp=0, max_timestamp=900, max_clicks_per_user=4,
        eval_start_timestamp=300, test_start_timestamp=400)
    assert config.splits == ["train", "eval", "test"]
    with TestPipeline() as p:
        out = p | beam.Create(_lines(rows, "e.jsonl")) | ingestion.IngestClicks(files, config)
        assert_that(out["counters"], equal_to([
            (("e.jsonl", "rows_read", ""), 12),
            (("e.jsonl", "accepted", "train"), 2),
            (("e.jsonl", "accepted", "eval"), 2),
            (("e.jsonl", "accepted", "test"), 1),
            (("e.jsonl", "quarantined", "outside_time_window"), 1),
            (("e.jsonl", "quarantined", "unknown_event_type"), 1),
            (("e.jsonl", "quarantined", "user_over_click_cap"), 5),
        ]), label="counters")
        # i2 was bought: weight 1 x 3. u2's i1 at 310: i1 first seen at 100 (the
        # bot's clicks are dropped before item ages are computed).
        assert_that(out["train"] | "Decodetrain" >> beam.Map(_decode), equal_to(
            [("i1", (), -1, 0, 1.0), ("i2", ("i1",), 100, 0, 3.0)]), label="train")
        assert_that(out["eval"] | "Decodeeval" >> beam.Map(_decode), equal_to(
            [("i3", ("i1", "i2"), 100, 0, 1.0), ("i1", (), -1, 210, 1.0)]), label="eval")
        assert_that(out["test"] | "Decodetest" >> beam.Map(_decode), equal_to(
            [("i4", ("i1", "i2", "i3"), 100, 0, 1.0)]), label="test")


def test_user_holdout_puts_all_clicks_of_a_user_in_one_split():
    rows = [f"u{u},i{n},{100 + n}" for u in range(40) for n in range(3)]
    config = IngestionConfig(split_by="user", eval_fraction=0.25)
    expected_eval = {f"u{u}" for u in range(40)
                     if click_splits.split_by_user(f"u{u}", 0.25, 0.0, 0) == 1}
    assert 0 < len(expected_eval) < 40

    def user_of(serialized):
        import tensorflow as tf

        return tf.train.Example.FromString(serialized).features.feature[
            "user_id"].bytes_list.value[0].decode()

    with TestPipeline() as p:
        out = p | beam.Create(_lines(rows)) | ingestion.IngestClicks(FILES, config)
        assert_that(out["eval"] | "Users" >> beam.Map(user_of), equal_to(
            sorted(expected_eval) * 3), label="eval users")
        assert_that(out["cutoff"], equal_to([(None, None)]), label="cutoff")


def _report(rows_read, accepted, quarantined, train=1, eval_=1):
    return {"files": {"x.csv": {"rows_read": rows_read, "accepted": accepted,
                                "quarantined": quarantined}},
            "totals": {"rows_read": rows_read, "quarantined": quarantined,
                       "accepted_by_split": {"train": train, "eval": eval_}},
            "eval_start_timestamp": 5}


def test_check_report_fails_on_mostly_garbage_naming_file_and_counts():
    report_lib.check_report(_report(10, 5, {"bad_timestamp": 5}), 0.5)
    with pytest.raises(ValueError, match=r"x\.csv.*6 of 10 rows quarantined.*bad_timestamp"):
        report_lib.check_report(_report(10, 4, {"bad_timestamp": 6}), 0.5)


def test_check_report_catches_unreconciled_counts_empty_split_and_no_rows():
    with pytest.raises(RuntimeError, match="do not reconcile"):
        report_lib.check_report(_report(10, 8, {"x": 1}), 0.5)
    with pytest.raises(ValueError, match="eval split is empty"):
        report_lib.check_report(_report(10, 10, {}, eval_=0), 0.5)
    with pytest.raises(ValueError, match="no rows in any file"):
        report_lib.check_report(_report(0, 0, {}), 0.5)


def test_shuffle_shards_follow_the_runner_setting_and_the_input_size():
    mib = 2**20
    files = {"a": ingestion.InputFile("a", "csv", COLUMNS, size=70 * mib),
             "b": ingestion.InputFile("b", "csv", COLUMNS, size=30 * mib)}
    auto = IngestionConfig()  # 32 MiB of input per shard
    assert ingestion.shuffle_shards(auto, files, local_runner=True) == 4  # ceil(100 / 32)
    assert ingestion.shuffle_shards(auto, files, local_runner=False) == 0  # runner's shuffle
    small = IngestionConfig(shuffle="files", shuffle_shard_mb=10)
    assert ingestion.shuffle_shards(small, files, local_runner=False) == 10
    tiny = {"a": ingestion.InputFile("a", "csv", COLUMNS, size=100)}
    assert ingestion.shuffle_shards(small, tiny, local_runner=True) == ingestion.MIN_SHUFFLE_SHARDS
    assert ingestion.shuffle_shards(IngestionConfig(shuffle="group_by_key"), files,
                                    local_runner=True) == 0


def test_report_summary_and_file_lines():
    report = report_lib.summarize_counters(
        [(("a.csv", "rows_read", ""), 5), (("a.csv", "accepted", "train"), 3),
         (("a.csv", "accepted", "eval"), 1), (("a.csv", "quarantined", "duplicate"), 1)],
        ["a.csv", "empty.csv"], [100, None])
    assert report["eval_start_timestamp"] == 100 and report["test_start_timestamp"] is None
    assert report["files"]["empty.csv"]["rows_read"] == 0
    assert report_lib.summary_line(report) == (
        "5 rows read from 2 file(s), 4 accepted (train 3, eval 1), quarantined 1 "
        "{'duplicate': 1}")
    assert report_lib.file_lines(report) == [
        "a.csv: 5 read, 1 quarantined {'duplicate': 1}",
        "empty.csv: no rows (empty or header-only)"]


def test_parse_batches_a_users_clicks_per_bundle_and_flushes_at_the_bound(monkeypatch):
    monkeypatch.setattr(ingestion, "MAX_PENDING_CLICKS", 3)
    parse = ingestion.ParseRecord(FILES, IngestionConfig())
    parse.start_bundle()
    rows = ["u1,i1,100", "u2,i2,200", "u1,i3,300", "u1,i4,400", "bad,row", "u2,i5,500"]
    emitted = []
    for path, raw in _lines(rows):
        emitted.extend(out for out in parse.process((path, raw))
                       if not isinstance(out, beam.pvalue.TaggedOutput))
    # The 3rd parsed click reached the bound: u1's two clicks and u2's one left together.
    assert [(user, len(ingestion.unpack_clicks(user, [b], ("a.csv",)))) for user, b in emitted
            ] == [("u1", 2), ("u2", 1)]
    rest = [w.value for w in parse.finish_bundle()]
    assert [(user, [c.item_id for _, c in ingestion.unpack_clicks(user, [b], ("a.csv",))])
            for user, b in rest] == [("u1", ["i4"]), ("u2", ["i5"])]


def test_ingest_output_does_not_depend_on_batching_or_shuffle(monkeypatch, tmp_path):
    rows = [f"u{n % 7},i{n % 11},{100 + 13 * n}" for n in range(60)] + ["u1,i1,113"]
    config = IngestionConfig(eval_fraction=0.3, max_clicks_per_user=8)

    def run(label, num_shards=0):
        with TestPipeline() as p:
            out = p | beam.Create(_lines(rows)) | ingestion.IngestClicks(
                FILES, config, str(tmp_path / label / "shuffle"), num_shards)
            for name in ("counters", TRAIN, EVAL):
                out[name] | f"Repr{name}" >> beam.Map(repr) | f"Write{name}" >> (
                    beam.io.WriteToText(str(tmp_path / label / name)))
        return {name: sorted(line for path in (tmp_path / label).glob(f"{name}-*")
                             for line in path.read_text().splitlines())
                for name in ("counters", TRAIN, EVAL)}

    batched = run("batched")
    assert run("file_shuffle", num_shards=4) == batched  # and not on how they were grouped
    monkeypatch.setattr(ingestion, "MAX_PENDING_CLICKS", 1)  # one click per shuffle value
    assert run("unbatched") == batched
    counters = dict((key[1:], n) for key, n in map(eval, batched["counters"]))
    # 61 rows, 1 duplicate (u1,i1,113 repeats row 1); 7 users of 8-9 distinct
    # clicks: the four with 9 are over the cap of 8.
    assert counters[("rows_read", "")] == 61 and counters[("quarantined", "duplicate")] == 1
    assert counters[("quarantined", "user_over_click_cap")] == 36
    assert len(batched[TRAIN]) + len(batched[EVAL]) == 24
