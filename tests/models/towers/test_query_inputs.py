"""Query-side features: recency and declared user/context features.

Seeded synthetic clicks where the clicked item's category is decided by a
query feature alone (the history is drawn at random, so it carries nothing):
a model that takes the feature must beat the same model without it, trained
in the same test, by a wide margin. Also the feature plumbing: parsing
defaults, the recency buckets, and the export signatures taking the
features as named inputs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from clicklog.formats import Click
from components.click_example_gen.click_features import ClickFeatures
from components.click_example_gen.examples import to_example
from models import features, serving_export, vocab
from models.config import ModelConfig
from models.data import make_dataset
from models.towers.inputs import query_input_specs
from models.towers.inputs.recency import RECENCY_BOUNDARIES, recency_bucket
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import merged, single_model_config
from tests.models import graph_mode

CATEGORIES = 3
ITEMS_PER_CATEGORY = 10
DEVICES = ("web", "phone", "tv")
K = ITEMS_PER_CATEGORY
# The category each recency regime leads to: first click, within ten minutes
# of the previous one, more than a day after it.
RECENCY_GAPS = (features.NO_PREVIOUS_CLICK, 120, 3 * 86400)


def _item(category: int, n: int) -> str:
    return f"c{category}_{n}"


def _write(root, name: str, seed: int, users: int) -> tuple[str, list[dict]]:
    """Clicks of `users` users; returns the file and the per-click records."""
    rng = np.random.default_rng(seed)
    all_items = [_item(c, n) for c in range(CATEGORIES) for n in range(ITEMS_PER_CATEGORY)]
    path = str(root / f"{name}.tfrecord.gz")
    records = []
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for user in range(users):
            category = int(rng.integers(CATEGORIES))
            record = {
                "user": f"{name}{user}",
                "item": _item(category, int(rng.integers(ITEMS_PER_CATEGORY))),
                "history": [str(i) for i in rng.choice(all_items, size=3)],
                "device": DEVICES[category],
                "since": RECENCY_GAPS[category],
                "timestamp": 1_600_000_000 + user,
            }
            records.append(record)
            click = Click(record["user"], record["item"], record["timestamp"],
                          features=(("device", record["device"]),))
            writer.write(to_example(click, ClickFeatures(tuple(record["history"]),
                                                         record["since"])))
    return path, records


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("query_features")
    train_path, train_records = _write(root, "train", seed=3, users=3000)
    eval_path, eval_records = _write(root, "eval", seed=4, users=300)
    counts: dict[str, int] = {}
    for record in train_records:
        counts[record["item"]] = counts.get(record["item"], 0) + 1
    vocab.write_vocab(str(root / "vocab"), [(i, c, c) for i, c in counts.items()],
                      [(r["user"], 1) for r in train_records],
                      {"max_timestamp": max(r["timestamp"] for r in train_records),
                       "min_timestamp": min(r["timestamp"] for r in train_records)})
    return {"root": root, "train": train_path, "eval": eval_path, "eval_records": eval_records,
            "vocab": str(root / "vocab")}


def _config(**sections) -> ModelConfig:
    base = {"towers": {"embedding_dim": 16}, "prior": {"grid": []},
            "training": {"batch_size": 128, "epochs": 4, "learning_rate": 0.1,
                         "recency_half_life_days": 0.0}}
    return single_model_config(**merged(base, sections))


@pytest.fixture(scope="module")
def without_features(data, tmp_path_factory):
    """The same model without any query input beyond the history."""
    path = str(tmp_path_factory.mktemp("without") / "towers")
    train(data["train"], data["vocab"], _config(), path)
    return path


def _hit_rate(towers_dir: str, records: list[dict]) -> float:
    towers = Towers(towers_dir)
    extra = {}
    for spec in towers.query_specs[2:]:
        key = "since" if spec.name == features.SECONDS_SINCE_PREVIOUS_CLICK else spec.name
        extra[spec.name] = [r[key] for r in records]
    query = towers.query_embeddings([r["user"] for r in records],
                                    [r["history"] for r in records], extra)
    scores = tf.matmul(query, towers.candidate_embeddings(), transpose_b=True).numpy()
    top = np.argsort(-scores, axis=1)[:, :K]
    index = {item: n for n, item in enumerate(towers.vocab.item_ids)}
    return float(np.mean([index[r["item"]] in row for r, row in zip(records, top, strict=True)]))


@pytest.mark.parametrize("towers", [
    {"query_features": {"device": "string"}},
    {"recency": True},
], ids=["context_feature", "recency"])
def test_query_feature_carries_the_signal_the_history_lacks(data, towers, without_features,
                                                            tmp_path):
    with_feature = str(tmp_path / "with")
    train(data["train"], data["vocab"], _config(towers=towers), with_feature)
    got = _hit_rate(with_feature, data["eval_records"])
    baseline = _hit_rate(without_features, data["eval_records"])
    # The feature names the category (K = its size): near 1.0 vs about 1/3.
    print(f"hit@{K} with the feature {got:.3f}, without {baseline:.3f}")
    assert got >= baseline + 0.3, (got, baseline)
    assert got >= 0.8, got


def test_examples_without_the_features_parse_to_their_defaults(data, tmp_path):
    path = str(tmp_path / "bare.tfrecord.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        writer.write(to_example(Click("u", "i", 5), ("a",)))
    config = _config(towers={"recency": True,
                             "query_features": {"device": "string", "age": "int",
                                                "score": "float", "tags": "string_list"}})
    specs = query_input_specs(config)
    assert [s.name for s in specs] == ["user_id", "history", "seconds_since_previous_click",
                                       "age", "device", "score", "tags"]
    batch = next(iter(make_dataset(path, 4, 3, shuffle=False, extra_specs=specs[2:])))
    assert batch["seconds_since_previous_click"].numpy().tolist() == [-1]
    assert batch["device"].numpy().tolist() == [b""]
    assert batch["age"].numpy().tolist() == [0]
    assert batch["score"].numpy().tolist() == [0.0]
    assert batch["tags"].shape == (1, 0)
    # The features ClickExampleGen wrote are read back as written.
    batch = next(iter(make_dataset(data["eval"], 2, 3, shuffle=False, extra_specs=specs[2:4])))
    records = data["eval_records"][:2]
    assert batch["seconds_since_previous_click"].numpy().tolist() == [r["since"] for r in records]


def test_recency_buckets_follow_the_boundaries():
    seconds = tf.constant([-1, 0, 59, 60, 3599, 3600, 86400, 365 * 86400, 10**9], tf.int64)
    assert recency_bucket(seconds).numpy().tolist() == [0, 1, 1, 2, 3, 4, 6, 11, 11]
    assert len(RECENCY_BOUNDARIES) + 1 == 12


def test_exports_take_the_features_as_named_inputs(data, tmp_path):
    config = _config(towers={"recency": True, "query_features": {"device": "string"}},
                     training={"epochs": 1}, export={"top_k": 5, "exclude_history": 1})
    towers_dir = str(tmp_path / "towers")
    train(data["train"], data["vocab"], config, towers_dir)
    towers = Towers(towers_dir)
    with pytest.raises(ValueError, match=r"missing \['device'\]"):
        towers.query_embeddings(["u"], [["c0_1"]], {"seconds_since_previous_click": [5]})
    record = data["eval_records"][0]
    request = {"user_id": tf.constant([record["user"]]),
               "history": tf.constant([record["history"]]),
               "seconds_since_previous_click": tf.constant([record["since"]], tf.int64),
               "device": tf.constant([record["device"]])}
    for kind in serving_export.EXPORT_KINDS:
        metadata = serving_export.export(towers_dir, str(tmp_path / kind), kind)
        assert metadata["inputs"] == {"user_id": "string [B]", "history": "string [B, L]",
                                      "seconds_since_previous_click": "int64 [B]",
                                      "device": "string [B]"}
        loaded = tf.saved_model.load(str(tmp_path / kind))
        answer = loaded.signatures["serving_default"](**request)
        # serve_tf_examples reads the same features from the example.
        example = to_example(Click(record["user"], "ignored", 0,
                                   features=(("device", record["device"]),)),
                             ClickFeatures(tuple(record["history"]), record["since"]))
        from_example = loaded.signatures["serve_tf_examples"](examples=tf.constant([example]))
        assert from_example["item_ids"].numpy().tolist() == answer["item_ids"].numpy().tolist()
        # Another device changes the query, hence the scores.
        other = dict(request, device=tf.constant([DEVICES[(DEVICES.index(record["device"]) + 1)
                                                          % len(DEVICES)]]))
        assert not np.allclose(loaded.signatures["serving_default"](**other)["scores"].numpy(),
                               answer["scores"].numpy())
        with pytest.raises(TypeError):  # a signature input left out
            loaded.signatures["serving_default"](user_id=request["user_id"],
                                                 history=request["history"])
        # As TF Serving runs it: graph mode, inputs fed by tensor name.
        feeds = {name: value.numpy().tolist() for name, value in request.items()}
        feeds = json.loads(json.dumps(feeds, default=lambda b: b.decode()))
        graph = graph_mode.run_serving_default(str(tmp_path / kind), kind, feeds)
        assert graph["item_ids"] == answer["item_ids"].numpy().astype(str).tolist()
        assert graph["scann_imported"] is (kind == "scann")
