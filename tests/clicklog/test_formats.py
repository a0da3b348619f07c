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


def test_declared_schema_maps_columns_units_event_type_and_features():
    from clicklog.config import parse
    from clicklog.schema import ClickSchema

    schema = parse(ClickSchema, {
        "user_id": "uid", "item_id": "movie", "timestamp": "ts",
        "timestamp_unit": "iso8601", "weight": "rating", "event_type": "action",
        "item_features": {"genres": "string_list"}, "context_features": {"hour": "int",
                                                                         "price": "float"}})
    fields = {"uid": "u1", "movie": "m1", "ts": "2020-09-13T12:26:40Z", "rating": "4",
              "action": " view ", "genres": "Drama|\tComedy|", "hour": "7", "price": ""}
    click = formats.parse_fields(fields, schema)
    # 2020-09-13T12:26:40Z is unix 1600000000; the empty price takes the default 0.0.
    assert click == formats.Click("u1", "m1", 1600000000, 4.0, "view", (
        ("genres", ("Drama", "Comedy")), ("hour", 7), ("price", 0.0)))
    with pytest.raises(formats.RowRejected, match="hour='7.5': expected int") as rejected:
        formats.parse_fields(dict(fields, hour="7.5"), schema)
    assert rejected.value.reason == "bad_feature"


@pytest.mark.parametrize("unit,value,expected", [
    ("seconds", "1600000000.9", 1600000000),
    ("milliseconds", 1600000000123, 1600000000),
    ("iso8601", "2020-09-13T14:26:40+02:00", 1600000000),
    ("iso8601", "2020-09-13 12:26:40", 1600000000),  # naive times are UTC
])
def test_timestamp_units(unit, value, expected):
    from clicklog.schema import ClickSchema

    schema = ClickSchema(timestamp_unit=unit)
    assert formats.parse_fields({"user_id": "u", "item_id": "i", "timestamp": value},
                                schema).timestamp == expected


def test_milliseconds_read_as_seconds_are_out_of_range_with_the_value_named():
    with pytest.raises(formats.RowRejected, match=r"1600000000000.*outside.*unix seconds"):
        formats.parse_row("u,i,1600000000000", "csv", ["user_id", "item_id", "timestamp"])


def test_tf_example_fields_and_corrupt_records():
    import tensorflow as tf

    example = tf.train.Example(features=tf.train.Features(feature={
        "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"u"])),
        "item_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[42])),
        "timestamp": tf.train.Feature(int64_list=tf.train.Int64List(value=[1600000000])),
        "tags": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a", b"b"])),
    }))
    fields = formats.tf_example_to_fields(example.SerializeToString())
    assert fields == {"user_id": "u", "item_id": 42, "timestamp": 1600000000,
                      "tags": ["a", "b"]}
    assert formats.parse_fields(fields) == formats.Click("u", "42", 1600000000)
    with pytest.raises(formats.RowRejected) as rejected:
        formats.tf_example_to_fields(b"\xff\xff\xff not a proto")
    assert rejected.value.reason == "bad_tf_example"


@pytest.mark.parametrize("line,reason", [
    ('q,"unterminated,1600000000', "bad_csv_quoting"),
    ('q,"a"b,1600000000', "bad_csv_quoting"),
    ("u1,i\tx,1600000000", "bad_item_id"),
])
def test_csv_quoting_and_control_characters(line, reason):
    with pytest.raises(formats.RowRejected) as rejected:
        formats.parse_row(line, "csv", ["user_id", "item_id", "timestamp"])
    assert rejected.value.reason == reason


def test_detect_format_of_compressed_and_binary_files():
    assert [formats.detect_format(p) for p in (
        "a.csv.gz", "b.jsonl.bz2", "c.parquet", "d.tfrecord", "e.tfrecord.gz")] == [
        "csv", "jsonl", "parquet", "tfrecord", "tfrecord"]


def test_datetime_values_from_parquet_timestamp_columns():
    import datetime

    moment = datetime.datetime(2020, 9, 13, 12, 26, 40)  # naive: UTC
    click = formats.parse_fields({"user_id": "u", "item_id": "i", "timestamp": moment})
    assert click.timestamp == 1600000000
