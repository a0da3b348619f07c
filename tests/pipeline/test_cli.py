"""`retrieval-pipeline` on an unusable input: one line naming it, exit code 2."""

import gzip

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
