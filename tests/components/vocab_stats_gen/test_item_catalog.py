"""Item catalog in VocabStatsGen: the parse/dedupe and join transforms on
hand-computed expectations, and the executor on a catalog fixture with bad rows."""

import collections
import glob
import json
import os

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from tfx.types import standard_artifacts

from clicklog.catalog import CatalogConfig
from clicklog.config import parse
from clicklog.formats import Click
from components.artifacts import VocabStats
from components.click_example_gen.click_features import ClickFeatures
from components.click_example_gen.examples import to_example
from components.vocab_stats_gen import executor as vocab_stats_gen
from components.vocab_stats_gen import item_catalog
from models import vocab as vocab_lib

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "catalog",
                       "movies_bad_rows.dat")
MOVIES = {"path": FIXTURE, "format": "dat", "columns": ["item_id", "title", "genres"],
          "features": {"title": "text", "genres": "string_list"}}
CONFIG = parse(CatalogConfig, MOVIES)


def _example(user, item, ts):
    return to_example(Click(user, item, ts), ClickFeatures(()))


# Training clicks: i1 x3, i2 x1, i3 x1 (i3 is not in the catalog).
TRAIN = [_example("u1", "i1", 100), _example("u1", "i2", 200), _example("u1", "i1", 300),
         _example("u2", "i1", 400), _example("u2", "i3", 500)]


def test_parse_keeps_the_first_row_of_an_id_and_counts_every_row():
    files = {"a.dat": ("dat", None), "b.dat": ("dat", None)}
    rows = [("b.dat", 1, b"x1::Early (2001)::Drama"),  # a later file: a duplicate
            ("a.dat", 2, b"x1::Up (2009)::Animation|Comedy"),
            ("a.dat", 3, b"x2::Late::"),
            ("a.dat", 4, b"::No id::Drama"),
            ("a.dat", 5, b"x3::two fields")]
    with TestPipeline() as p:
        out = p | beam.Create(rows) | item_catalog.ParseCatalog(files, CONFIG)
        assert_that(out["items"], equal_to([
            ("x1", (("genres", ("Animation", "Comedy")), ("title", ("up", "2009")))),
            ("x2", (("genres", ()), ("title", ("late",))))]), label="Items")
        assert_that(out["quarantine"] | beam.Map(lambda q: (q["file"], q["row"], q["reason"])),
                    equal_to([("b.dat", 1, "duplicate_item_id"), ("a.dat", 4, "empty_item_id"),
                              ("a.dat", 5, "wrong_column_count")]), label="Quarantine")
        assert_that(out["counters"], equal_to([
            (("rows_read", ""), 5), (("accepted", ""), 2),
            (("quarantined", "duplicate_item_id"), 1), (("quarantined", "empty_item_id"), 1),
            (("quarantined", "wrong_column_count"), 1)]), label="Counters")


CLICK_AGGREGATES = [("i1", (3, 3.0, 100, 400)), ("i2", (1, 1.0, 200, 200)),
                    ("i3", (1, 1.0, 500, 500))]
CATALOG_ITEMS = [("i1", (("genres", ("Horror",)),)), ("i2", (("genres", ("Action",)),)),
                 ("i9", (("genres", ("Drama",)),))]


def _join(min_item_count, max_items, include_unclicked, catalog=CATALOG_ITEMS):
    p = TestPipeline()
    joined = ({"clicks": p | "Clicks" >> beam.Create(CLICK_AGGREGATES),
               "catalog": p | "Catalog" >> beam.Create(catalog)}
              | item_catalog.JoinCatalog(min_item_count, max_items, include_unclicked))
    return p, joined


