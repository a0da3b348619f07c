"""DSSM text towers in the exported models: titles and query text.

A tiny model (conftest data) whose catalogue has a `text` title and whose
query takes a `text` feature (`search`) through the DSSM text tower: the
saved towers encode text exactly as the towers in process (the query text is
hashed in the served graph, the titles ahead of time), and a trained model's
serving exports answer a request carrying query text, eagerly and as TF
Serving runs them.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from models import serving_export, vocab
from models.retrieval import RetrievalModel
from models.towers_export import Towers, save_towers
from models.trainer import train
from tests.conftest import ITEMS, single_model_config, write_tiny_data
from tests.models import graph_mode

WORDS = ("good", "goods", "will", "hunting", "hunter", "night", "nights", "day")


def _title(n: int) -> str:
    """Two words of WORDS per item; every fifth item has no title."""
    return "" if n % 5 == 0 else f"{WORDS[n % len(WORDS)]}|{WORDS[(3 * n) % len(WORDS)]}"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dssm")
    data = write_tiny_data(root)
    item_ids = vocab.read_vocab(data["vocab"]).item_ids
    with open(os.path.join(data["vocab"], vocab.ITEM_FEATURES_FILE), "w") as f:
        f.write("item_id\ttitle\n")
        for item in item_ids:
            f.write(f"{item}\t{_title(ITEMS.index(item))}\n")
    # VocabStats records each catalogue feature's type: title is `text`.
    stats_path = os.path.join(data["vocab"], vocab.STATS_FILE)
    with open(stats_path) as f:
        stats = json.load(f)
    with open(stats_path, "w") as f:
        json.dump({**stats, "item_features": {"title": "text"}}, f)
    return {**data, "root": root}


def _config(**changes):
    towers = {"embedding_dim": 8, "text_tower": "dssm", "text_trigram_buckets": 512,
              "text_layers": [16, 8], "query_features": {"search": "text"}}
    return single_model_config(towers={**towers, **changes},
                               training={"batch_size": 16, "epochs": 1},
                               export={"top_k": 5, "exclude_history": 3})


def test_saved_towers_encode_text_as_the_towers_in_process(data, tmp_path):
    config = _config()
    stats = vocab.read_vocab(data["vocab"])
    model = RetrievalModel(stats, config, item_features=vocab.read_item_features(data["vocab"]))
    texts = ["Good Will Hunting", "good will HUNTING!", "", "nights of the hunter"]
    inputs = {"user_id": tf.constant(["u1", "u2", "u3", "x"]),
              "history": tf.constant([["i1", "i2"] + [""] * 8] * 4),
              "search": tf.constant(texts)}
    query = model.query_tower(inputs).numpy()
    candidates = model.candidate_tower(tf.constant(stats.item_ids)).numpy()
    save_towers(str(tmp_path / "towers"), model.query_tower, model.candidate_tower, config,
                data["vocab"])
    towers = Towers(str(tmp_path / "towers"))
    served = towers.query_embeddings(inputs["user_id"].numpy().astype(str).tolist(),
                                     inputs["history"].numpy().astype(str).tolist(),
                                     {"search": texts}).numpy()
    np.testing.assert_allclose(served, query, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(towers.candidate_embeddings().numpy(), candidates,
                               rtol=1e-5, atol=1e-6)
    # Case and punctuation are not words; another text is another query.
    np.testing.assert_allclose(served[0], served[1], rtol=1e-6)
    assert not np.allclose(served[0], served[3])
    [catalogue] = [layer for layer in model.candidate_tower.extra_inputs
                   if hasattr(layer, "text_towers")]
    assert [name for name, _, _ in catalogue.text_towers] == ["title"]


def test_trained_dssm_model_serves_requests_with_query_text(data, tmp_path):
    towers_dir = str(tmp_path / "towers")
    logs = train(data["train"], data["vocab"], _config(), towers_dir)
    assert np.isfinite(logs["loss"])
    request = {"user_id": tf.constant(["u1"]), "history": tf.constant([["i1", "i2", "i3"]]),
               "search": tf.constant(["good will hunting"])}
    for kind in serving_export.EXPORT_KINDS:
        export_dir = str(tmp_path / kind)
        metadata = serving_export.export(towers_dir, export_dir, kind)
        assert metadata["inputs"]["search"] == "string [B]"
        loaded = tf.saved_model.load(export_dir)
        answer = loaded.signatures["serving_default"](**request)
        assert answer["item_ids"].shape == (1, 5)
        other = loaded.signatures["serving_default"](**dict(
            request, search=tf.constant(["night day"])))
        assert not np.allclose(other["scores"].numpy(), answer["scores"].numpy())
        feeds = {"user_id": ["u1"], "history": [["i1", "i2", "i3"]],
                 "search": ["good will hunting"]}
        graph = graph_mode.run_serving_default(export_dir, kind, feeds)
        assert graph["item_ids"] == answer["item_ids"].numpy().astype(str).tolist()
