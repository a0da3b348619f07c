"""The model learns the synthetic data's taste structure, with every loss.

Seeded synthetic clicks: users with focused category tastes, Zipf popularity
inside categories. Each user's last click is held out; the model ranks the
whole catalogue from the user's earlier clicks (seen items excluded) and must
beat all-time popularity, scored on the same held-out clicks in this test,
by a clear margin. With teacher-guided retrieval the teacher must also rank
the held-out clicks above items drawn at random (AUC above 0.5 by a margin).
"""

from __future__ import annotations

import numpy as np
import pytest

from clicklog import synthetic
from clicklog.config import parse
from models import vocab
from models.config import ModelConfig
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import SINGLE_MODEL, merged
from tests.models.held_out import write_held_out

K = 10
MAX_HISTORY = 10
TEACHER_AUC_MARGIN = 0.15


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    clicks, _ = synthetic.generate(synthetic.SyntheticConfig(
        num_users=800, num_items=200, num_categories=8, clicks_per_user=12, seed=11))
    data = write_held_out(root, clicks, MAX_HISTORY, with_eval=True)
    # The negative-sampling column as VocabStatsGen writes it (alpha 0.75).
    rows = vocab.read_vocab(str(root / "vocab"))
    powered = [c ** 0.75 for c in rows.item_counts]
    vocab.write_item_stats(str(root / "vocab"), [
        vocab.ItemStats(i, c, c, p, w / sum(powered), c, 0, 0) for i, c, p, w in zip(
            rows.item_ids, rows.item_counts, rows.item_sampling_probability, powered,
            strict=True)])
    return {**data, "root": root}


def _hit_rate(score_rows: np.ndarray, item_ids: list[str], held_out) -> float:
    index = {item: n for n, item in enumerate(item_ids)}
    hits = 0
    for row, (_, history, target) in zip(score_rows, held_out, strict=True):
        row = row.copy()
        row[[index[i] for i in history if i in index]] = -np.inf
        top = np.argpartition(-row, K)[:K]
        hits += target in {item_ids[n] for n in top}
    return hits / len(held_out)


def _popularity_hit_rate(data, item_ids) -> float:
    row = np.array([data["counts"][i] for i in item_ids], np.float64)
    return _hit_rate(np.tile(row, (len(data["held_out"]), 1)), item_ids, data["held_out"])


def _model_hit_rate(towers_dir, data) -> float:
    towers = Towers(towers_dir)
    item_ids = towers.vocab.item_ids
    histories = [h + [""] * (MAX_HISTORY - len(h)) for _, h, _ in data["held_out"]]
    query = towers.query_embeddings([u for u, _, _ in data["held_out"]], histories).numpy()
    scores = query @ towers.candidate_embeddings().numpy().T
    return _hit_rate(scores, item_ids, data["held_out"])


@pytest.mark.parametrize("options", [
    # One member of the defaults: in-batch softmax with logQ, trending prior in
    # training, history dropout (the ensemble is tests/models/test_ensemble.py's
    # subject). The options below each change one thing on a small single
    # model (SINGLE_MODEL).
    {"ensemble": {"size": 1}},
    merged(SINGLE_MODEL, {"negatives": {"mixed": 64, "mixed_distribution": "popularity"}}),
    # NCE at temperature 1: at the softmax's 0.1 its many binary terms
    # saturate (hit@10 0.110 here against popularity's 0.113; 0.138 at 0.3).
    merged(SINGLE_MODEL, {"loss": {"kind": "nce", "temperature": 1.0},
                          "negatives": {"mixed": 64}}),
    # Hard negatives and BCE with a linear query tower: with the default
    # query MLP [128] they reach only hit@10 0.165 and 0.122 here (popularity
    # 0.113), short of the margin; the ablation also finds both worse than the
    # default softmax (docs/ablation.md).
    merged(SINGLE_MODEL, {"negatives": {"hard": 32}, "towers": {"query_hidden_layers": []}}),
    merged(SINGLE_MODEL, {"history": {"pooling": "attention"},
                          "towers": {"query_hidden_layers": [32]}}),
    merged(SINGLE_MODEL, {"loss": {"kind": "bce", "pair_negatives": 8},
                          "towers": {"query_hidden_layers": []}}),
    merged(SINGLE_MODEL, {"loss": {"kind": "triplet_hinge", "pair_negatives": 8,
                                   "triplet_margin": 0.5}}),
    merged(SINGLE_MODEL, {"loss": {"kind": "triplet_logistic", "pair_negatives": 8}}),
    # The held-out clicks go to the Trainer as eval examples for the teacher's
    # AUC; the trending prior must not be calibrated on them.
    merged(SINGLE_MODEL, {"teacher": {"enabled": True}, "prior": {"grid": []}}),
], ids=["softmax", "mixed_negatives", "nce", "hard_negatives", "attention_mlp", "bce",
        "triplet_hinge", "triplet_logistic", "teacher_guided"])
def test_model_beats_popularity_on_known_tastes(data, options, tmp_path):
    config = parse(ModelConfig, merged(
        {"towers": {"embedding_dim": 16},
         "training": {"batch_size": 128, "epochs": 6, "learning_rate": 0.1,
                      "recency_half_life_days": 0.0}}, options))
    logs = train(data["train"], data["vocab"], config, str(tmp_path / "towers"),
                 eval_files=data["eval"] if config.teacher.enabled else None)
    if config.teacher.enabled:
        # The teacher ranks held-out clicks above random items, clearly.
        print(f"teacher AUC on held-out clicks {logs['teacher_auc']:.3f}")
        assert logs["teacher_auc"] >= 0.5 + TEACHER_AUC_MARGIN, logs
    model = _model_hit_rate(str(tmp_path / "towers"), data)
    popularity = _popularity_hit_rate(data, Towers(str(tmp_path / "towers")).vocab.item_ids)
    print(f"{options}: model hit@{K} {model:.3f} vs popularity {popularity:.3f}")
    assert model >= 1.3 * popularity + 0.02, (model, popularity)
