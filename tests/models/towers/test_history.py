"""The history options (dropout, catalogue tokens) and the trending prior in
training, end to end on the tiny data: train, save the towers, both serving
exports (eager and run as TF Serving runs them), with the default two-input
signatures."""

import os

import numpy as np
import pytest
import tensorflow as tf

from models import serving_export
from models import vocab as vocab_lib
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import single_model_config, write_tiny_data
from tests.models import graph_mode

OPTIONS = {"history": {"dropout": 0.3, "item_side_features": True, "pooling": "attention"},
           "prior": {"in_training": True, "grid": []}}


@pytest.fixture(scope="module")
def towers_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("history_options")
    data = write_tiny_data(root)
    item_ids = vocab_lib.read_vocab(data["vocab"]).item_ids
    with open(os.path.join(data["vocab"], vocab_lib.ITEM_FEATURES_FILE), "w") as f:
        f.write("item_id\tgenre\n")
        for n, item in enumerate(item_ids):
            f.write(f"{item}\tg{n % 3}|all\n")
    config = single_model_config(towers={"embedding_dim": 8},
                                 training={"batch_size": 16, "epochs": 2},
                                 export={"top_k": 5}, **OPTIONS)
    logs = train(data["train"], data["vocab"], config, str(root / "towers"))
    assert np.isfinite(logs["loss"]) and "trending_prior_learned_weight" in logs
    return str(root / "towers")


def test_towers_keep_the_two_input_signature_and_are_deterministic(towers_dir):
    towers = Towers(towers_dir)
    assert towers.config.history.dropout == 0.3 and towers.config.history.item_side_features
    assert towers.config.history.pooling == "attention" and towers.config.prior.in_training
    assert [spec.name for spec in towers.query_specs] == ["user_id", "history"]
    histories = [["i1", "i2", "i3"], ["", "", ""]]
    first = towers.query_embeddings(["u1", "x"], histories).numpy()
    # History dropout is training only: serving the same request twice agrees.
    np.testing.assert_array_equal(first, towers.query_embeddings(["u1", "x"], histories).numpy())
    width = 9 if towers.config.prior.weight else 8
    assert first.shape == (2, width)
    assert towers.candidate_embeddings().shape == (towers.vocab.num_items, width)


@pytest.mark.parametrize("kind", serving_export.EXPORT_KINDS)
def test_exports_answer_alike_eager_and_as_tf_serving_runs_them(towers_dir, tmp_path, kind):
    serving_export.export(towers_dir, str(tmp_path / kind), kind)
    request = {"user_id": ["u2"], "history": [["", "i1", "i2", "i3", "i4"]]}
    eager = tf.saved_model.load(str(tmp_path / kind)).signatures["serving_default"](
        user_id=tf.constant(request["user_id"]), history=tf.constant(request["history"]))
    answer = graph_mode.run_serving_default(str(tmp_path / kind), kind, request)
    assert answer["item_ids"] == eager["item_ids"].numpy().astype(str).tolist()
    assert not {"i1", "i2", "i3", "i4"} & set(answer["item_ids"][0])
