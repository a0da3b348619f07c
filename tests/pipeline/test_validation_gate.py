"""The validation gate stops a run on bad click data before training, one line
per anomaly, and `--allow-anomaly` lets a named one through.

Bad inputs: MovieTweetings rows with a rating above 10, a non-numeric movie
id and a timestamp in the future, checked against the curated
configs/schema/movietweetings.pbtxt; and a day whose item distribution
drifted from the statistics the last blessed model (conftest `first_run`)
was trained after.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import cli, reports
from tests.pipeline.conftest import COMMON, IN_MEMORY
from tests.serving import support

RATINGS = support.REPO_ROOT / "data" / "movietweetings-100k" / "ratings.dat"
FAST = ["--set", "model.training.epochs=1", "--set", "pipeline.final_fit=false"] + IN_MEMORY


def _executions(output) -> dict[str, list]:
    store = reports._store(str(output / "tfx" / "metadata.sqlite"))
    return {c.name.rsplit(".", 1)[-1]: store.get_executions_by_context(c.id)
            for c in store.get_contexts_by_type("node")}


def _states(executions) -> list:
    """States in the order the executions were made (a copied store holds the first run's)."""
    return [e.last_known_state for e in sorted(executions, key=lambda e: e.id)]


def _stopped_before_training(output) -> None:
    """The run's gate failed and nothing trained, evaluated or pushed after it."""
    executions = _executions(output)
    gate = max(executions["ValidationGate"], key=lambda e: e.id)
    assert gate.last_known_state == metadata_store_pb2.Execution.FAILED
    for node in ("RetrievalTrainer", "TopKEvaluator", "Pusher"):
        assert not [e for e in executions.get(node, []) if e.id > gate.id], node


def _run(argv, capsys) -> tuple[int, list[str]]:
    code = cli.main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def test_bad_movietweetings_rows_stop_the_run_naming_each_anomaly(tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(support.REPO_ROOT)  # --config is given relative to the repository
    rows = RATINGS.read_text().splitlines()[:3000]
    future = int(time.time()) + 10 * 86400
    rows += ["1::1074638::11::1365029108",  # a rating above 10
             "2::tt0111161::8::1365029109",  # a movie id that is not an IMDb number
             f"3::0104257::8::{future}"]  # a click ten days after the run
    data = tmp_path / "ratings.dat"
    data.write_text("\n".join(rows) + "\n")
    output = tmp_path / "out"
    code, error = _run(["--data", str(data), "--output", str(output),
                        "--config", "configs/movietweetings.yaml",
                        "--set", "vocab.item_catalog=null"] + IN_MEMORY, capsys)
    assert code == 2, error[-20:]
    start = next(n for n, line in enumerate(error) if "failed validation" in line)
    schema = support.REPO_ROOT / "configs" / "schema" / "movietweetings.pbtxt"
    assert error[start] == (
        f"retrieval-pipeline: click examples failed validation against the schema '{schema}' "
        "(3 blocking anomalies; training and pushing stopped; --allow-anomaly FEATURE:KIND "
        "overrides one):")
    lines = error[start + 1:start + 4]
    assert lines[0].startswith("  item_id: INT_TYPE_NOT_INT_STRING in split "), lines
    assert lines[0].endswith("relax with validation.allow_anomalies="
                             "[item_id:INT_TYPE_NOT_INT_STRING]"), lines
    assert lines[1].startswith(f"  timestamp: CLICK_IN_FUTURE in split eval: newest click at "
                               f"{future} ("), lines
    assert lines[1].endswith("expected clicks up to 3600 s after it; relax with "
                             "validation.max_future_seconds (now 3600) or "
                             "validation.allow_anomalies=[timestamp:CLICK_IN_FUTURE]"), lines
    assert lines[2].startswith("  weight: FLOAT_TYPE_BIG_FLOAT in split train: "), lines
    assert "11" in lines[2] and lines[2].endswith(
        "relax with validation.allow_anomalies=[weight:FLOAT_TYPE_BIG_FLOAT]"), lines
    assert "Traceback" not in "\n".join(error)
    _stopped_before_training(output)


def _drifted_log(clicks: str, target) -> str:
    """The same clicks, every item id folded onto four items."""
    with open(clicks) as f:
        header, *rows = f.read().splitlines()
    out = [header]
    for row in rows:
        user, item, timestamp = row.split(",")
        if item.startswith("i") and item[1:].isdigit():
            item = f"i{int(item[1:]) % 4}"
        out.append(",".join([user, item, timestamp]))
    target.write_text("\n".join(out) + "\n")
    return str(target)


@pytest.fixture(scope="module")
def drifted(first_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    output = root / "out"
    shutil.copytree(first_run["output"], output)
    return {"clicks": _drifted_log(first_run["clicks"], root / "drifted.csv"),
            "output": output}


DRIFT = ["--set", "validation.drift.item_id=0.1"]


def test_an_item_distribution_that_drifted_from_the_last_blessed_run_stops_the_run(
        drifted, capsys):
    code, error = _run(["--data", drifted["clicks"], "--output", str(drifted["output"]),
                        *COMMON, *FAST, *DRIFT], capsys)
    assert code == 2, error[-20:]
    start = next(n for n, line in enumerate(error) if "failed validation" in line)
    assert "(2 blocking anomalies;" in error[start], error[start]
    for split, line in zip(("eval", "train"), error[start + 1:start + 3], strict=True):
        assert line.startswith(f"  item_id: COMPARATOR_L_INFTY_HIGH in split {split}: The "
                               "Linfty distance between current and previous is "), line
        assert line.endswith("relax with validation.drift.item_id (now 0.1) or "
                             "validation.allow_anomalies=[item_id:COMPARATOR_L_INFTY_HIGH]"), line
    _stopped_before_training(drifted["output"])


def test_allow_anomaly_lets_the_drifted_run_train_and_records_it(drifted, capsys):
    code, error = _run(["--data", drifted["clicks"], "--output", str(drifted["output"]),
                        *COMMON, *FAST, *DRIFT,
                        "--allow-anomaly", "item_id:COMPARATOR_L_INFTY_HIGH"], capsys)
    assert code == 0, error[-20:]
    assert ("retrieval-pipeline: allowing anomalies ['item_id:COMPARATOR_L_INFTY_HIGH'] "
            "(--allow-anomaly)") in error
    executions = _executions(drifted["output"])
    assert _states(executions["RetrievalTrainer"])[-1] == metadata_store_pb2.Execution.COMPLETE
    store = reports._store(str(drifted["output"] / "tfx" / "metadata.sqlite"))
    verdict = reports.node_output(store, "ValidationGate", "retrieval.DataValidation")
    assert json.loads(verdict.custom_properties["allowed_anomalies"].string_value) == [
        "item_id:COMPARATOR_L_INFTY_HIGH", "item_id:COMPARATOR_L_INFTY_HIGH"]
    with open(os.path.join(verdict.uri, "validation.json")) as f:
        report = json.load(f)
    assert {a["split"] for a in report["allowed"]} == {"train", "eval"}
    assert report["blocking"] == []
    # The drift reference: the statistics the first run's evaluated model was trained after.
    first_model = reports.node_output(store, "RetrievalTrainer", "Model")
    assert first_model.custom_properties["data_validation"].string_value == verdict.uri
    assert report["previous_statistics"]
