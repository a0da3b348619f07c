"""`retrieval-pipeline` on an unusable input: one line naming it, exit code 2."""

import gzip
import json

from pipeline import cli


def test_a_truncated_click_log_stops_the_run_with_one_line(tmp_path, capsys):
    rows = "user_id,item_id,timestamp\n" + "".join(
        f"u{n % 50},i{n % 20},{1600000000 + n}\n" for n in range(5000))
    data = gzip.compress(rows.encode())
    path = tmp_path / "clicks.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    assert cli.main(["--data", str(path), "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith(f"retrieval-pipeline: click log '{path}': the gzip stream ends "
                                f"at byte {len(data) // 2:,} before its end marker"), error[-3:]
    assert "Traceback" not in "\n".join(error)


ROWS = "user_id,item_id,timestamp\n" + "".join(
    f"u{n % 50},i{n % 20},{1600000000 + n * 60}\n" for n in range(2000))


def test_paths_are_checked_before_any_component_one_line_each(tmp_path, capsys):
    """A missing click log and a wrong catalog path in a config file: both
    reported at once, before TFX starts (no MLMD store is created)."""
    config = tmp_path / "conf" / "run.yaml"
    config.parent.mkdir()
    config.write_text("vocab:\n  item_catalog:\n    path: movies.dat\n    format: dat\n"
                      "    columns: [item_id, title]\n")
    out = tmp_path / "out"
    code = cli.main(["--data", str(tmp_path / "missing.csv"), "--output", str(out),
                     "--config", str(config)])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert error == [
        f"retrieval-pipeline: click log input '{tmp_path / 'missing.csv'}': no file matches; "
        "expected a file, a glob or a directory of click logs",
        # read from the config file's directory, not the working directory
        f"retrieval-pipeline: vocab.item_catalog.path='{tmp_path / 'conf' / 'movies.dat'}': no "
        "file matches; expected an existing item catalog file, glob or directory"]
    assert not (out / "tfx").exists()
    with open(out / "reports" / "ingestion.json") as f:
        assert json.load(f)["status"] == "failed"


def test_an_unwritable_output_is_reported_before_the_run(tmp_path, capsys):
    (tmp_path / "clicks.csv").write_text(ROWS)
    (tmp_path / "file").write_text("")
    code = cli.main(["--data", str(tmp_path / "clicks.csv"), "--output",
                     str(tmp_path / "file" / "out")])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"retrieval-pipeline: --output '{tmp_path / 'file' / 'out'}': '{tmp_path / 'file'}' is "
        "a file; expected a directory (or a path that can be created)")


def test_a_failed_ingestion_keeps_its_report_and_quarantine(tmp_path, capsys):
    bad = "".join(f"u{n},,{1600000000 + n}\n" for n in range(200))  # 200 empty item ids
    (tmp_path / "clicks.csv").write_text(ROWS + bad)
    out = tmp_path / "out"
    code = cli.main(["--data", str(tmp_path / "clicks.csv"), "--output", str(out),
                     "--set", "pipeline.beam_args=[--direct_running_mode=in_memory]"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert error[-2:] == [
        "retrieval-pipeline: click logs: 200 of 2,200 rows quarantined (9.1%) > "
        "ingestion.max_quarantine_fraction=0.05; reasons {'empty_item_id': 200} (the rows and "
        "their reasons are in the quarantine)",
        f"retrieval-pipeline: ingestion report {out / 'reports' / 'ingestion.json'}"]
    assert "Traceback" not in "\n".join(error)
    with open(out / "reports" / "ingestion.json") as f:
        report = json.load(f)
    assert report["status"] == "failed" and "max_quarantine_fraction" in report["error"]
    assert report["totals"]["quarantined"] == {"empty_item_id": 200}
    rows = [json.loads(line) for path in (out / "reports" / "quarantine").glob("*.jsonl")
            for line in path.read_text().splitlines()]
    assert len(rows) == 200 and {r["reason"] for r in rows} == {"empty_item_id"}


def test_an_unexpected_error_is_two_lines_and_the_traceback_is_opt_in(capsys):
    def fail():
        raise RuntimeError("worker lost\nOSError: disk full")

    try:
        fail()
    except RuntimeError as error:
        assert cli._error(error, verbose=False) == 1
        assert capsys.readouterr().err.splitlines() == [
            "retrieval-pipeline: RuntimeError: OSError: disk full",
            "retrieval-pipeline: the run failed; --verbose prints the traceback"]
        assert cli._error(error, verbose=True) == 1
        err = capsys.readouterr().err
        assert err.startswith("Traceback") and "in fail" in err


def test_as_a_user_runs_it_an_error_is_the_only_line_on_stderr(tmp_path):
    """No import noise from TensorFlow or Google libraries before it."""
    import subprocess
    import sys

    from tests.serving import support

    env = support.subprocess_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL")  # as in a user's shell
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--data", str(tmp_path / "none.csv"),
         "--output", str(tmp_path / "out"), "--set", "vocab.item_catalog.path=none.dat"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"retrieval-pipeline: click log input '{tmp_path / 'none.csv'}': no file matches; "
        "expected a file, a glob or a directory of click logs",
        f"retrieval-pipeline: vocab.item_catalog.path='{tmp_path / 'none.dat'}': no file "
        "matches; expected an existing item catalog file, glob or directory"]
