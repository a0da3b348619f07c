"""Trainer options: early stopping on eval hit rate, warm start, tf.distribute."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from models import topk_metrics
from models import vocab as vocab_lib
from models.data import make_dataset
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import single_model_config, write_tiny_data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("options"))


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch(data, tmp_path):
    # No trending prior: the saved towers are re-scored below without one.
    config = single_model_config(
        towers={"embedding_dim": 8}, prior={"grid": []},
        training={"batch_size": 16, "epochs": 8, "learning_rate": 0.5,
                  "early_stopping_patience": 1, "early_stopping_k": 5})
    logs = train(data["train"], data["vocab"], config, str(tmp_path / "towers"),
                 eval_files=data["train"])
    by_epoch = logs["val_hit_rate@5_by_epoch"]
    assert len(by_epoch) == logs["epochs_trained"] <= 8
    best = int(np.argmax(by_epoch))
    assert logs["best_epoch"] == best + 1 and logs["val_hit_rate@5"] == max(by_epoch)
    if logs["epochs_trained"] < 8:  # stopped: the epochs after the best did not improve
        assert logs["epochs_trained"] - logs["best_epoch"] == 1
    # The saved towers are the best epoch's: re-scoring them gives its value.
    towers = Towers(str(tmp_path / "towers"))
    candidates = towers.candidate_embeddings()

    def score(batch):
        query = towers.query_embeddings(batch["user_id"], batch["history"])
        return {"saved": tf.matmul(query, candidates, transpose_b=True)}

    ranked = topk_metrics.rank_clicks(make_dataset(data["train"], 1000, 50, shuffle=False),
                                      score, towers.vocab.item_ids, (5,),
                                      config.export.exclude_history)
    assert ranked["saved"].metrics()["recall@5"] == pytest.approx(max(by_epoch), abs=1e-6)


def test_early_stopping_needs_eval_files(data, tmp_path):
    with pytest.raises(ValueError, match="early_stopping_patience > 0 needs eval examples"):
        train(data["train"], data["vocab"],
              single_model_config(training={"early_stopping_patience": 1, "epochs": 1}),
              str(tmp_path / "t"))


def test_warm_start_copies_embeddings_by_id_across_vocabularies(data, tmp_path):
    # No popularity features: they depend on the vocabulary's counts, which differ.
    first = single_model_config(towers={"embedding_dim": 8, "popularity": False},
                                training={"batch_size": 16, "epochs": 2})
    train(data["train"], data["vocab"], first, str(tmp_path / "first"))
    old = Towers(str(tmp_path / "first"))
    # A new vocabulary: the first 20 items in another order, plus two new ones.
    items = list(reversed(old.vocab.item_ids[:20])) + ["new1", "new2"]
    vocab_lib.write_vocab(str(tmp_path / "vocab2"), [(i, 3.0, 1.0) for i in items],
                          [("u0", 1.0)], old.vocab.stats)
    # A learning rate so small that training leaves the copied weights as they are.
    second = first.with_changes(training={"epochs": 1, "learning_rate": 1e-9,
                                          "warm_start": True})
    logs = train(data["train"], str(tmp_path / "vocab2"), second, str(tmp_path / "second"),
                 base_model_dir=str(tmp_path / "first"))
    report = logs["warm_start"]
    assert report["ids_copied"]["candidate_tower.item_embedding"] == 20
    assert report["weights_skipped"] == 0 and report["weights_copied"] > 0
    new = Towers(str(tmp_path / "second"))
    shared = tf.constant(items[:20])
    np.testing.assert_allclose(new.module.candidate_embedding(shared)["embedding"].numpy(),
                               old.module.candidate_embedding(shared)["embedding"].numpy(),
                               atol=1e-5)
    query_args = (tf.constant(["u0"]), tf.constant([items[:3]]))
    np.testing.assert_allclose(new.module.query_embedding(*query_args)["embedding"].numpy(),
                               old.module.query_embedding(*query_args)["embedding"].numpy(),
                               atol=1e-5)
    # Without warm start the same run starts from fresh weights.
    cold = train(data["train"], str(tmp_path / "vocab2"),
                 second.with_changes(training={"warm_start": False}), str(tmp_path / "cold"),
                 base_model_dir=str(tmp_path / "first"))
    assert "warm_start" not in cold


def test_mirrored_strategy_trains_on_two_replicas_with_and_without_the_teacher(data,
                                                                              tmp_path):
    # One subprocess (two logical CPUs) for both models: TF starts once, and
    # two models trained one after the other in one process share the
    # strategy, as ensemble members do.
    script = textwrap.dedent(f"""
        import math, os
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from models import teacher, trainer
        from models.retrieval import RetrievalModel
        from models.vocab import read_vocab
        from tests.conftest import single_model_config
        strategy = trainer.distribution_strategy("mirrored")
        assert strategy.num_replicas_in_sync == 2
        plain = single_model_config(
            towers={{"embedding_dim": 8}},
            training={{"batch_size": 16, "epochs": 1, "distribution_strategy": "mirrored"}})
        logs = trainer.train({data["train"]!r}, {data["vocab"]!r}, plain,
                             {str(tmp_path / "towers")!r})
        assert math.isfinite(logs["loss"]), logs
        guided = plain.with_changes(teacher={{"enabled": True, "discriminator": True}},
                                    training={{"epochs": 2}})
        with strategy.scope():
            model = RetrievalModel(read_vocab({data["vocab"]!r}), guided)
        # The guidance switch reaches every replica.
        teacher.GuidanceSchedule(model.guidance, 1).on_epoch_begin(1)
        seen = strategy.experimental_local_results(
            strategy.run(lambda: tf.identity(model.guidance.active)))
        assert [float(v) for v in seen] == [1.0, 1.0], seen
        logs = trainer.train({data["train"]!r}, {data["vocab"]!r}, guided,
                             {str(tmp_path / "guided")!r})
        assert all(math.isfinite(logs[k]) for k in ("loss", "teacher_bce", "teacher_key",
                                                     "discriminator")), logs
        print("replicas-ok")
    """)
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0 and "replicas-ok" in result.stdout, result.stderr[-3000:]
    assert Towers(str(tmp_path / "towers")).candidate_embeddings().shape[1] == 8


def test_trending_prior_adds_weighted_log_recent_count_to_every_score(data, tmp_path):
    config = single_model_config(towers={"embedding_dim": 8}, prior={"weight": 0.5},
                                 training={"batch_size": 16, "epochs": 1}, export={"top_k": 5})
    train(data["train"], data["vocab"], config, str(tmp_path / "towers"))
    towers = Towers(str(tmp_path / "towers"))
    candidates = towers.candidate_embeddings().numpy()
    query = towers.query_embeddings(["u1"], [["i1", "i2"]]).numpy()
    assert candidates.shape == (towers.vocab.num_items, 9) and query.shape == (1, 9)
    np.testing.assert_allclose(candidates[:, 8], np.log1p(towers.vocab.item_recent_counts),
                               rtol=1e-6)
    assert query[0, 8] == pytest.approx(0.5)
    # The exports serve the prior-adjusted scores.
    from models import serving_export

    metadata = serving_export.export(str(tmp_path / "towers"), str(tmp_path / "bf"),
                                     "brute_force")
    assert metadata["embedding_dim"] == 9 and metadata["trending_prior_weight"] == 0.5
    served = tf.saved_model.load(str(tmp_path / "bf")).signatures["serving_default"](
        user_id=tf.constant(["u1"]), history=tf.constant([["i1", "i2"]]))
    expected = np.sort(np.delete(query @ candidates.T, [towers.vocab.item_ids.index("i1"),
                                                        towers.vocab.item_ids.index("i2")],
                                 axis=1)[0])[::-1][:5]
    np.testing.assert_allclose(served["scores"].numpy()[0], expected, rtol=1e-5)


def test_trending_prior_weight_is_chosen_on_eval_clicks_and_saved(data, tmp_path):
    config = single_model_config(towers={"embedding_dim": 8}, prior={"grid": [0.0, 0.5, 50.0]},
                                 training={"batch_size": 16, "epochs": 1, "early_stopping_k": 3})
    logs = train(data["train"], data["vocab"], config, str(tmp_path / "towers"),
                 eval_files=data["train"])
    report = logs["trending_prior"]
    rates = {float(w): r for w, r in report["hit_rate_by_weight"].items()}
    assert sorted(rates) == [0.0, 0.5, 50.0] and report["clicks"] == 240
    # The best weight (the smallest among equals) is the one the towers carry.
    best = min(w for w, r in rates.items() if r == max(rates.values()))
    assert report["weight"] == best
    towers = Towers(str(tmp_path / "towers"))
    assert towers.config.prior.weight == towers.contract["prior_weight"] == best
    # A weight of 50 ranks by recent popularity alone; the tiny data's training
    # clicks are each user's 6 distinct items, so that can't be the best.
    assert rates[50.0] < max(rates.values())
    assert towers.candidate_embeddings().shape[1] == (9 if best else 8)


def test_trending_prior_grid_without_eval_clicks_keeps_the_fixed_weight(data, tmp_path):
    config = single_model_config(towers={"embedding_dim": 8}, prior={"weight": 0.2},
                                 training={"batch_size": 16, "epochs": 1})
    logs = train(data["train"], data["vocab"], config, str(tmp_path / "towers"))
    assert logs["trending_prior"] == {"weight": 0.2,
                                      "reason": "no eval examples: the fixed weight is kept"}
    assert Towers(str(tmp_path / "towers")).config.prior.weight == 0.2
