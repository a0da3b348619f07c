"""The self-attention history pooling learns the order that mean pooling
cannot see.

Seeded synthetic clicks with order (`chain_probability`): half the time a
user's next click is the item after their previous click in a fixed cycle
through its category, otherwise a draw from their category tastes. Each
user's last click is held out; both models rank the whole catalogue from the
user's earlier clicks (seen items excluded) with the same budget and
settings. A bag of items knows the user's categories and which items follow
theirs, but not which of them was clicked last; the sequence encoder must
beat it by a clear margin.
"""

from __future__ import annotations

import numpy as np

from clicklog import synthetic
from clicklog.config import parse
from models.config import ModelConfig
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import SINGLE_MODEL, merged
from tests.models.held_out import write_held_out

K = 10
MAX_HISTORY = 20
MARGIN = 0.05


def _write_data(root) -> dict:
    clicks, _ = synthetic.generate(synthetic.SyntheticConfig(
        num_users=800, num_items=200, num_categories=8, clicks_per_user=20,
        chain_probability=0.5, seed=11))
    return write_held_out(root, clicks, MAX_HISTORY)


def _hit_rate(towers_dir: str, held_out) -> float:
    towers = Towers(towers_dir)
    item_ids = towers.vocab.item_ids
    index = {item: n for n, item in enumerate(item_ids)}
    histories = [h + [""] * (MAX_HISTORY - len(h)) for _, h, _ in held_out]
    query = towers.query_embeddings([u for u, _, _ in held_out], histories).numpy()
    scores = query @ towers.candidate_embeddings().numpy().T
    hits = 0
    for row, (_, history, target) in zip(scores, held_out, strict=True):
        row[[index[i] for i in history if i in index]] = -np.inf
        hits += target in {item_ids[n] for n in np.argpartition(-row, K)[:K]}
    return hits / len(held_out)


def test_self_attention_beats_mean_pooling_on_ordered_clicks(tmp_path):
    data = _write_data(tmp_path)
    rates = {}
    for pooling in ("mean", "self_attention"):
        # The default learning rate (Adagrad 0.03), the same budget for both.
        config = parse(ModelConfig, merged(SINGLE_MODEL, {
            "towers": {"embedding_dim": 16},
            "history": {"pooling": pooling, "max_history": MAX_HISTORY},
            "training": {"batch_size": 128, "epochs": 6, "recency_half_life_days": 0.0}}))
        train(data["train"], data["vocab"], config, str(tmp_path / pooling))
        rates[pooling] = _hit_rate(str(tmp_path / pooling), data["held_out"])
    print(f"hit@{K} on ordered clicks: {rates}")
    assert rates["mean"] > 0.15, rates  # the baseline learnt the tastes
    assert rates["self_attention"] >= rates["mean"] + MARGIN, rates
