"""End to end: retrieval-pipeline on seeded synthetic clicks, then serve and query.

One pipeline run (conftest `first_run`) backs every assertion: MLMD
executions and artifacts, the blessing, the pushed version directories, a
gRPC Predict through the real tensorflow-serving-api stub, and loading the
pushed exports in fresh processes that import only TensorFlow (+ ScaNN ops
for `scann`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import grpc
import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from pipeline import reports
from serving import client
from tests.serving import support

COMPONENTS = ["ClickExampleGen", "StatisticsGen", "SchemaGen", "ImportSchemaGen",
              "ExampleValidator", "ValidationGate", "VocabStatsGen", "RetrievalTrainer",
              "TopKEvaluator", "IndexBuilder", "VocabStatsGenAllClicks", "FinalTrainer",
              "FinalIndexBuilder", "Pusher", "BruteForcePusher", "ChannelTrainer",
              "FinalChannelTrainer", "RankerTrainer", "FinalRankerTrainer"]


@pytest.fixture(scope="module")
def run(first_run):
    return first_run


def _store(output):
    return reports._store(str(output / "tfx" / "metadata.sqlite"))


def _pushed_version(output, name):
    base = output / "serving" / name
    versions = [v for v in os.listdir(base) if v.isdigit()]
    assert len(versions) == 1, versions
    return base / versions[0]


def test_every_component_ran_once_with_artifacts(run):
    store = _store(run["output"])
    nodes = {c.name.rsplit(".", 1)[-1]: c for c in store.get_contexts_by_type("node")}
    assert set(nodes) == set(COMPONENTS) | {"LatestBlessedModelResolver"}, sorted(nodes)
    for name, context in nodes.items():
        executions = store.get_executions_by_context(context.id)
        assert len(executions) == 1, (name, executions)
        assert executions[0].last_known_state == metadata_store_pb2.Execution.COMPLETE, name
    for type_name in ("Examples", "ExampleStatistics", "Schema", "ExampleAnomalies",
                      "retrieval.DataValidation", "retrieval.VocabStats", "Model", "ModelRun",
                      "ModelEvaluation", "ModelBlessing", "PushedModel",
                      "retrieval.QuarantinedClicks", "retrieval.RecallChannels",
                      "retrieval.Ranker"):
        artifacts = store.get_artifacts_by_type(type_name)
        assert artifacts, type_name
        for artifact in artifacts:
            assert os.path.exists(artifact.uri), (type_name, artifact.uri)


def _towers_dir(store, node: str) -> str:
    """The towers of the Model the node's latest execution wrote (a daily
    run's store also holds the earlier run's)."""
    towers = os.path.join(reports.node_output(store, node, "Model").uri, "Format-Serving")
    assert os.path.exists(os.path.join(towers, "towers.json")), towers
    return towers


def test_pushed_model_is_the_final_fit_on_every_click(run):
    store = _store(run["output"])
    evaluated, final = _towers_dir(store, "RetrievalTrainer"), _towers_dir(store, "FinalTrainer")

    def stats(towers):
        with open(os.path.join(towers, "vocab", "stats.json")) as f:
            return json.load(f)

    # The final fit counts the train and eval splits: every accepted click.
    with open(run["output"] / "reports" / "ingestion.json") as f:
        accepted = json.load(f)["totals"]["accepted"]
    assert stats(evaluated)["num_clicks"] < stats(final)["num_clicks"] == accepted
    assert stats(final)["config"]["count_splits"] == ["train", "eval"]
    with open(os.path.join(evaluated, "towers.json")) as f:
        chosen = json.load(f)
    with open(os.path.join(final, "towers.json")) as f:
        refit = json.load(f)
    # The evaluated model's chosen prior weight and epochs are repeated.
    assert refit["prior_weight"] == chosen["prior_weight"]
    assert refit["trained_epochs"] == chosen["trained_epochs"] == 4
    with open(os.path.join(final, "training_report.json")) as f:
        assert json.load(f)["trending_prior"]["reason"].startswith("fixed")
    # What was pushed is the final fit's export: its candidates are every item.
    with open(_pushed_version(run["output"], "retrieval") / "assets.extra" /
              "retrieval_export.json") as f:
        assert json.load(f)["num_candidates"] == stats(final)["num_items"]


def test_ingestion_report_reconciles(run):
    with open(run["output"] / "reports" / "ingestion.json") as f:
        report = json.load(f)
    totals = report["totals"]
    with open(run["clicks"]) as f:
        data_rows = sum(1 for _ in f) - 1
    assert totals["rows_read"] == data_rows
    assert totals["rows_read"] == totals["accepted"] + sum(totals["quarantined"].values())
    assert totals["quarantined"]["empty_item_id"] == 1
    assert totals["quarantined"]["bad_timestamp"] == 1
    assert "ingestion.json" in run["stdout"]


def test_model_is_blessed_and_beats_popularity(run):
    with open(run["output"] / "reports" / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["blessed"] is True, metrics["reasons"]
    model, popularity = metrics["metrics"]["model"], metrics["metrics"]["popularity"]
    assert model["recall@20"] >= popularity["recall@20"]
    # First run: nothing blessed before, so no last-blessed baseline; the ANN
    # check ran on the ScaNN export (120 candidates: an exact scan).
    assert "last_blessed" not in metrics["metrics"]
    assert metrics["ann"]["recall@20"] == 1.0
    # The model is the merged recall channels (what is pushed); each channel is
    # also ranked alone, and the merge without each one.
    assert metrics["model_is"].startswith("the merged recall channels")
    channels = metrics["channels"]
    # This log has no item catalog: the content channel is left out, saying why.
    assert channels["channels"] == ["two_tower", "trending", "item_cf", "wals", "item2vec"]
    assert "no item catalog" in channels["fit"]["content"]["skipped"]
    assert channels["fit"]["item2vec"]["pairs"] > 0
    assert channels["related_items"]["source"]["source"] == "item2vec"
    for protocol in ("fresh", "frozen"):
        rows = channels["protocols"][protocol]["metrics"]
        assert set(rows) == set(channels["channels"]) | {
            f"merged_without_{name}" for name in channels["channels"]}
    # The merge was chosen on these clicks: it is not below its best channel.
    fresh = channels["protocols"]["fresh"]["metrics"]
    assert model["recall@20"] >= max(fresh[name]["recall@20"] for name in channels["channels"])
    assert set(channels["merge"]["merged"]["setting"]["weights"]) == {"none", "short", "long"}
    report = run["output"] / "reports" / "evaluation.html"
    assert report.exists() and f"report: {report}" in run["stdout"]
    assert "merged_without_wals" in report.read_text() and "channels alone" in run["stdout"]
    store = _store(run["output"])
    [blessing] = store.get_artifacts_by_type("ModelBlessing")
    assert blessing.custom_properties["blessed"].int_value == 1
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))


def test_ranker_trained_and_evaluated_beside_the_channels(run):
    with open(run["output"] / "reports" / "metrics.json") as f:
        metrics = json.load(f)
    ranking = metrics["ranking"]
    # Every eval click on a catalogue item is one positive against 8 negatives.
    assert ranking["pairs"] == 9 * ranking["positives"] > 0
    assert ranking["auc"] > 0.6, ranking
    assert ranking["training"]["negatives_from"].startswith("merged recall channels two_tower")
    # The re-ranked list is ranked on the same clicks as the model's.
    assert metrics["metrics"]["reranked"]["recall@20"] > 0
    assert set(metrics["breakdowns"]["reranked"]) == set(metrics["breakdowns"]["model"])
    assert "Ranker" in (run["output"] / "reports" / "evaluation.html").read_text()
    evaluated, final = (reports.node_output(_store(run["output"]), node, "retrieval.Ranker")
                        for node in ("RankerTrainer", "FinalRankerTrainer"))
    # The final ranker is trained on every click: more rows than the evaluated one.
    assert 0 < evaluated.custom_properties["train_rows"].int_value < \
        final.custom_properties["train_rows"].int_value
    assert os.path.exists(os.path.join(final.uri, "ranker.json"))


def test_both_exports_pushed_as_versions(run):
    for name in ("retrieval", "retrieval_brute_force"):
        version_dir = _pushed_version(run["output"], name)
        assert (version_dir / "saved_model.pb").exists()
        assert str(version_dir) in run["stdout"]
    with open(_pushed_version(run["output"], "retrieval") / "assets.extra" /
              "retrieval_export.json") as f:
        metadata = json.load(f)
    assert metadata["export"] == "scann"
    assert metadata["ann_recall@20"] == 1.0  # 120 candidates: exact scan
    config_path = run["output"] / "serving" / "models.config"
    assert f"TF Serving model config: {config_path}" in run["stdout"]
    assert 'name: "retrieval_brute_force"' in config_path.read_text()


def _history_of_some_user(clicks_path):
    rows = [line.strip().split(",") for line in open(clicks_path)][1:]
    by_user: dict[str, list[str]] = {}
    for row in rows:
        if len(row) == 3 and row[1] and row[2].isdigit():
            by_user.setdefault(row[0], []).append(row[1])
    user, items = max(by_user.items(), key=lambda kv: len(kv[1]))
    return user, items[-8:]


def test_grpc_predict_on_pushed_model(run, tmp_path):
    user, history = _history_of_some_user(run["clicks"])
    server = support.ServerProcess(run["output"] / "serving" / "retrieval",
                                   tmp_path / "server.log")
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(support.predict_request([user], [history]), timeout=30)
        # The same server answers the related-items signature (retrieval-query's
        # client) and the re-ranked list of the final ranker.
        with client.RetrievalClient(server.target) as retrieval:
            related = retrieval.related([history[-1]], k=10)
        with client.RetrievalClient(server.target, signature_name="reranked") as retrieval:
            reranked = retrieval.recommend([user], [history])
    finally:
        assert server.terminate() == 0, server.stderr()
    ids = tf.make_ndarray(response.outputs["item_ids"])
    scores = tf.make_ndarray(response.outputs["scores"])
    assert ids.shape == (1, 20) and scores.shape == (1, 20)
    assert list(scores[0]) == sorted(scores[0], reverse=True)
    returned = {i.decode() for i in ids[0]}
    assert not returned & set(history)
    assert len(returned) == 20
    channels = tf.make_ndarray(response.outputs["channels"])
    assert channels.shape == (1, 20)
    assert {c.decode() for c in channels[0]} <= {"two_tower", "trending", "item_cf", "wals",
                                                 "item2vec"}
    assert len(related[0]) == 10 and history[-1] not in {item for item, _ in related[0]}
    # The re-ranked answer: the merged top rerank_depth (100 of 120 items) in
    # the ranker's order, cut to K, history excluded, ranker logits descending.
    reranked_ids = [item for item, _ in reranked[0]]
    assert len(reranked_ids) == 20 and not set(reranked_ids) & set(history)
    reranked_scores = [score for _, score in reranked[0]]
    assert reranked_scores == sorted(reranked_scores, reverse=True)
    assert reranked_ids != [i.decode() for i in ids[0]]


FRESH_PROCESS = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    if sys.argv[2] == "scann":
        from scann.scann_ops.py import scann_ops  # noqa: F401  registers Scann> ops
    model = tf.saved_model.load(sys.argv[1])
    out = model.signatures["serving_default"](
        user_id=tf.constant(["u1", "never-seen-user"]),
        history=tf.constant([["i1", "i2", ""], ["", "", ""]]))
    project = sorted(m for m in ("models", "components", "pipeline", "serving", "clicklog")
                     if m in sys.modules)
    print(json.dumps({"ids": out["item_ids"].numpy().astype(str).tolist(),
                      "scann_loaded": "scann" in sys.modules, "project": project}))
""")


@pytest.mark.parametrize("name,kind", [("retrieval", "scann"),
                                       ("retrieval_brute_force", "brute_force")])
def test_pushed_export_loads_in_fresh_process(run, name, kind):
    version_dir = _pushed_version(run["output"], name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(version_dir), kind],
                            cwd="/", env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["project"] == []
    assert answer["scann_loaded"] is (kind == "scann")
    ids = np.array(answer["ids"])
    assert ids.shape == (2, 20)
    assert not {"i1", "i2"} & set(ids[0])


def test_scann_export_fails_without_scann_ops(run):
    """The scann export really needs ScaNN ops (what stock TF Serving reports)."""
    version_dir = _pushed_version(run["output"], "retrieval")
    code = ("import os; os.environ['TF_USE_LEGACY_KERAS']='1'\n"
            "import tensorflow as tf\n"
            f"tf.saved_model.load({str(version_dir)!r})\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd="/", env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "Scann" in result.stderr
