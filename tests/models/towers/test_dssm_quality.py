"""Letter trigrams generalise across spelling variants where word hashing can't.

Seeded synthetic catalogue: each category has a stem word, and each item's
title is a variant of its category's stem (stem plus a suffix of its own)
and a word drawn from a pool shared by all categories. Users click warm
items of one category; each then clicks one cold item (no training click)
of the same category. Ranked among the cold items from the user's history,
the cold item is reached only through its title: with word hashing its
variant is a word never seen in training, with letter trigrams it shares
the stem's trigrams with every trained title of its category. The DSSM text
tower must beat today's hashed bag, both trained in this test, by a wide
margin.
"""

from __future__ import annotations

import os
import string

import numpy as np
import pytest
import tensorflow as tf

from clicklog.formats import Click
from components.click_example_gen.examples import to_example
from models import vocab
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import single_model_config

CATEGORIES = 8
WARM, COLD = 20, 6  # items per category
CLICKS_PER_USER = 6
USERS = 800
K = 5
MAX_HISTORY = 10


def _word(rng, length: int) -> str:
    return "".join(rng.choice(list(string.ascii_lowercase), size=length))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dssm_quality")
    rng = np.random.default_rng(17)
    stems = [_word(rng, 6) for _ in range(CATEGORIES)]
    shared = [_word(rng, 5) for _ in range(20)]
    titles, warm, cold = {}, {}, {}
    for c in range(CATEGORIES):
        warm[c] = [f"w{c}_{n}" for n in range(WARM)]
        cold[c] = [f"k{c}_{n}" for n in range(COLD)]
        for item in warm[c] + cold[c]:
            titles[item] = [stems[c] + _word(rng, 3), str(rng.choice(shared))]
    counts = {item: 0 for item in titles}
    held_out = []  # (user, history, cold item)
    path = str(root / "train.tfrecord.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for user in range(USERS):
            c = int(rng.integers(CATEGORIES))
            items = [str(i) for i in rng.choice(warm[c], size=CLICKS_PER_USER, replace=False)]
            for step, item in enumerate(items):
                writer.write(to_example(Click(f"u{user}", item, 1_600_000_000 + step),
                                        tuple(items[:step])))
                counts[item] += 1
            held_out.append((f"u{user}", items[-MAX_HISTORY:], str(rng.choice(cold[c]))))
    vocab_dir = str(root / "vocab")
    vocab.write_vocab(vocab_dir, [(i, n, n) for i, n in counts.items()],
                      [(f"u{u}", CLICKS_PER_USER) for u in range(USERS)],
                      {"max_timestamp": 1_600_000_010, "min_timestamp": 1_600_000_000,
                       "item_features": {"title": "text"}})
    with open(os.path.join(vocab_dir, vocab.ITEM_FEATURES_FILE), "w") as f:
        f.write("item_id\ttitle\n")
        for item in vocab.read_vocab(vocab_dir).item_ids:
            f.write(f"{item}\t{'|'.join(titles[item])}\n")
    return {"root": root, "train": path, "vocab": vocab_dir, "held_out": held_out,
            "cold": [i for c in range(CATEGORIES) for i in cold[c]]}


def _cold_hit_rate(towers_dir: str, data) -> float:
    """Hit rate@K of the held-out clicks, each ranked among the cold items."""
    towers = Towers(towers_dir)
    held_out = data["held_out"]
    histories = [h + [""] * (MAX_HISTORY - len(h)) for _, h, _ in held_out]
    scores = (towers.query_embeddings([u for u, _, _ in held_out], histories).numpy()
              @ towers.candidate_embeddings(data["cold"]).numpy().T)
    top = np.argsort(-scores, axis=1)[:, :K]
    return float(np.mean([data["cold"].index(target) in row
                          for (_, _, target), row in zip(held_out, top, strict=True)]))


def test_dssm_text_tower_reaches_cold_items_through_spelling_variants(data):
    rates = {}
    for text_tower in ("bag", "dssm"):
        config = single_model_config(
            towers={"embedding_dim": 16, "popularity": False, "query_hidden_layers": [],
                    "text_tower": text_tower, "item_feature_buckets": 4096,
                    "text_trigram_buckets": 4096, "text_layers": [64, 32]},
            training={"epochs": 6, "batch_size": 128, "learning_rate": 0.1,
                      "recency_half_life_days": 0.0})
        towers_dir = str(data["root"] / text_tower)
        train(data["train"], data["vocab"], config, towers_dir)
        rates[text_tower] = _cold_hit_rate(towers_dir, data)
    chance = K / len(data["cold"])
    print(f"cold-item hit@{K} among {len(data['cold'])} cold items: dssm {rates['dssm']:.3f}, "
          f"bag {rates['bag']:.3f}, chance {chance:.3f}")
    # Seed 17: dssm 0.844, bag 0.091 (chance 0.104).
    assert rates["dssm"] >= rates["bag"] + 0.3, rates
    assert rates["dssm"] >= 0.5, rates
