"""ParameterServerStrategy: a chief (the coordinator, running `run_fn`), two
parameter servers and one worker as localhost processes, TF_CONFIG per task
as a TFJob sets it.

Checked: the id embedding tables are split across both parameter servers
(the variable partitioner, `model.training.min_shard_bytes` lowered so the
tiny tables split); Model.fit ran through the cluster coordinator with early
stopping; the export has exactly the signatures of a default one-process run;
its held-out recall@5 beats the popularity baseline by over 0.4 (the
grouped data's clicks are spread evenly, so popularity is near chance) and is
within 0.15 of the one-process run's. Not equal: under parameter servers each
step reads and updates the variables asynchronously and the worker's input
pipeline is its own, so the runs differ in small ways that compound over
epochs; 0.15 is 12 of the 80 held-out clicks.
"""

from __future__ import annotations

import json
import os

import pytest

from models import topk_metrics
from models.data import make_dataset
from models.trainer import run_fn
from models.vocab import read_vocab
from tests.conftest import SINGLE_MODEL, merged
from tests.models import distributed

CONFIG = merged(SINGLE_MODEL, {
    "towers": {"embedding_dim": 8},
    "training": {"batch_size": 16, "epochs": 3, "learning_rate": 0.1,
                 "early_stopping_patience": 1, "early_stopping_k": 5},
})


def popularity_recall(data: dict, k: int = 5) -> float:
    """recall@k of ranking by training clicks, seen items excluded as the towers' are."""
    vocab = read_vocab(data["vocab"])
    scorer = topk_metrics.popularity_scorer(vocab.item_counts)
    ranked = topk_metrics.rank_clicks(make_dataset(data["eval"], 1000, 50, shuffle=False),
                                      lambda batch: {"popularity": scorer(batch)},
                                      vocab.item_ids, (k,), 50)
    return ranked["popularity"].metrics()[f"recall@{k}"]


def test_parameter_servers_shard_the_embeddings_and_export_the_same_signatures(tmp_path):
    data = distributed.write_grouped_data(tmp_path)
    spec = distributed.cluster(chief=1, ps=2, worker=1)
    sharded = merged(CONFIG, {"training": {"distribution_strategy": "parameter_server",
                                           "min_shard_bytes": 64}})
    servers = [distributed.start("ps", spec, "ps", i) for i in range(2)]
    servers.append(distributed.start("worker", spec, "worker", 0))
    log = str(tmp_path / "chief.log")
    chief = distributed.start("train", spec, "chief", 0,
                              {"data": data, "config": sharded, "output": str(tmp_path / "ps"),
                               "log_dir": str(tmp_path / "tensorboard")}, log)
    # Meanwhile, the one-process run in this process.
    run_fn(distributed.fn_args(data, CONFIG, str(tmp_path / "one")))
    try:
        code = chief.wait(timeout=300)
    finally:
        for task in [chief, *servers]:
            task.kill()
    assert code == 0, open(log).read()[-3000:]

    report = json.load(open(os.path.join(tmp_path / "ps", "training_report.json")))
    shards = report["variable_shards"]
    for table in ("item_embedding", "history_embedding"):
        devices = next(devices for name, devices in shards.items() if table in name)
        assert sorted(device.split("/device")[0] for device in devices) == [
            "/job:ps/replica:0/task:0", "/job:ps/replica:0/task:1"], shards
    assert distributed.signatures(str(tmp_path / "ps")) == distributed.signatures(
        str(tmp_path / "one"))
    ps_recall = distributed.heldout_metrics(str(tmp_path / "ps"), data["eval"])["recall@5"]
    one_recall = distributed.heldout_metrics(str(tmp_path / "one"), data["eval"])["recall@5"]
    baseline = popularity_recall(data)
    assert ps_recall > baseline + 0.4, (ps_recall, baseline)
    assert ps_recall == pytest.approx(one_recall, abs=0.15), (ps_recall, one_recall)
