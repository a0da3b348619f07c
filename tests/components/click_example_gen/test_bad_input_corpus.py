"""The bad-input corpus (tests/testdata/bad_inputs) through ClickExampleGen's executor.

`corpus/` is one directory run: every case is counted and quarantined with a
stable reason, per file, and nothing is lost. `errors/` holds files that must
stop the run with a message naming the file, the bad value and what was
expected.
"""

import csv
import json
import os
import pathlib

import pytest
import tensorflow as tf

from tests.components.click_example_gen.support import run_click_example_gen as _run

DATA = pathlib.Path(__file__).parents[2] / "testdata" / "bad_inputs"
CORPUS = DATA / "corpus"
ERRORS = DATA / "errors"

# file -> (rows_read, accepted, quarantined by reason), derived by hand from the files.
EXPECTED = {
    "good.csv": (40, 40, {}),
    # "t1,i2" has two fields; "t1,i3," has an empty timestamp; the last line has no newline.
    "truncated.csv": (4, 2, {"wrong_column_count": 1, "bad_timestamp": 1}),
    "latin1.csv": (3, 2, {"bad_encoding": 1}),  # CRLF endings are fine
    "bom.csv": (1, 1, {}),
    # quoted comma and doubled quotes parse; an unterminated quote and text after a
    # closing quote are quoting errors; ";" is an ordinary character.
    "quoted.csv": (5, 3, {"bad_csv_quoting": 2}),
    "huge_ids.csv": (2, 1, {"item_id_too_long": 1}),  # a 40-digit id is fine
    # -5, year 3000, milliseconds and NaN are rejected; 1600000000.75 is accepted.
    "timestamps.csv": (5, 1, {"bad_timestamp": 4}),
    "empty.csv": (0, 0, {}),  # zero bytes: set aside whole (corrupt_files=quarantine)
    "header_only.csv": (0, 0, {}),
    # quoted fields spanning lines are one row each (the csv module counts 6 records
    # after the header); a 3-field and a 5-field row, and a BOM inside the file.
    "multiline.csv": (6, 3, {"wrong_column_count": 2, "bom": 1}),
    "reordered.csv": (3, 2, {"bad_weight": 1}),  # other column order; weight -1 rejected
    # numeric ids are fine; missing timestamp, truncated JSON, a JSON list, a blank line.
    "mixed.jsonl": (6, 2, {"missing_field": 1, "bad_json": 2, "empty_line": 1}),
    "ratings.dat": (3, 1, {"bad_weight": 1, "wrong_column_count": 1}),
}


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("corpus")
    examples, quarantine = _run(tmp_path, CORPUS, {
        "max_bad_fraction": 1.0, "max_quarantine_fraction": 1.0, "corrupt_files": "quarantine"})
    with open(os.path.join(quarantine.uri, "ingestion.json")) as f:
        report = json.load(f)
    rows = []
    for name in tf.io.gfile.glob(os.path.join(quarantine.uri, "quarantined*.jsonl")):
        with open(name) as f:
            rows += [json.loads(line) for line in f]
    return report, rows


def test_every_file_is_counted_with_its_reasons(corpus_run):
    report, _ = corpus_run
    by_name = {os.path.basename(path): entry for path, entry in report["files"].items()}
    assert sorted(by_name) == sorted(EXPECTED)
    for name, (rows_read, accepted, quarantined) in EXPECTED.items():
        entry = by_name[name]
        assert (entry["rows_read"], entry["accepted"], entry["quarantined"]) == (
            rows_read, accepted, quarantined), name
        assert entry["rows_read"] == entry["accepted"] + sum(entry["quarantined"].values())
    assert report["empty_files"] == []
    assert {os.path.basename(p): reason for p, reason in report["quarantined_files"].items()} == {
        "empty.csv": f"click log '{CORPUS / 'empty.csv'}': the file is empty (0 bytes; a failed "
                     "or unfinished export?); expected click rows (ingestion.corrupt_files="
                     "quarantine sets such files aside)"}


