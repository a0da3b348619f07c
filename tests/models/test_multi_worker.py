"""MultiWorkerMirroredStrategy: two worker processes on localhost train
through `run_fn` with TF_CONFIG, as a TFJob's workers would.

The reference is one process with the same global batch (16) over two
replicas (two logical CPUs, MirroredStrategy). With DATA sharding every
global batch is split into the same two per-replica halves in both runs, the
losses are per-replica sums and the gradients are summed over the two
replicas; a sum of two float32 terms does not depend on the all-reduce's
order, so the two runs compute the same steps. Tolerance: 1e-5 on every
exported embedding and on the held-out metrics (recall@5, full-catalogue
softmax loss), room for last-bit differences between the collective gRPC
all-reduce and the in-process one. A run in which the workers ignored
TF_CONFIG trains each worker alone on whole 16-click batches (one replica
whose in-batch negatives are 16 clicks, not 8) and misses it by far more.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.conftest import SINGLE_MODEL, merged
from tests.models import distributed

CONFIG = merged(SINGLE_MODEL, {
    "towers": {"embedding_dim": 8},
    # Early stopping's evaluation and decision run on every worker.
    "training": {"batch_size": 16, "epochs": 3, "learning_rate": 0.1,
                 "early_stopping_patience": 1, "early_stopping_k": 5},
})


def test_two_workers_export_the_model_of_one_worker_at_the_same_global_batch(tmp_path):
    data = distributed.write_grouped_data(tmp_path)
    spec = distributed.cluster(worker=2)
    multi = merged(CONFIG, {"training": {"distribution_strategy": "multi_worker_mirrored"}})
    one = merged(CONFIG, {"training": {"distribution_strategy": "mirrored"}})
    # Both workers get the same output path, as a TFX Trainer's replicas do.
    logs = [str(tmp_path / f"worker{i}.log") for i in range(2)] + [str(tmp_path / "one.log")]
    tasks = [distributed.start("train", spec, "worker", i,
                               {"data": data, "config": multi,
                                "output": str(tmp_path / "multi"),
                                "log_dir": str(tmp_path / "tensorboard")}, logs[i])
             for i in range(2)]
    tasks.append(distributed.start("train", {"worker": ["localhost:0"]}, "worker", 0,
                                   {"data": data, "config": one, "output": str(tmp_path / "one"),
                                    "logical_cpus": 2}, logs[2]))
    try:
        codes = [task.wait(timeout=300) for task in tasks]
    finally:
        for task in tasks:
            task.kill()
    for code, log in zip(codes, logs, strict=True):
        assert code == 0, open(log).read()[-3000:]
    assert "trained chief=True" in open(logs[0]).read()
    assert "trained chief=False" in open(logs[1]).read()

    assert distributed.signatures(str(tmp_path / "multi")) == distributed.signatures(
        str(tmp_path / "one"))
    multi_metrics = distributed.heldout_metrics(str(tmp_path / "multi"), data["eval"])
    one_metrics = distributed.heldout_metrics(str(tmp_path / "one"), data["eval"])
    np.testing.assert_allclose(multi_metrics["candidates"], one_metrics["candidates"],
                               atol=1e-5, err_msg="the chief's candidate embeddings differ "
                               "from the one-worker run's")
    for name in ("recall@5", "loss"):
        assert multi_metrics[name] == pytest.approx(one_metrics[name], abs=1e-5), name
    reports = [json.load(open(os.path.join(tmp_path / name, "training_report.json")))
               for name in ("multi", "one")]
    assert reports[0]["val_hit_rate@5_by_epoch"] == pytest.approx(
        reports[1]["val_hit_rate@5_by_epoch"], abs=1e-6)
    assert reports[0]["epochs_trained"] == reports[1]["epochs_trained"]
    # Learned something: the groups' unseen items rank high on held-out clicks.
    assert multi_metrics["recall@5"] > 0.8
