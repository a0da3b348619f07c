"""Shared fixtures: a towers SavedModel trained for one epoch on tiny data."""

import numpy as np
import pytest
import tensorflow as tf

from clicklog.formats import Click
from components.ingestion import to_example
from models import vocab
from models.hparams import HParams

# Tests of one model option build a single small model unless they set these
# themselves: the default three-member ensemble would triple their training
# time, and the default trending prior in training and history dropout would
# change what they measure. tests/models/test_ensemble.py and the pipeline
# tests run the defaults.
SINGLE_MODEL = {"ensemble_size": 1, "history_dropout": 0.0, "trending_prior_training": False,
                "max_history": 10}


def single_model_hparams(**overrides) -> HParams:
    """HParams of one small model: SINGLE_MODEL, then `overrides`."""
    return HParams(**{**SINGLE_MODEL, **overrides})
from models.trainer import train

ITEMS = [f"i{n}" for n in range(30)]


def write_tiny_data(root) -> dict:
    """40 users x 6 clicks over 30 items: train examples and VocabStats files."""
    rng = np.random.default_rng(0)
    clicks = []
    for user in range(40):
        items = rng.choice(ITEMS, size=6, replace=False)
        for step, item in enumerate(items):
            clicks.append((Click(f"u{user}", str(item), 1_600_000_000 + step * 60),
                           tuple(str(i) for i in items[:step])))
    path = str(root / "train.tfrecord.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for click, history in clicks:
            writer.write(to_example(click, history))
    counts = {}
    for click, _ in clicks:
        counts[click.item_id] = counts.get(click.item_id, 0) + 1
    vocab.write_vocab(str(root / "vocab"), [(i, c, c) for i, c in counts.items()],
                      [(f"u{u}", 6) for u in range(40)],
                      {"max_timestamp": 1_600_000_300, "min_timestamp": 1_600_000_000})
    return {"train": path, "vocab": str(root / "vocab")}


@pytest.fixture(scope="module")
def towers_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = write_tiny_data(root)
    hparams = HParams(embedding_dim=8, batch_size=16, epochs=1, serving_top_k=5,
                      serving_exclude_history=3, use_user_id=True)
    logs = train(data["train"], data["vocab"], hparams, str(root / "towers"))
    assert np.isfinite(logs["loss"])
    return str(root / "towers")
