"""One short training run on tiny data, then both serving exports.

Checks the towers SavedModel contract and that the ScaNN export (one leaf on a
tiny catalogue, i.e. exact search) answers exactly like the brute-force one.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from clicklog.formats import Click
from components.ingestion import to_example
from models import serving_export, vocab
from models.hparams import HParams
from models.towers_export import Towers
from models.trainer import train

ITEMS = [f"i{n}" for n in range(30)]


@pytest.fixture(scope="module")
def towers_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
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
    hparams = HParams(embedding_dim=8, batch_size=16, epochs=1, serving_top_k=5,
                      serving_exclude_history=3, use_user_id=True)
    logs = train(path, str(root / "vocab"), hparams, str(root / "towers"))
    assert np.isfinite(logs["loss"])
    return str(root / "towers")


def test_towers_contract(towers_dir):
    towers = Towers(towers_dir)
    assert towers.hparams.embedding_dim == 8
    assert towers.candidate_embeddings().shape == (towers.vocab.num_items, 8)
    # Unknown user and items fall into OOV buckets; L may differ from max_history.
    query = towers.query_embeddings(["u1", "stranger"], [["i1", "", "nope"], ["", "", ""]])
    assert query.shape == (2, 8)


def test_scann_export_matches_brute_force_and_excludes_history(towers_dir, tmp_path):
    answers = {}
    for kind in serving_export.EXPORT_KINDS:
        metadata = serving_export.export(towers_dir, str(tmp_path / kind), kind)
        assert metadata["top_k"] == 5 and metadata["export"] == kind
        if kind == "scann":
            from scann.scann_ops.py import scann_ops  # noqa: F401
        model = tf.saved_model.load(str(tmp_path / kind))
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
        assert embedding["embedding"].shape == (1, 8)
        example = tf.train.Example()
        example.features.feature["user_id"].bytes_list.value.append(b"u2")
        from_examples = model.signatures["serve_tf_examples"](
            examples=tf.constant([example.SerializeToString()]))
        np.testing.assert_array_equal(from_examples["item_ids"].numpy()[0],
                                      out["item_ids"].numpy()[1])
    np.testing.assert_array_equal(answers["scann"][0], answers["brute_force"][0])
    np.testing.assert_allclose(answers["scann"][1], answers["brute_force"][1], rtol=1e-5)
    assert os.path.exists(tmp_path / "scann" / "assets.extra" / "retrieval_export.json")