@pytest.mark.parametrize("min_count,max_items,include_unclicked,expected", [
    # Union of clicked and catalog items; i9 unclicked: count 0, no timestamps (-1).
    (1, 0, True, [("i1", (3, 3.0, 100, 400), (("genres", ("Horror",)),)),
                  ("i2", (1, 1.0, 200, 200), (("genres", ("Action",)),)),
                  ("i3", (1, 1.0, 500, 500), ()),
                  ("i9", (0, 0.0, -1, -1), (("genres", ("Drama",)),))]),
    # min_item_count drops the clicked i3 only: catalog items stay candidates.
    (2, 0, True, ["i1", "i2", "i9"]),
    (2, 0, False, ["i1"]),
    (1, 0, False, ["i1", "i2", "i3"]),
    # max_items: clicked items first by count, ties (i2, i3) by id.
    (1, 2, True, ["i1", "i2"]),
    (1, 3, True, ["i1", "i2", "i3"]),
])
def test_join_candidates_by_hand(min_count, max_items, include_unclicked, expected):
    p, joined = _join(min_count, max_items, include_unclicked)
    candidates = joined["candidates"]
    if isinstance(expected[0], str):
        candidates = candidates | beam.Map(lambda c: c[0])
    assert_that(candidates, equal_to(expected), label="Candidates")
    assert_that(joined["counters"], equal_to([
        ("catalog_items", 3), ("catalog_items_with_clicks", 2),
        ("clicked_items_missing_from_catalog", 1)] + (
        [("unclicked_catalog_candidates", 1)] if include_unclicked else [])), label="Counters")
    p.run().wait_until_finish()


