import pytest

from clicklog import formats

COLUMNS = ["user_id", "item_id", "timestamp", "weight"]


def test_csv_row_with_quoted_delimiter_and_weight():
    click = formats.parse_row('u1,"item, with comma",1600000000,2.5', "csv", COLUMNS)
    assert click == formats.Click("u1", "item, with comma", 1600000000, 2.5)


@pytest.mark.parametrize("line,fmt,reason", [
    ("u1,i1,1600000000", "csv", "wrong_column_count"),
    ("u1,i1,1600000000,1,extra", "csv", "wrong_column_count"),
    (",i1,1600000000,1", "csv", "empty_user_id"),
    ("u1, ,1600000000,1", "csv", "empty_item_id"),
    ("u1,i1,yesterday,1", "csv", "bad_timestamp"),
    ("u1,i1,-5,1", "csv", "bad_timestamp"),
    ("u1,i1,99999999999,1", "csv", "bad_timestamp"),
    ("u1,i1,1600000000,-1", "csv", "bad_weight"),
    ("u1," + "x" * 300 + ",1600000000,1", "csv", "item_id_too_long"),
    ('{"user_id": "u1", "item_id": "i1"', "jsonl", "bad_json"),
    ('["u1", "i1", 1]', "jsonl", "bad_json"),
    ('{"user_id": "u1", "item_id": "i1"}', "jsonl", "missing_field"),
    ("1::2::3", "movietweetings", "wrong_column_count"),
    ("1::0114508::8::nan", "movietweetings", "bad_timestamp"),
])
def test_rejections_have_stable_reasons(line, fmt, reason):
    with pytest.raises(formats.RowRejected) as rejected:
        formats.parse_row(line, fmt, COLUMNS if fmt == "csv" else None)
    assert rejected.value.reason == reason


def test_jsonl_and_movietweetings_rows():
    assert formats.parse_row('{"user_id": 7, "item_id": "i9", "timestamp": "1600000000"}',
                             "jsonl") == formats.Click("7", "i9", 1600000000, 1.0)
    assert formats.parse_row("1::0114508::8::1381006850", "movietweetings") == formats.Click(
        "1", "0114508", 1381006850, 8.0)


def test_header_without_required_column_names_file_and_columns():
    with pytest.raises(ValueError,
                       match=r"clicks\.csv.*lacks required column\(s\) \['timestamp'\]"):
        formats.parse_header("user_id,item_id,time", "clicks.csv")


def test_detect_format_rejects_unknown_extension():
    assert formats.detect_format("a/b.JSONL") == "jsonl"
    with pytest.raises(ValueError, match=r"clicks\.xlsx"):
        formats.detect_format("clicks.xlsx")