def test_rows_read_match_an_independent_count_of_csv_records(corpus_run):
    report, _ = corpus_run
    for path, entry in report["files"].items():
        # quoted.csv's stray quotes are its point: a lenient reader would join its lines.
        if path.endswith(".csv") and os.path.getsize(path) and "quoted" not in path:
            with open(path, newline="", encoding="utf-8", errors="replace") as f:
                records = sum(1 for _ in csv.reader(f)) - 1  # the header
            assert entry["rows_read"] == records, path


def test_a_record_spanning_lines_is_one_row_and_rejections_name_their_line(corpus_run):
    _, rows = corpus_run
    multiline = {r["detail"]: r["reason"] for r in rows if r["file"].endswith("multiline.csv")}
    assert multiline == {
        "line 6: 3 != 4": "wrong_column_count", "line 7: 5 != 4": "wrong_column_count",
        "line 8: a byte order mark inside the file (files concatenated with their BOMs?); "
        "expected one only before the header": "bom"}


def test_every_dropped_row_is_in_the_quarantine_with_file_and_reason(corpus_run):
    report, rows = corpus_run
    assert len(rows) == sum(report["totals"]["quarantined"].values())
    counted = {}
    for row in rows:
        key = (os.path.basename(row["file"]), row["reason"])
        counted[key] = counted.get(key, 0) + 1
    expected = {(name, reason): n for name, (_, _, reasons) in EXPECTED.items()
                for reason, n in reasons.items()}
    assert counted == expected
    [latin] = [r for r in rows if r["reason"] == "bad_encoding"]
    assert "caf" in latin["raw"] and "utf-8" in latin["detail"]
    [long_id] = [r for r in rows if r["reason"] == "item_id_too_long"]
    assert "300 characters > 256" in long_id["detail"]


def test_default_garbage_threshold_names_the_first_bad_file(tmp_path):
    with pytest.raises(ValueError, match=r"mixed\.jsonl.*4 of 6 rows quarantined \(67%\) > "
                                         r"max_bad_fraction 50%.*bad_json"):
        _run(tmp_path, CORPUS, {"corrupt_files": "quarantine"})


def test_a_quarantine_rate_above_five_percent_stops_the_run(tmp_path):
    with pytest.raises(ValueError, match=r"click logs: 2\d of \d\d rows quarantined \(\d+\.\d%\) > "
                                         r"ingestion\.max_quarantine_fraction=0\.05; reasons \{"):
        _run(tmp_path, CORPUS, {"corrupt_files": "quarantine", "max_bad_fraction": 1.0})


@pytest.mark.parametrize("name,message", [
    ("utf16.csv", r"utf16\.csv.*header b'\\xff\\xfeu.*is not UTF-8.*expected a UTF-8 CSV header"),
    ("bad_header.csv", r"bad_header\.csv.*header \['user', 'item', 'time'\] lacks required "
                       r"column\(s\) \['user_id', 'item_id', 'timestamp'\]"),
    ("not_parquet.parquet", r"not_parquet\.parquet.*not a readable Parquet file"),
    ("clicks.xlsx", r"clicks\.xlsx.*cannot tell the format.*expected \.csv"),
    ("blank_header.csv", r"blank_header\.csv.*first line is blank; expected a CSV header"),
])
def test_unusable_files_fail_naming_file_value_and_expectation(tmp_path, name, message):
    with pytest.raises(ValueError, match=message):
        _run(tmp_path, ERRORS / name)


def test_only_header_only_files_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"header_only\.csv.*no rows in any file"):
        _run(tmp_path, str(CORPUS / "header_only.csv"))


def test_a_zero_byte_file_stops_the_run(tmp_path):
    with pytest.raises(ValueError, match=r"empty\.csv': the file is empty \(0 bytes"):
        _run(tmp_path, str(CORPUS / "[eh][me]*.csv"))  # empty.csv + header_only.csv
