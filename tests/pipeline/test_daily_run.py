"""A daily run: warm-started from the last blessed model, trained on the clicks
after its window (`--since base`), it serves items that first appeared after
the previous run (tests/pipeline/conftest.py `daily_run`)."""

from __future__ import annotations

import json
import os

import grpc
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.pipeline.test_end_to_end import _store, _towers_dir
from tests.serving import support


def _clicks(path):
    with open(path) as f:
        rows = [line.strip().split(",") for line in f][1:]
    return [(u, i, int(t)) for u, i, t in (r for r in rows if len(r) == 3 and r[1]
                                           and r[2].isdigit())]


def _new_items(log) -> set[str]:
    """Items whose first click is after the first run's cut-off."""
    first_seen: dict[str, int] = {}
    for _, item, timestamp in _clicks(log["all"]):
        first_seen[item] = min(timestamp, first_seen.get(item, timestamp))
    return {item for item, t in first_seen.items() if t >= log["cutoff"]}


def test_the_daily_run_warm_starts_and_trains_on_the_clicks_since_the_last_model(
        daily_run, first_run):
    store = _store(daily_run["output"])
    for node in ("RetrievalTrainer", "FinalTrainer"):
        with open(os.path.join(_towers_dir(store, node), "training_report.json")) as f:
            report = json.load(f)
        # The base is the first run's blessed (evaluated) model: its newest
        # training click bounds the clicks trained on.
        with open(os.path.join(_towers_dir(_store(first_run["output"]), "RetrievalTrainer"),
                               "vocab", "stats.json")) as f:
            newest = json.load(f)["max_timestamp"]
        assert report["since_timestamp"] == newest + 1, node
        assert report["warm_start"]["ids_copied"]["candidate_tower.item_embedding"] > 0, node


def test_the_daily_run_serves_items_that_first_appeared_after_the_previous_run(
        daily_run, first_run, log, tmp_path):
    new = _new_items(log)
    assert len(new) >= 5
    # The first run never saw them; the daily run's pushed model has them.
    first = json.load(open(os.path.join(_towers_dir(_store(first_run["output"]), "FinalTrainer"),
                                        "vocab", "stats.json")))
    assert first["max_timestamp"] < log["cutoff"]
    versions = sorted(v for v in os.listdir(daily_run["output"] / "serving" / "retrieval")
                      if v.isdigit())
    assert len(versions) == 2, versions  # the first run's and the daily run's
    by_user: dict[str, list[str]] = {}
    for user, item, _ in sorted(_clicks(log["all"]), key=lambda c: c[2]):
        by_user.setdefault(user, []).append(item)
    users = sorted(by_user)[:40]
    server = support.ServerProcess(daily_run["output"] / "serving" / "retrieval",
                                   tmp_path / "server.log")
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            histories = [by_user[u][-10:] for u in users]
            width = max(len(h) for h in histories)
            response = stub.Predict(support.predict_request(
                users, [h + [""] * (width - len(h)) for h in histories]), timeout=60)
    finally:
        assert server.terminate() == 0, server.stderr()
    served = {i.decode() for row in tf.make_ndarray(response.outputs["item_ids"]) for i in row}
    assert served & new, (sorted(new), sorted(served))
