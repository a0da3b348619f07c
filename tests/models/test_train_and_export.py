"""Towers trained on tiny data (conftest), then both serving exports.

Checks the towers SavedModel contract, that the ScaNN export (an exact scan on
a tiny catalogue) answers exactly like the brute-force one, and that each
export runs the way TF Serving's C++ loader runs it: TF1 graph mode, a
Session, the signature's tensor names; the brute-force one in a process with
no ScaNN ops registered at all.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from models import serving_export
from models.towers_export import Towers
from tests.models import graph_mode


def _width(towers: Towers) -> int:
    """The default model's embedding width: three members of embedding_dim,
    plus the trending prior's column when its weight is > 0."""
    config = towers.config
    assert config.towers.embedding_dim == 8 and config.ensemble.size == 3
    return 3 * 8 + (1 if config.prior.weight else 0)


def test_towers_contract(towers_dir):
    towers = Towers(towers_dir)
    width = _width(towers)
    assert towers.candidate_embeddings().shape == (towers.vocab.num_items, width)
    # Unknown user and items fall into OOV buckets; L may differ from max_history.
    query = towers.query_embeddings(["u1", "stranger"], [["i1", "", "nope"], ["", "", ""]])
    assert query.shape == (2, width)


def test_scann_export_matches_brute_force_and_excludes_history(towers_dir, towers_exports):
    answers = {}
    for kind in serving_export.EXPORT_KINDS:
        export_dir, metadata = towers_exports[kind]
        assert metadata["top_k"] == 5 and metadata["export"] == kind
        # A 30-item catalogue is scanned exactly, so the recorded ANN recall is 1.
        assert metadata["ann_recall@5"] == 1.0
        if kind == "scann":
            from scann.scann_ops.py import scann_ops  # noqa: F401
        model = tf.saved_model.load(export_dir)
        out = model.signatures["serving_default"](
            user_id=tf.constant(["u1", "u2"]),
            history=tf.constant([["i1", "i2", "i3", "i4"], ["", "", "", ""]]))
        answers[kind] = (out["item_ids"].numpy().astype(str), out["scores"].numpy())
        assert out["item_ids"].shape == (2, 5)
        assert np.all(np.diff(out["scores"].numpy(), axis=1) <= 1e-6)
        # exclude_history=3: the three most recent (i2, i3, i4) never come back.
        assert not {"i2", "i3", "i4"} & set(answers[kind][0][0])
        embedding = model.signatures["query_embedding"](
            user_id=tf.constant(["u1"]), history=tf.constant([["i1"]]))
        assert embedding["embedding"].shape == (1, _width(Towers(towers_dir)))
        example = tf.train.Example()
        example.features.feature["user_id"].bytes_list.value.append(b"u2")
        from_examples = model.signatures["serve_tf_examples"](
            examples=tf.constant([example.SerializeToString()]))
        np.testing.assert_array_equal(from_examples["item_ids"].numpy()[0],
                                      out["item_ids"].numpy()[1])
    np.testing.assert_array_equal(answers["scann"][0], answers["brute_force"][0])
    np.testing.assert_allclose(answers["scann"][1], answers["brute_force"][1], rtol=1e-5)
    with open(os.path.join(towers_exports["scann"][0], "assets.extra",
                           "retrieval_export.json")) as f:
        assert json.load(f) == towers_exports["scann"][1]



@pytest.mark.parametrize("kind", serving_export.EXPORT_KINDS)
def test_export_runs_like_tf_serving_loads_it(towers_exports, kind):
    export_dir, _ = towers_exports[kind]
    eager = tf.saved_model.load(export_dir).signatures["serving_default"](
        user_id=tf.constant(["u2"]), history=tf.constant([["", "i1", "i2", "i3", "i4"]]))
    answer = graph_mode.run_serving_default(
        export_dir, kind, {"user_id": ["u2"], "history": [["", "i1", "i2", "i3", "i4"]]})
    assert answer["scann_imported"] is (kind == "scann")
    assert answer["item_ids"] == eager["item_ids"].numpy().astype(str).tolist()
