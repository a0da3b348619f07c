"""The blessing gates the push: two pipeline runs into the same MLMD
(tests/pipeline/conftest.py).

Run 1 trains a real model: blessed (it beats all-time popularity), both
exports pushed, nothing blessed before so no last-blessed baseline. Run 2
trains a deliberately bad model (learning rate 1e-9, no popularity input, no
trending prior: the towers stay at their random initialisation) into a copy
of run 1's output: the LatestBlessedModel resolver hands the evaluator run
1's towers, whose metrics appear as `last_blessed`; the model fails the lift
and regression checks, is NOT blessed, and the Pushers push nothing new.
"""

from __future__ import annotations

import json
import os

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2


def _versions(output, name: str) -> list[str]:
    base = output / "serving" / name
    return sorted(v for v in os.listdir(base) if v.isdigit()) if base.exists() else []


def _blessings(output) -> list:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(output / "tfx" / "metadata.sqlite")
    store = mlmd.MetadataStore(config)
    return sorted(store.get_artifacts_by_type("ModelBlessing"), key=lambda a: a.id)


def _summary(run) -> dict:
    with open(run["output"] / "reports" / "metrics.json") as f:
        metrics = json.load(f)
    return {"stdout": run["stdout"], "metrics": metrics,
            "versions": {n: _versions(run["output"], n)
                         for n in ("retrieval", "retrieval_brute_force")}}


@pytest.fixture(scope="module")
def runs(first_run, second_run):
    return {"good": _summary(first_run), "bad": _summary(second_run),
            "output": second_run["output"]}


def test_good_model_is_blessed_and_pushed(runs):
    metrics = runs["good"]["metrics"]
    assert metrics["blessed"] is True, metrics["reasons"]
    # The first run trains the ranker: its re-ranked list is a row beside the model's.
    assert set(metrics["metrics"]) == {"model", "popularity", "recent_popularity", "reranked"}
    assert metrics["baseline_model_uri"] is None
    assert any(r.startswith("skipped: no blessed model") for r in metrics["reasons"])
    assert metrics["ann"]["recall@20"] == 1.0  # 120 candidates: an exact scan
    assert runs["good"]["versions"]["retrieval"] and runs["good"]["versions"][
        "retrieval_brute_force"]
    assert "pushed: " in runs["good"]["stdout"]


def test_bad_model_compared_with_the_first_blessed_model_is_not_blessed(runs):
    good, bad = runs["good"]["metrics"], runs["bad"]["metrics"]
    assert bad["blessed"] is False, bad["reasons"]
    # The baseline is run 1's towers, scored on run 2's clicks: the same data
    # and vocabulary, so it reproduces run 1's two-tower channel (its model
    # is the merged recall channels; run 2 has the towers alone).
    assert bad["baseline_model_uri"] == good["model_uri"]
    assert bad["metrics"]["last_blessed"]["recall@20"] == pytest.approx(
        good["channels"]["protocols"]["fresh"]["metrics"]["two_tower"]["recall@20"], abs=1e-6)
    failed = {c["check"] for c in bad["checks"] if not c["passed"]}
    assert {"min_lift", "max_regression"} <= failed, bad["reasons"]
    assert bad["metrics"]["model"]["recall@20"] < bad["metrics"]["popularity"]["recall@20"]


def test_bad_model_is_not_pushed_and_the_blessing_says_so(runs):
    assert runs["bad"]["versions"] == runs["good"]["versions"]  # nothing new pushed
    assert "pushed: nothing (model not blessed)" in runs["bad"]["stdout"]
    first, second = _blessings(runs["output"])
    assert first.custom_properties["blessed"].int_value == 1
    assert os.path.exists(os.path.join(first.uri, "BLESSED"))
    assert second.custom_properties["blessed"].int_value == 0
    assert os.path.exists(os.path.join(second.uri, "NOT_BLESSED"))
    reasons = json.loads(second.custom_properties["reasons"].string_value)
    assert any(r.startswith("FAIL: recall@20") for r in reasons)
    assert second.custom_properties["baseline_model"].string_value == runs["good"][
        "metrics"]["model_uri"]


def test_html_report_of_the_rejected_run_explains_why(runs):
    page = (runs["output"] / "reports" / "evaluation.html").read_text()
    assert "NOT BLESSED: the model will not be pushed" in page
    assert "last_blessed" in page
    assert f"report: {runs['output'] / 'reports' / 'evaluation.html'}" in runs["bad"]["stdout"]


def test_a_log_with_one_item_is_not_blessed(tmp_path):
    """Every scorer ties (with the seen item excluded nothing is left to find):
    a tie with the best baseline is not a win, so nothing is pushed."""
    from tests.pipeline.conftest import IN_MEMORY, run_cli

    clicks = tmp_path / "one-item.csv"
    clicks.write_text("user_id,item_id,timestamp\n" + "".join(
        f"u{n % 40},i1,{1600000000 + n * 60}\n" for n in range(2000)))
    output = tmp_path / "out"
    result = run_cli(str(clicks), output, ["--set", "model.training.epochs=1",
                                           "--set", "pipeline.final_fit=false"] + IN_MEMORY)
    with open(output / "reports" / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["blessed"] is False
    failed = [c for c in metrics["checks"] if not c["passed"]]
    assert [c["check"] for c in failed] == ["min_lift"]
    assert failed[0]["reason"].startswith("FAIL: recall@20 0.0000 <= 1.02 x best baseline ")
    assert "pushed: nothing (model not blessed)" in result.stdout
    assert not (output / "serving" / "retrieval").exists()
