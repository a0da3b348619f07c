"""Impressed negatives beat none on synthetic data with a known impression structure.

Seeded synthetic clicks with impressions (clicklog/synthetic.py): users with
tastes spread over a few categories, each click preceded by ten impressions of
popular items from categories the user dislikes. Each user's last click is
held out; the model (with a user id embedding, which is where per-user
dislikes can be learned) ranks the whole catalogue, seen items excluded. The
same model trained with each click's impressed negatives
(`model.negatives.impressions`) must put far fewer disliked-category items in
its top K and hit more held-out clicks, by a margin, than without them.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tensorflow as tf

from clicklog import synthetic
from clicklog.config import parse
from clicklog.formats import Click
from components.click_example_gen.click_features import ClickFeatures
from components.click_example_gen.examples import to_example
from components.click_example_gen.impressions import impressed_negatives
from models import vocab
from models.config import ModelConfig
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import SINGLE_MODEL, merged

K = 10
MAX_HISTORY = 10
IMPRESSIONS = 10
# Seed 11 gives hit@10 0.177 without and 0.242 with impressed negatives
# (seeds 3 and 5: 0.158 / 0.192 and 0.187 / 0.220); the disliked share of the
# top 10 falls from 0.23 to 0.02.
MARGIN = 0.03


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("impressions")
    log = synthetic.generate_log(synthetic.SyntheticConfig(
        num_users=600, num_items=200, num_categories=8, clicks_per_user=10,
        taste_concentration=0.5, impressions_per_click=IMPRESSIONS, seed=11))
    clicks, shown = collections.defaultdict(list), collections.defaultdict(list)
    for user, item, timestamp in log.clicks:
        clicks[user].append(Click(user, item, timestamp))
    for user, item, timestamp in log.impressions:
        shown[user].append(Click(user, item, timestamp, event_type="impression"))
    path = str(root / "train.tfrecord.gz")
    held_out = []  # (user, history, clicked item, categories of the items shown to the user)
    counts = collections.Counter()
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for user, events in sorted(clicks.items()):
            negatives = impressed_negatives(events, shown[user], window=1800, max_count=50)
            items = [c.item_id for c in events]
            for step, click in enumerate(events[:-1]):
                writer.write(to_example(click, ClickFeatures(
                    tuple(items[:step]), impressed_negatives=negatives[step])))
                counts[click.item_id] += 1
            disliked = {log.item_category[c.item_id] for c in shown[user]}
            held_out.append((user, items[:-1][-MAX_HISTORY:], items[-1], disliked))
    vocab.write_vocab(str(root / "vocab"), [(i, c, c) for i, c in counts.items()],
                      [(u, len(e)) for u, e in clicks.items()],
                      {"max_timestamp": max(c[2] for c in log.clicks),
                       "min_timestamp": min(c[2] for c in log.clicks)})
    return {"train": path, "vocab": str(root / "vocab"), "held_out": held_out,
            "category": log.item_category}


def _scores(towers_dir, data) -> tuple[float, float]:
    """(hit rate@K of the held-out clicks, share of the top K from disliked categories)."""
    towers = Towers(towers_dir)
    item_ids = towers.vocab.item_ids
    index = {item: n for n, item in enumerate(item_ids)}
    held_out = data["held_out"]
    histories = [h + [""] * (MAX_HISTORY - len(h)) for _, h, _, _ in held_out]
    query = towers.query_embeddings([u for u, _, _, _ in held_out], histories).numpy()
    scores = query @ towers.candidate_embeddings().numpy().T
    hits = disliked = 0
    for row, (_, history, target, categories) in zip(scores, held_out, strict=True):
        row = row.copy()
        row[[index[i] for i in history if i in index]] = -np.inf
        top = {item_ids[n] for n in np.argpartition(-row, K)[:K]}
        hits += target in top
        disliked += sum(data["category"][item] in categories for item in top)
    return hits / len(held_out), disliked / (K * len(held_out))


def test_impressed_negatives_beat_none_on_users_shown_items_they_dislike(data, tmp_path):
    base = merged(SINGLE_MODEL, {
        "towers": {"embedding_dim": 16, "user_id": True},
        "training": {"batch_size": 128, "epochs": 6, "learning_rate": 0.1,
                     "recency_half_life_days": 0.0}})
    results = {}
    for impressions in (0, IMPRESSIONS):
        config = parse(ModelConfig, merged(base, {"negatives": {
            "impressions": impressions, "impression_weight": 20.0}}))
        train(data["train"], data["vocab"], config, str(tmp_path / f"towers{impressions}"))
        results[impressions] = _scores(str(tmp_path / f"towers{impressions}"), data)
    (hit_none, disliked_none), (hit, disliked) = results[0], results[IMPRESSIONS]
    print(f"hit@{K}: {hit_none:.3f} without impressed negatives, {hit:.3f} with; disliked "
          f"share of the top {K}: {disliked_none:.3f} -> {disliked:.3f}")
    assert disliked <= 0.5 * disliked_none, results
    assert hit >= hit_none + MARGIN, results


def test_impressed_negatives_train_with_the_prior_mixed_and_hard_negatives(data, tmp_path):
    # The trending prior in training scores the impressed negatives too
    # (TrendingPrior.per_query); mixed and hard negatives take them along.
    config = parse(ModelConfig, {
        "ensemble": {"size": 1}, "towers": {"embedding_dim": 8},
        "negatives": {"impressions": 4, "mixed": 16, "hard": 8},
        "training": {"batch_size": 256, "epochs": 1}})
    logs = train(data["train"], data["vocab"], config, str(tmp_path / "towers"))
    assert np.isfinite(logs["loss"])
