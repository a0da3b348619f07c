"""Shared fixtures and config helpers: tiny data, small models, one towers model."""

import numpy as np
import pytest
import tensorflow as tf

from clicklog.config import parse
from clicklog.formats import Click
from components.click_example_gen.examples import to_example
from models import vocab
from models.config import ModelConfig
from models.trainer import train
from tests.pipeline_runs import first_run, log  # noqa: F401  session fixtures (one run)

# Tests of one model option build a single small model unless they set these
# themselves: the default three-member ensemble would triple their training
# time, and the default trending prior in training and history dropout would
# change what they measure. tests/models/test_ensemble.py and the pipeline
# tests run the defaults.
SINGLE_MODEL = {"ensemble": {"size": 1}, "history": {"dropout": 0.0, "max_history": 10},
                "prior": {"in_training": False}}


def merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied section by section (nested dicts merge)."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def model_config(**sections) -> ModelConfig:
    """The default ModelConfig with some sections' fields changed:
    `model_config(towers={"embedding_dim": 8}, training={"epochs": 1})`."""
    return parse(ModelConfig, sections)


def single_model_config(**sections) -> ModelConfig:
    """One small model: SINGLE_MODEL, then `sections` (as `model_config`)."""
    return parse(ModelConfig, merged(SINGLE_MODEL, sections))


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


@pytest.fixture(scope="session")
def towers_dir(tmp_path_factory):
    """Towers of the default model (a three-member ensemble with the prior in
    training) with a user id, 8 dimensions, one epoch, top 5, 3 items excluded."""
    root = tmp_path_factory.mktemp("train")
    data = write_tiny_data(root)
    config = model_config(towers={"embedding_dim": 8, "user_id": True},
                          training={"batch_size": 16, "epochs": 1},
                          export={"top_k": 5, "exclude_history": 3})
    logs = train(data["train"], data["vocab"], config, str(root / "towers"))
    assert np.isfinite(logs["loss"])
    return str(root / "towers")


@pytest.fixture(scope="session")
def towers_exports(towers_dir, tmp_path_factory):
    """Both serving exports of `towers_dir`: {kind: (directory, metadata)}."""
    from models import serving_export

    root = tmp_path_factory.mktemp("exports")
    return {kind: (str(root / kind), serving_export.export(towers_dir, str(root / kind), kind))
            for kind in serving_export.EXPORT_KINDS}
