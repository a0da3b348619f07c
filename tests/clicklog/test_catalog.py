"""Item catalog rows: config validation, tokens of each feature type, rejected rows."""

import pytest

from clicklog import catalog
from clicklog.catalog import CatalogConfig
from clicklog.config import ConfigError, parse
from clicklog.formats import RowRejected

MOVIES = CatalogConfig(path="movies.dat", format="dat", columns=("item_id", "title", "genres"),
                       features={"title": "text", "genres": "string_list"})


def test_text_tokens_are_lower_case_words_and_keep_the_year():
    assert catalog.tokenize_text("The Conjuring (2013)") == ("the", "conjuring", "2013")
    assert catalog.tokenize_text("Amélie: Le fabuleux_destin") == (
        "amélie", "le", "fabuleux", "destin")
    assert catalog.tokenize_text("  --  ") == ()


@pytest.mark.parametrize("kind,value,tokens", [
    ("string_list", "Action|Sci-Fi||", ("Action", "Sci-Fi")),
    ("string_list", ["Drama", "War\t|x", ""], ("Drama", "Warx")),
    ("string_list", "", ()),
    ("string", " Tom\tHanks|Jr \n", ("TomHanksJr",)),
    ("string", 7.0, ("7",)),
    ("string", None, ()),
    ("text", ["Up (2009)"], ("up", "2009")),
])
def test_feature_tokens_by_type(kind, value, tokens):
    assert catalog.feature_tokens("f", kind, value) == tokens


def test_feature_of_the_wrong_shape_is_a_bad_feature_naming_it():
    with pytest.raises(RowRejected, match="bad_feature: title=") as error:
        catalog.feature_tokens("title", "text", ["a", "b"])
    assert error.value.reason == "bad_feature"


def test_dat_row_becomes_an_item_with_sorted_features():
    item = catalog.parse_catalog_line("0114508::Species (1995)::Horror|Sci-Fi", "dat", None,
                                      MOVIES)
    assert item == catalog.CatalogItem("0114508", (("genres", ("Horror", "Sci-Fi")),
                                                   ("title", ("species", "1995"))))


def test_csv_and_jsonl_rows():
    config = CatalogConfig(path="c.csv", item_id="movie", features={"name": "string"})
    assert catalog.parse_catalog_line('7,"A, B"', "csv", ("movie", "name"), config) == (
        catalog.CatalogItem("7", (("name", ("A, B",)),)))
    # JSONL: numeric ids are cleaned as click ids (7.0 -> "7"); a missing feature is empty.
    assert catalog.parse_catalog_line('{"movie": 7.0}', "jsonl", None, config) == (
        catalog.CatalogItem("7", (("name", ()),)))


@pytest.mark.parametrize("line,fmt,reason", [
    ("::Title::Drama", "dat", "empty_item_id"),
    ("i1::Title", "dat", "wrong_column_count"),
    ("i1::a::b::c", "dat", "wrong_column_count"),
    ('{"title": "x"}', "jsonl", "missing_field"),
    ("[1]", "jsonl", "bad_json"),
    ("{", "jsonl", "bad_json"),
    ('{"item_id": "a\\tb"}', "jsonl", "bad_item_id"),
    ('{"item_id": "i", "title": {"x": 1}}', "jsonl", "bad_feature"),
])
def test_rejected_rows_carry_their_reason(line, fmt, reason):
    with pytest.raises(RowRejected) as error:
        catalog.parse_catalog_line(line, fmt, None, MOVIES)
    assert error.value.reason == reason


@pytest.mark.parametrize("values,message", [
    ({}, r"vocab.item_catalog.path='': expected a file, glob or directory"),
    ({"path": "m.dat", "format": "xml"},
     r"vocab.item_catalog.format='xml': expected one of \['auto', 'csv'"),
    ({"path": "m.dat", "format": "dat"},
     r"vocab.item_catalog.columns=\(\): expected the list of the `dat` format's fields"),
    ({"path": "m.dat", "features": {"title": "txt"}},
     r"vocab.item_catalog.features={'title': 'txt'}: expected a mapping of name to values from"),
    ({"path": "m.dat", "columns": ["item_id", "title"], "features": {"genres": "string_list"}},
     r"columns=\('item_id', 'title'\): expected the item id and every feature column; "
     r"\['genres'\] are missing"),
    ({"path": "m.dat", "features": {"item_id": "string"}}, "expected side features only"),
    ({"path": "m.dat", "include_unclicked": "yes"},
     "vocab.item_catalog.include_unclicked='yes': expected true or false"),
    ({"path": "m.dat", "colums": []}, r"vocab.item_catalog.colums=\[\]: expected a known key"),
])
def test_config_errors_name_the_key_and_the_value(values, message):
    with pytest.raises(ConfigError, match=message):
        parse(CatalogConfig, values)


def test_format_from_the_file_name():
    assert MOVIES.file_format("x.csv") == "dat"  # declared format wins
    auto = CatalogConfig(path="x", columns=("item_id",))
    assert [auto.file_format(p) for p in ("a.dat", "a.csv.gz", "a.jsonl", "a.parquet")] == [
        "dat", "csv", "jsonl", "parquet"]
    with pytest.raises(ValueError, match=r"item catalog 'a.tfrecord': cannot tell the format"):
        auto.file_format("a.tfrecord")
    with pytest.raises(ValueError, match=r"'a.dat' is a `dat` file without a header"):
        CatalogConfig(path="x").file_format("a.dat")
