"""Seed ensembles (`model.ensemble.size`): one dot product scores the mean."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from clicklog.config import ConfigError
from models import ensemble, serving_export, warm_start
from models.config import EnsembleConfig
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import model_config, write_tiny_data

USERS = ["u1", "u2", "u3"]
HISTORIES = [["i1", "i2"] + [""] * 8, ["i3"] + [""] * 9, [""] * 10]


class _Fixed(tf.keras.Model):
    """A stand-in tower returning a fixed embedding per row."""

    def __init__(self, rows):
        super().__init__()
        self.rows = tf.constant(rows, tf.float32)

    def call(self, inputs, training=False):
        return self.rows


def test_ensemble_towers_score_the_mean_of_the_members_scores():
    # Member 1: q=[1, 0], c=[[2, 1], [0, 3]] -> scores [2, 0].
    # Member 2: q=[0, 2], c=[[1, 1], [4, 0]] -> scores [2, 0].
    # Another query row: member 1 q=[1, 1] -> [3, 3]; member 2 q=[1, 0] -> [1, 4].
    queries = [_Fixed([[1.0, 0.0], [1.0, 1.0]]), _Fixed([[0.0, 2.0], [1.0, 0.0]])]
    candidates = [_Fixed([[2.0, 1.0], [0.0, 3.0]]), _Fixed([[1.0, 1.0], [4.0, 0.0]])]
    query = ensemble.ConcatenatedTower(queries, scale=0.5)({"anything": None})
    corpus = ensemble.ConcatenatedTower(candidates)(tf.constant(["a", "b"]))
    assert query.shape == (2, 4) and corpus.shape == (2, 4)
    scores = tf.matmul(query, corpus, transpose_b=True).numpy()
    np.testing.assert_allclose(scores, [[(2 + 2) / 2, (0 + 0) / 2], [(3 + 1) / 2, (3 + 4) / 2]])


def test_one_member_keeps_its_own_towers():
    class Model:
        query_tower, candidate_tower = object(), object()

    model = Model()
    single = ensemble.Ensemble([model])
    assert single.query_tower is model.query_tower
    assert single.candidate_tower is model.candidate_tower
    with pytest.raises(ValueError, match="no trained members"):
        ensemble.Ensemble([])
    with pytest.raises(ValueError, match="no member towers"):
        ensemble.ConcatenatedTower([])


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_ensemble_size_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError, match=rf"model.ensemble.size={value!r}: expected an "
                                          "integer >= 1"):
        EnsembleConfig(size=value)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("ensemble"))


def _scores(directory: str) -> np.ndarray:
    towers = Towers(directory)
    query = towers.query_embeddings(USERS, HISTORIES).numpy()
    return query @ towers.candidate_embeddings().numpy().T


def test_trained_ensemble_scores_the_mean_of_separately_trained_members(data, tmp_path):
    # Training is deterministic for a seed, so members 0 and 1 of the
    # ensemble are the single models trained with seeds 42 and 43.
    # No trending prior: each member would learn its own weight.
    for name, size, seed in (("s42", 1, 42), ("s43", 1, 43), ("ens", 2, 42)):
        config = model_config(towers={"embedding_dim": 8}, ensemble={"size": size},
                              prior={"grid": [], "in_training": False},
                              training={"batch_size": 16, "epochs": 2, "seed": seed})
        logs = train(data["train"], data["vocab"], config, str(tmp_path / name))
    assert len(logs["members"]) == 2 and logs["loss"] == logs["members"][0]["loss"]
    expected = (_scores(str(tmp_path / "s42")) + _scores(str(tmp_path / "s43"))) / 2
    np.testing.assert_allclose(_scores(str(tmp_path / "ens")), expected, atol=1e-5)
    assert Towers(str(tmp_path / "ens")).candidate_embeddings().shape == (30, 16)
    assert {warm_start.weights_file(0), warm_start.weights_file(1)} <= set(
        os.listdir(tmp_path / "ens"))
    # Different seeds give different members (else the ensemble would be moot).
    assert not np.allclose(_scores(str(tmp_path / "s42")), _scores(str(tmp_path / "s43")))


def test_ensemble_with_trending_prior_exports_and_serves_its_scores(data, tmp_path):
    # The defaults: three members, trending prior in training (the members'
    # mean learned weight is served when the grid is empty).
    config = model_config(towers={"embedding_dim": 8}, prior={"grid": []},
                          training={"batch_size": 16, "epochs": 1},
                          export={"top_k": 5, "exclude_history": 10})
    assert config.ensemble.size == 3 and config.prior.in_training
    logs = train(data["train"], data["vocab"], config, str(tmp_path / "towers"))
    towers = Towers(str(tmp_path / "towers"))
    weight = logs["trending_prior_learned_weight"]
    assert towers.config.prior.weight == weight > 0
    query = towers.query_embeddings(USERS, HISTORIES).numpy()
    corpus = towers.candidate_embeddings().numpy()
    # Three members of 8 dimensions, plus the prior column: w on the query
    # side, log1p(recent count) on the candidate side.
    assert query.shape == (3, 25) and corpus.shape == (30, 25)
    np.testing.assert_allclose(query[:, -1], weight)
    recent = dict(zip(towers.vocab.item_ids, towers.vocab.item_recent_counts, strict=True))
    np.testing.assert_allclose(corpus[:, -1], np.log1p([recent[i] for i in towers.vocab.item_ids]),
                               rtol=1e-6)
    metadata = serving_export.export(str(tmp_path / "towers"), str(tmp_path / "bf"),
                                     "brute_force")
    assert metadata["embedding_dim"] == 25
    served = tf.saved_model.load(str(tmp_path / "bf")).signatures["serving_default"](
        user_id=tf.constant(USERS), history=tf.constant(HISTORIES))
    scores = query @ corpus.T
    for row, history in enumerate(HISTORIES):
        for item in history:
            if item:
                scores[row, towers.vocab.item_ids.index(item)] = -np.inf
    expected = [[towers.vocab.item_ids[i] for i in np.argsort(-row, kind="stable")[:5]]
                for row in scores]
    got = [[i.decode() for i in row] for row in served["item_ids"].numpy()]
    assert got == expected


def test_warm_start_member_k_starts_from_the_earlier_member_k_or_member_0(data, tmp_path):
    base = model_config(towers={"embedding_dim": 8}, ensemble={"size": 2}, prior={"grid": []},
                        training={"batch_size": 16, "epochs": 1})
    assert base.prior.in_training  # its learned beta is not a tower weight: never skipped
    train(data["train"], data["vocab"], base, str(tmp_path / "base"))
    grown = base.with_changes(ensemble={"size": 3}, training={"warm_start": True})
    logs = train(data["train"], data["vocab"], grown, str(tmp_path / "grown"),
                 base_model_dir=str(tmp_path / "base"))
    sources = [member["warm_start"]["from_member"] for member in logs["members"]]
    assert sources == [0, 1, 0]
    for member in logs["members"]:
        assert member["warm_start"]["weights_skipped"] == 0
        assert member["warm_start"]["ids_copied"]["candidate_tower.item_embedding"] == 30
    with open(tmp_path / "grown" / "model_config.json") as f:
        assert json.load(f)["ensemble"]["size"] == 3
