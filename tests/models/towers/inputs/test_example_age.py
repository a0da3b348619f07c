"""YouTube's example age: learnt in training, set to the serving age at serving.

Seeded synthetic clicks whose popularity drifts: over the training window the
clicks move from an old set of items to a new one, and the eval clicks (at
the window's end) go to the new set. Histories are empty and the other
time-aware parts (recency weighting, the trending prior, the popularity
input) are off, so the only way to rank the new items first is the example
age: the model with it must beat the same model without it, trained in the
same test, by a wide margin. Also: the serving age, the parsing default and
the export's named input.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from clicklog.formats import Click
from components.click_example_gen.examples import to_example
from models import features, serving_export, vocab
from models.data import make_dataset
from models.towers.inputs import query_input_specs
from models.towers.inputs.example_age import age_features
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import merged, single_model_config

START = 1_600_000_000
DAYS = 60
ITEMS = 20  # o0..o9 old, n0..n9 new
K = 10


def _item(new: bool, rng) -> str:
    # Uniform inside each set: only the set matters.
    return f"{'n' if new else 'o'}{int(rng.integers(ITEMS // 2))}"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("example_age")
    rng = np.random.default_rng(5)
    span = DAYS * 86400
    times = np.sort(rng.integers(0, span, size=6000))
    counts: dict[str, int] = {}
    with tf.io.TFRecordWriter(str(root / "train.tfrecord.gz"), options="GZIP") as writer:
        for n, offset in enumerate(times):
            # The share of new items grows from 0 to 1 over the window.
            item = _item(rng.random() < offset / span, rng)
            counts[item] = counts.get(item, 0) + 1
            writer.write(to_example(Click(f"u{n}", item, START + int(offset)), ()))
    vocab.write_vocab(str(root / "vocab"), [(i, c, c) for i, c in counts.items()],
                      [("u0", 1)], {"max_timestamp": START + int(times[-1]),
                                    "min_timestamp": START + int(times[0])})
    targets = [_item(True, rng) for _ in range(500)]
    return {"train": str(root / "train.tfrecord.gz"), "vocab": str(root / "vocab"),
            "targets": targets}


def _config(**towers):
    return single_model_config(**merged(
        {"towers": {"embedding_dim": 16, "popularity": False},
         "prior": {"grid": [], "in_training": False},
         "training": {"batch_size": 256, "epochs": 4, "learning_rate": 0.1,
                      "recency_half_life_days": 0.0}},
        {"towers": towers}))


def _hit_rate(towers_dir: str, targets: list[str], age: int = -1) -> float:
    towers = Towers(towers_dir)
    extra = {spec.name: [age] * len(targets) for spec in towers.query_specs[2:]}
    query = towers.query_embeddings(["u"] * len(targets), [[""]] * len(targets), extra)
    scores = tf.matmul(query, towers.candidate_embeddings(), transpose_b=True).numpy()
    top = {towers.vocab.item_ids[n] for n in np.argsort(-scores[0])[:K]}
    return float(np.mean([t in top for t in targets]))


def test_example_age_ranks_what_is_popular_at_the_end_of_the_log(data, tmp_path):
    train(data["train"], data["vocab"], _config(example_age=True), str(tmp_path / "with"))
    train(data["train"], data["vocab"], _config(), str(tmp_path / "without"))
    got = _hit_rate(str(tmp_path / "with"), data["targets"])
    baseline = _hit_rate(str(tmp_path / "without"), data["targets"])
    # The top 10 of all 20 items: the new set with the age, a mix without
    # (both sets have about as many training clicks).
    print(f"hit@{K} on end-of-log clicks: example age {got:.3f}, without {baseline:.3f}")
    assert got >= baseline + 0.2, (got, baseline)
    # Asked at the start of the window (60 days old), it ranks the old set.
    assert _hit_rate(str(tmp_path / "with"), data["targets"], age=DAYS * 86400) < got - 0.3


def test_a_negative_age_is_the_configured_serving_age():
    assert age_features(tf.constant([0, 86400 * 3650], tf.int64)).numpy().tolist() == [
        [0.0, 0.0, 0.0], pytest.approx([1.0, 1.0, 1.0])]
    specs = query_input_specs(_config(example_age=True, example_age_serving_seconds=86400))
    assert [s.name for s in specs] == ["user_id", "history", features.EXAMPLE_AGE]
    from models.towers.inputs.example_age import ExampleAgeInput
    layer = ExampleAgeInput(_config(example_age=True, example_age_serving_seconds=86400))
    got = layer({features.EXAMPLE_AGE: tf.constant([-1, 86400, 0], tf.int64)}).numpy()
    np.testing.assert_allclose(got[0], got[1])
    assert not np.allclose(got[0], got[2])


def test_examples_parse_the_missing_age_as_the_serving_age(data):
    specs = query_input_specs(_config(example_age=True))
    batch = next(iter(make_dataset(data["train"], 3, 2, shuffle=False, extra_specs=specs[2:])))
    assert batch[features.EXAMPLE_AGE].numpy().tolist() == [-1, -1, -1]


def test_exports_take_the_age_as_a_named_input(data, tmp_path):
    towers_dir = str(tmp_path / "towers")
    train(data["train"], data["vocab"], _config(example_age=True) .with_changes(
        training={"epochs": 1}, export={"top_k": 5, "exclude_history": 0}), towers_dir)
    for kind in serving_export.EXPORT_KINDS:
        metadata = serving_export.export(towers_dir, str(tmp_path / kind), kind)
        assert metadata["inputs"][features.EXAMPLE_AGE] == "int64 [B]"
        loaded = tf.saved_model.load(str(tmp_path / kind))
        request = {"user_id": tf.constant(["u"]), "history": tf.constant([[""]])}
        at_zero = loaded.signatures["serving_default"](
            **request, example_age_seconds=tf.constant([0], tf.int64))
        default = loaded.signatures["serving_default"](
            **request, example_age_seconds=tf.constant([-1], tf.int64))
        old = loaded.signatures["serving_default"](
            **request, example_age_seconds=tf.constant([DAYS * 86400], tf.int64))
        np.testing.assert_allclose(default["scores"].numpy(), at_zero["scores"].numpy())
        assert not np.allclose(old["scores"].numpy(), at_zero["scores"].numpy())
        # A tf.Example without the feature gets the serving age.
        example = to_example(Click("u", "ignored", 0), ())
        parsed = loaded.signatures["serve_tf_examples"](examples=tf.constant([example]))
        np.testing.assert_allclose(parsed["scores"].numpy(), at_zero["scores"].numpy())
