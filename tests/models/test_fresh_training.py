"""Fresh models: training on the clicks since a time or since the base model,
and the final fit's settings taken from the evaluated model."""

from __future__ import annotations

import json
import os

import pytest

from models import vocab as vocab_lib
from models.data import make_dataset
from models.towers_export import Towers, read_contract
from models.trainer import REPORT_FILE, final_fit_config, since_timestamp, train
from tests.conftest import single_model_config, write_tiny_data

START = 1_600_000_000  # write_tiny_data: click k of each user at START + 60 k


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("fresh"))


def _timestamps(files, min_timestamp):
    dataset = make_dataset(files, 1000, 5, shuffle=False, min_timestamp=min_timestamp)
    return [int(t) for batch in dataset for t in batch["timestamp"].numpy()]


def test_min_timestamp_keeps_the_clicks_at_or_after_it(data):
    every = _timestamps(data["train"], None)
    later = _timestamps(data["train"], START + 180)
    assert len(every) == 240 and len(later) == 120  # clicks 3, 4 and 5 of 40 users
    assert sorted(later) == sorted(t for t in every if t >= START + 180)


def test_since_base_model_starts_after_the_base_models_newest_click(data, tmp_path):
    config = single_model_config(training={"since_base_model": True})
    base = tmp_path / "base"
    vocab_lib.write_vocab(str(base / "vocab"), [("i1", 1.0, 1.0)], [("u0", 1.0)],
                          {"max_timestamp": START + 120})
    assert since_timestamp(config, str(base)) == START + 121
    assert since_timestamp(config, None) is None  # no base model yet: every click
    fixed = single_model_config(training={"since": START + 60})
    assert since_timestamp(fixed, str(base)) == START + 60
    vocab_lib.write_vocab(str(tmp_path / "old" / "vocab"), [("i1", 1.0, 1.0)], [("u0", 1.0)],
                          {})
    with pytest.raises(ValueError, match="records no newest training click"):
        since_timestamp(config, str(tmp_path / "old"))


def test_since_after_every_click_fails_naming_the_time(data, tmp_path):
    config = single_model_config(towers={"embedding_dim": 8},
                                 training={"batch_size": 16, "epochs": 1, "since": START + 301})
    with pytest.raises(ValueError, match=f"no training click at or after unix time {START + 301}"):
        train(data["train"], data["vocab"], config, str(tmp_path / "towers"))


def test_final_fit_repeats_the_evaluated_models_epochs_and_prior_weight(data, tmp_path):
    # The evaluated model: early stopping on the eval clicks, the prior chosen on them.
    evaluated = single_model_config(
        towers={"embedding_dim": 8}, prior={"grid": [0.0, 0.5, 50.0]},
        training={"batch_size": 16, "epochs": 3, "learning_rate": 0.5,
                  "early_stopping_patience": 1, "early_stopping_k": 5})
    logs = train(data["train"], data["vocab"], evaluated, str(tmp_path / "chosen"),
                 eval_files=data["train"])
    chosen_weight = logs["trending_prior"]["weight"]
    assert read_contract(str(tmp_path / "chosen"))["trained_epochs"] == logs["best_epoch"]

    final, weight = final_fit_config(str(tmp_path / "chosen"), evaluated)
    assert final.training.epochs == logs["best_epoch"]
    assert final.training.early_stopping_patience == 0  # nothing is held out
    assert weight == chosen_weight
    # The final fit, on the clicks since a time, exports the chosen weight unchanged.
    final = final.with_changes(training={"since": START + 180})
    report = train(data["train"], data["vocab"], final, str(tmp_path / "final"),
                   served_prior_weight=weight)
    assert report["trending_prior"]["weight"] == weight
    assert report["epochs_trained"] == logs["best_epoch"]
    assert report["since_timestamp"] == START + 180
    with open(os.path.join(tmp_path, "final", REPORT_FILE)) as f:
        assert json.load(f)["since_timestamp"] == START + 180
    assert Towers(str(tmp_path / "final")).config.prior.weight == weight
