"""With `pipeline.enable_cache`, a rerun on identical inputs reuses every
artifact and pushes no second version; a changed input file is read again."""

from __future__ import annotations

import json
import os

import pytest

from clicklog import synthetic
from pipeline import reports
from tests.pipeline.conftest import IN_MEMORY, run_cli

FAST = ["--set", "pipeline.enable_cache=true", "--set", "pipeline.final_fit=false",
        "--set", "model.training.epochs=3", "--set", "evaluation.protocols=[fresh]",
        "--set", "evaluation.min_lift=0"] + IN_MEMORY


def _executions(output, node: str) -> list:
    store = reports._store(str(output / "tfx" / "metadata.sqlite"))
    contexts = [c for c in store.get_contexts_by_type("node") if c.name.endswith("." + node)]
    return sorted((e for c in contexts for e in store.get_executions_by_context(c.id)),
                  key=lambda e: e.id)


def _versions(output) -> list[str]:
    return sorted(os.listdir(output / "serving" / "retrieval"))


@pytest.fixture(scope="module")
def reruns(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    clicks = synthetic.write(synthetic.SyntheticConfig(num_users=120, num_items=60,
                                                       num_categories=4, clicks_per_user=12,
                                                       seed=5), str(root / "data"))
    output = root / "out"
    first = run_cli(clicks, output, FAST)
    versions_first = _versions(output)
    second = run_cli(clicks, output, FAST)
    return {"output": output, "clicks": clicks, "first": first.stdout, "second": second.stdout,
            "versions": (versions_first, _versions(output))}


def test_a_rerun_on_identical_inputs_reuses_the_model_and_pushes_nothing(reruns):
    output = reruns["output"]
    first_versions, second_versions = reruns["versions"]
    assert len(first_versions) == 1, reruns["first"]
    assert second_versions == first_versions  # no second version
    trainer = _executions(output, "RetrievalTrainer")
    assert len(trainer) == 2
    cached = trainer[-1].last_known_state
    assert cached == trainer[-1].CACHED, trainer[-1]
    for node in ("ClickExampleGen", "StatisticsGen", "VocabStatsGen", "IndexBuilder"):
        assert _executions(output, node)[-1].last_known_state == cached, node
    with open(output / "reports" / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["blessed"] is False
    assert metrics["reasons"][-1].startswith("FAIL: the model is the last blessed model "
                                             "(artifact ")
    assert "pushed: nothing" in reruns["second"]


def test_a_changed_input_file_changes_the_cache_key(tmp_path):
    """ClickExampleGen's cache key holds the files' fingerprint: the same
    path with one more click is not the same input."""
    from components.click_example_gen.inputs import input_fingerprint
    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline

    clicks = tmp_path / "clicks.csv"
    clicks.write_text("user_id,item_id,timestamp\nu1,i1,1600000000\n")
    before = input_fingerprint([str(clicks)])
    with open(clicks, "a") as f:
        f.write("u2,i1,1600000001\n")
    after = input_fingerprint([str(clicks)])
    assert before != after and str(clicks) in after
    pipeline = create_pipeline(str(tmp_path / "root"), str(clicks), str(tmp_path / "serving"),
                               load_config(None, ["pipeline.enable_cache=true"]),
                               input_fingerprint=after)
    assert pipeline.enable_cache
    example_gen = next(c for c in pipeline.components if c.id == "ClickExampleGen")
    assert example_gen.exec_properties["input_fingerprint"] == after
