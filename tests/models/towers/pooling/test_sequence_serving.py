"""A tiny model with the self-attention history pooling, trained (with
history dropout) on the tiny data, saved as towers and exported: the serving
contract is unchanged, the served top K is the brute-force top K of the
query embedding (most recent history items excluded), the history's order
reaches the served answer, and the export runs as TF Serving runs it."""

import numpy as np
import pytest
import tensorflow as tf

from models import serving_export
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import single_model_config, write_tiny_data
from tests.models import graph_mode

TOP_K, EXCLUDE = 5, 3
HISTORIES = [["i1", "i2", "i3", "i4"], ["i4", "i3", "i2", "i1"], ["i7", "", "", ""],
             ["", "", "", ""]]


@pytest.fixture(scope="module")
def towers_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("self_attention")
    data = write_tiny_data(root)
    config = single_model_config(
        towers={"embedding_dim": 8}, training={"batch_size": 16, "epochs": 2},
        history={"pooling": "self_attention", "dropout": 0.3, "sequence_heads": 2},
        export={"top_k": TOP_K, "exclude_history": EXCLUDE})
    logs = train(data["train"], data["vocab"], config, str(root / "towers"))
    assert np.isfinite(logs["loss"])
    return str(root / "towers")


def _brute_force_top_k(towers: Towers, users, histories) -> list[list[str]]:
    query = towers.query_embeddings(users, histories).numpy()
    scores = query @ towers.candidate_embeddings().numpy().T
    item_ids = towers.vocab.item_ids
    answers = []
    for row, history in zip(scores, histories, strict=True):
        seen = [item for item in history if item][-EXCLUDE:]
        row[[item_ids.index(item) for item in seen]] = -np.inf
        answers.append([item_ids[n] for n in np.argsort(-row, kind="stable")[:TOP_K]])
    return answers


def test_towers_keep_the_contract_and_read_the_order(towers_dir):
    towers = Towers(towers_dir)
    assert towers.config.history.pooling == "self_attention"
    assert [spec.name for spec in towers.query_specs] == ["user_id", "history"]
    query = towers.query_embeddings(["u1"] * 4, HISTORIES).numpy()
    assert query.shape == (4, 8)
    # The same items in reverse order: another query.
    assert np.abs(query[0] - query[1]).max() > 1e-4
    # Serving is deterministic (dropout is training only) and ignores padding.
    np.testing.assert_array_equal(query, towers.query_embeddings(["u1"] * 4, HISTORIES).numpy())
    np.testing.assert_allclose(towers.query_embeddings(["u1"], [["i7"]]).numpy()[0], query[2],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", serving_export.EXPORT_KINDS)
def test_served_top_k_is_the_brute_force_top_k(towers_dir, tmp_path, kind):
    towers = Towers(towers_dir)
    serving_export.export(towers_dir, str(tmp_path / kind), kind)
    if kind == "scann":
        from scann.scann_ops.py import scann_ops  # noqa: F401
    model = tf.saved_model.load(str(tmp_path / kind))
    users = ["u1"] * len(HISTORIES)
    out = model.signatures["serving_default"](user_id=tf.constant(users),
                                              history=tf.constant(HISTORIES))
    served = out["item_ids"].numpy().astype(str).tolist()
    assert served == _brute_force_top_k(towers, users, HISTORIES)
    assert served[0] != served[1]  # the order reaches the answer
    embedding = model.signatures["query_embedding"](user_id=tf.constant(users),
                                                    history=tf.constant(HISTORIES))
    np.testing.assert_allclose(embedding["embedding"].numpy(),
                               towers.query_embeddings(users, HISTORIES).numpy(), rtol=1e-5)
    request = {"user_id": ["u2"], "history": [["", "i1", "i2", "i3", "i4"]]}
    answer = graph_mode.run_serving_default(str(tmp_path / kind), kind, request)
    assert answer["item_ids"] == _brute_force_top_k(towers, ["u2"], [["i1", "i2", "i3", "i4"]])