def _examples(tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = '["train"]'
    os.makedirs(os.path.join(examples.uri, "Split-train"))
    with tf.io.TFRecordWriter(os.path.join(examples.uri, "Split-train", "d.gz"),
                              options="GZIP") as writer:
        for row in TRAIN:
            writer.write(row)
    return examples


def _run_executor(tmp_path, catalog, **vocab):
    output = VocabStats()
    output.uri = str(tmp_path / "vocab")
    vocab_stats_gen.Executor().Do({"examples": [_examples(tmp_path)]},
                                  {"vocab_stats": [output]},
                                  {"config": json.dumps({"item_catalog": catalog, **vocab})})
    return output


def test_executor_joins_the_catalog_and_quarantines_bad_rows(tmp_path):
    output = _run_executor(tmp_path, {**MOVIES, "max_bad_fraction": 0.7})
    vocab = vocab_lib.read_vocab(output.uri)
    # Clicked i1 (3), i2, i3 (1 each), then the unclicked catalog items i7, i9 by id.
    assert vocab.item_ids == ["i1", "i2", "i3", "i7", "i9"]
    assert vocab.item_counts == [3, 1, 1, 0, 0]
    assert vocab.item_sampling_probability == [0.6, 0.2, 0.2, 0.0, 0.0]
    # Recent window: 500 - 0.1 * (500 - 100) = 460 -> only i3's click at 500.
    assert vocab.item_recent_counts == [0, 0, 1, 0, 0]
    rows = vocab_lib.read_item_stats(output.uri)
    assert [(r.item_id, r.negative_sampling_probability > 0, r.first_timestamp)
            for r in rows[3:]] == [("i7", False, -1), ("i9", False, -1)]
    assert sum(r.negative_sampling_probability for r in rows) == pytest.approx(1.0)
    assert vocab_lib.read_item_features(output.uri) == {
        "genres": [["Horror", "Thriller"], ["Action", "Sci-Fi"], [], ["Comedy", "Romance"],
                   ["Drama"]],
        "title": [["the", "conjuring", "2013"], ["pacific", "rim", "2013"], [],
                  ["amélie", "le", "fabuleux", "destin", "2001"],
                  ["unclicked", "movie", "1999"]]}
    stats = vocab.stats
    assert stats["item_features"] == {"genres": "string_list", "title": "text"}
    # 10 lines: 4 items accepted; the second i2 row (line 5) is a duplicate.
    report = stats["catalog"]
    assert report == {
        "path": FIXTURE, "rows_read": 10, "accepted": 4,
        "quarantined": {"bad_encoding": 1, "duplicate_item_id": 1, "empty_item_id": 1,
                        "empty_line": 1, "wrong_column_count": 2},
        "catalog_items": 4, "catalog_items_with_clicks": 2,
        "clicked_items_missing_from_catalog": 1, "unclicked_catalog_candidates": 2}
    assert json.loads(output.get_string_custom_property("catalog_report")) == report
    assert stats["num_items"] == 5 and stats["num_items_before_limits"] == 3
    quarantined = [json.loads(line) for path in glob.glob(
        os.path.join(output.uri, "catalog_quarantine", "*.jsonl")) for line in open(path)]
    assert collections.Counter(q["reason"] for q in quarantined) == report["quarantined"]
    duplicate = next(q for q in quarantined if q["reason"] == "duplicate_item_id")
    assert (duplicate["row"], duplicate["raw"]) == (
        5, "i2::Pacific Rim, a duplicate (2013)::Action")
    assert duplicate["detail"].endswith("movies_bad_rows.dat:2; the first row is kept")


def test_executor_fails_when_too_many_catalog_rows_are_bad(tmp_path):
    with pytest.raises(ValueError, match=r"6 of 10 rows quarantined .* expected at most "
                                         r"vocab.item_catalog.max_bad_fraction=0.5"):
        _run_executor(tmp_path, MOVIES, max_items=2)


def test_missing_catalog_path_names_it(tmp_path):
    missing = str(tmp_path / "nowhere" / "movies.dat")
    with pytest.raises(ValueError, match=rf"vocab.item_catalog.path='{missing}': no file "
                                         "matches"):
        _run_executor(tmp_path, {**MOVIES, "path": missing})


def test_csv_catalog_header_must_name_the_declared_columns(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("id,name\n1,x\n")
    config = CatalogConfig(path=str(path), item_id="item_id", features={"name": "string"})
    with pytest.raises(ValueError, match=r"items.csv'.* lack \['item_id'\]"):
        item_catalog.resolve_catalog_files(config)


def test_reconciliation_check_names_the_counts():
    report = {"rows_read": 5, "accepted": 3, "quarantined": {"bad_json": 1}}
    with pytest.raises(ValueError, match=r"rows_read=5 != accepted=3 \+ quarantined=1"):
        item_catalog.check_catalog_report(report, CONFIG)


def test_csv_jsonl_and_parquet_files_are_read_with_row_numbers(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text('movie,title,tags\nm1,"Up, again (2009)",kids|fun\n\n')
    (tmp_path / "b.jsonl").write_text('{"movie": "m2", "tags": ["x"]}\n{"movie": "m1"}\n')
    pq.write_table(pa.table({"movie": ["m3", ""], "title": ["Heat", "none"],
                             "tags": [["a", "b"], []]}), str(tmp_path / "c.parquet"))
    config = CatalogConfig(path=str(tmp_path), item_id="movie",
                           features={"title": "text", "tags": "string_list"})
    files = item_catalog.resolve_catalog_files(config)
    assert {os.path.basename(p): spec for p, spec in files.items()} == {
        "a.csv": ("csv", ("movie", "title", "tags")), "b.jsonl": ("jsonl", None),
        "c.parquet": ("parquet", None)}
    with TestPipeline() as p:
        out = p | item_catalog.ReadItemCatalog(files, config)
        assert_that(out["items"], equal_to([
            ("m1", (("tags", ("kids", "fun")), ("title", ("up", "again", "2009")))),
            ("m2", (("tags", ("x",)), ("title", ()))),
            ("m3", (("tags", ("a", "b")), ("title", ("heat",))))]), label="Items")
        # a.csv line 3 is empty; b.jsonl's m1 (line 2) comes after a.csv's; c.parquet row 2.
        assert_that(out["quarantine"] | beam.Map(
            lambda q: (os.path.basename(q["file"]), q["row"], q["reason"])), equal_to([
                ("a.csv", 3, "empty_line"), ("b.jsonl", 2, "duplicate_item_id"),
                ("c.parquet", 2, "empty_item_id")]), label="Quarantine")
