"""Teacher-guided retrieval: each loss term by hand, where gradients go, the schedule, export.

Hand-computed case (`_tiny_guidance`): 1-d embeddings, a teacher with no
hidden layer whose logit is u * v (interaction a = 1, output weights
[0, 0, 1] on [u, v, (u a) v]) and a discriminator D(x) = 2x + 0.5.
Users u = (1, 2); candidates c = (1, -1, 2), ids (a, b, a): c0 is q0's
click, c1 q1's, and c2 is item a again, an accidental hit for q0; keys
(3, -1).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from clicklog.config import ConfigError
from models import features, teacher, vocab, warm_start
from models.losses import LOSSES
from models.losses.common import LossInputs
from models.retrieval import RetrievalModel
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import single_model_config, write_tiny_data


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


USER = tf.constant([[1.0], [2.0]])
CANDIDATES = tf.constant([[1.0], [-1.0], [2.0]])
IDS = tf.constant(["a", "b", "a"])
KEY = tf.constant([[3.0], [-1.0]])


def _tiny_guidance(training=None, **teacher_settings) -> teacher.TeacherGuidance:
    config = single_model_config(
        towers={"embedding_dim": 1}, training=training or {},
        teacher={"enabled": True, "hidden_layers": [], "negatives": 2, "discriminator": True,
                 **teacher_settings})
    guidance = teacher.TeacherGuidance(1, config)
    guidance.teacher.interaction.assign([[1.0]])
    guidance.teacher.mlp.kernels[0].assign([[0.0], [0.0], [1.0]])
    guidance.discriminator.kernels[0].assign([[2.0]])
    guidance.discriminator.biases[0].assign([0.5])
    return guidance


def _terms(guidance, sample_weight=None) -> dict:
    return {name: float(value) for name, value in guidance.terms(
        USER, KEY, CANDIDATES, IDS[:2], IDS, sample_weight).items()}


def test_teacher_bce_masks_accidental_hits():
    terms = _terms(_tiny_guidance())
    # q0 (u=1): positive c0 -> logit 1; negatives c1 (-1) and c2 (2, item a:
    # its own click, left out). q1 (u=2): positive c1 -> -2; negatives c2 (4), c0 (2).
    expected = (softplus(-1) + softplus(-1)) + (softplus(2) + softplus(4) + softplus(2))
    assert terms["teacher_bce"] == pytest.approx(expected, rel=1e-5)


def test_teacher_bce_function_with_weights():
    loss = teacher.teacher_bce_loss(tf.constant([0.0, 1.0]), tf.constant([[1.0, -1.0],
                                                                          [0.0, 3.0]]),
                                    valid=tf.constant([[1.0, 0.0], [1.0, 1.0]]),
                                    sample_weight=tf.constant([2.0, 0.5]))
    expected = 2 * (softplus(0) + softplus(1)) + 0.5 * (softplus(-1) + softplus(0) + softplus(3))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_guidance_scores_the_key_as_an_item():
    # Teacher logits of the keys: 1 * 3 = 3 and 2 * -1 = -2.
    assert _terms(_tiny_guidance())["teacher_key"] == pytest.approx(
        softplus(-3) + softplus(2), rel=1e-5)


def test_similarity_reward_is_minus_cosine():
    key = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    clicked = tf.constant([[1.0, 1.0], [3.0, 0.0]])
    loss = teacher.similarity_reward(key, clicked, tf.constant([2.0, 1.0]))
    assert float(loss) == pytest.approx(-2 / math.sqrt(2), rel=1e-6)
    # In the tiny case both keys point the way of their clicked item.
    assert _terms(_tiny_guidance())["similarity"] == pytest.approx(-2.0, rel=1e-6)


def test_discriminator_and_adversarial_terms():
    terms = _terms(_tiny_guidance())
    # D(real) on clicked c0, c1: 2.5, -1.5; D(fake) on keys 3, -1: 6.5, -1.5.
    assert terms["discriminator"] == pytest.approx(
        softplus(-2.5) + softplus(6.5) + softplus(1.5) + softplus(-1.5), rel=1e-5)
    assert terms["adversarial"] == pytest.approx(softplus(-6.5) + softplus(1.5), rel=1e-5)


def test_sample_weight_scales_every_term_per_query():
    guidance = _tiny_guidance()
    both = _terms(guidance, tf.constant([1.0, 0.0]))
    first = {name: float(value) for name, value in guidance.terms(
        USER[:1], KEY[:1], tf.gather(CANDIDATES, [0, 2]), IDS[:1],
        tf.gather(IDS, [0, 2])).items()}
    # Query 1 weighted 0 leaves query 0's terms; its negatives are c1, c2 there
    # and c2 here (c2 masked either way, so only c1 differs: it is absent here).
    assert both["teacher_key"] == pytest.approx(first["teacher_key"], rel=1e-6)
    assert both["teacher_bce"] == pytest.approx(first["teacher_bce"] + softplus(-1), rel=1e-5)


def test_total_gates_and_weights_the_guidance():
    guidance = _tiny_guidance(loss_weight=0.5, similarity_weight=2.0, adversarial_weight=3.0,
                              pretrain_epochs=1)
    terms = guidance.terms(USER, KEY, CANDIDATES, IDS[:2], IDS)
    values = {name: float(value) for name, value in terms.items()}
    own = values["teacher_bce"] + values["discriminator"]
    assert float(guidance.active) == 0.0  # not yet pre-trained
    assert float(guidance.total(terms)) == pytest.approx(own, rel=1e-6)
    guidance.active.assign(1.0)
    guided = own + 0.5 * values["teacher_key"] + 2.0 * values["similarity"] + \
        3.0 * values["adversarial"]
    assert float(guidance.total(terms)) == pytest.approx(guided, rel=1e-6)


def test_mlp_relu_layers_by_hand_and_on_pairs():
    mlp = teacher.MLP(2, (2,), seed=0)
    mlp.kernels[0].assign([[1.0, -1.0], [1.0, 1.0]])
    mlp.biases[0].assign([0.0, -1.0])
    mlp.kernels[1].assign([[1.0], [2.0]])
    mlp.biases[1].assign([0.5])
    # [1, 2] -> hidden relu([3, 0]) -> 3.5; [-2, 0] -> relu([-2, 1]) -> 2.5.
    np.testing.assert_allclose(mlp(tf.constant([[1.0, 2.0], [-2.0, 0.0]])).numpy(),
                               [3.5, 2.5], rtol=1e-6)
    assert mlp(tf.zeros([3, 4, 2])).shape == (3, 4)


def test_teacher_scores_pairs_like_single_items():
    ranker = teacher.TeacherRanker(3, 2, (4,), seed=1)
    rng = np.random.default_rng(0)
    user = tf.constant(rng.normal(size=(2, 3)), tf.float32)
    items = tf.constant(rng.normal(size=(2, 5, 2)), tf.float32)
    pairs = ranker(user, items).numpy()
    for k in range(5):
        np.testing.assert_allclose(pairs[:, k], ranker(user, items[:, k]).numpy(), rtol=1e-5)


def test_schedule_switches_guidance_on_after_pretraining():
    guidance = _tiny_guidance(training={"epochs": 4}, pretrain_epochs=2)
    schedule = teacher.GuidanceSchedule(guidance, 2)
    seen = []
    for epoch in range(4):
        schedule.on_epoch_begin(epoch)
        seen.append(float(guidance.active))
    assert seen == [0.0, 0.0, 1.0, 1.0]
    assert float(_tiny_guidance(pretrain_epochs=0).active) == 1.0


# --- the teacher inside the retrieval model -------------------------------

ITEMS = [f"i{n}" for n in range(12)]


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("teacher_vocab"))
    vocab.write_vocab(root, [(item, n + 1.0, 1.0) for n, item in enumerate(ITEMS)],
                      [("u0", 3.0), ("u1", 3.0)], {"max_timestamp": 100, "min_timestamp": 0})
    return root


def _batch() -> dict:
    return {features.USER_ID: tf.constant(["u0", "u1", "u0", "u1"]),
            features.ITEM_ID: tf.constant(["i1", "i2", "i3", "i1"]),
            features.TIMESTAMP: tf.constant([90, 95, 99, 100], tf.int64),
            features.WEIGHT: tf.ones([4]),
            features.HISTORY: tf.constant([["i4", "i5", ""], ["i6", "", ""],
                                           ["i4", "i7", "i8"], ["i2", "i9", ""]])}


def _model(vocab_dir, **teacher_settings) -> RetrievalModel:
    config = single_model_config(
        towers={"embedding_dim": 4},
        teacher={"enabled": True, "discriminator": True, "hidden_layers": [8], "negatives": 3,
                 **teacher_settings})
    model = RetrievalModel(vocab.read_vocab(vocab_dir), config)
    model.candidate_tower(tf.constant(ITEMS[:1]))
    return model


def _reached(tape, loss, variables) -> list[bool]:
    """Per variable: did `loss` send it a non-zero gradient?"""
    gradients = tape.gradient(loss, variables)
    return [g is not None and float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) > 0
            for g in gradients]


def test_each_term_trains_only_its_own_side(vocab_dir):
    model = _model(vocab_dir)
    batch = _batch()
    guidance = model.guidance
    tower_variables = {"query": model.query_tower.trainable_variables,
                       "candidate": model.candidate_tower.trainable_variables,
                       "teacher": guidance.teacher.trainable_variables,
                       "discriminator": guidance.discriminator.trainable_variables}
    assert all(tower_variables.values())
    with tf.GradientTape(persistent=True) as tape:
        user = model.query_tower.representation(batch)
        key = model.query_tower.embed(user)
        ids = batch[features.ITEM_ID]
        terms = guidance.terms(user, key, model.candidate_tower(ids), ids, ids)
    reached = {term: {side: any(_reached(tape, value, variables))
                      for side, variables in tower_variables.items()}
               for term, value in terms.items()}
    assert reached["teacher_bce"] == {"query": False, "candidate": False, "teacher": True,
                                      "discriminator": False}
    assert reached["discriminator"] == {"query": False, "candidate": False, "teacher": False,
                                        "discriminator": True}
    for term in ("teacher_key", "similarity", "adversarial"):
        assert reached[term] == {"query": True, "candidate": False, "teacher": False,
                                 "discriminator": False}, term
    # Every teacher weight learns from the teacher loss.
    assert all(_reached(tape, terms["teacher_bce"], tower_variables["teacher"]))


def test_guidance_off_before_pretraining_adds_nothing_to_the_towers(vocab_dir):
    model = _model(vocab_dir, loss_weight=1.0, similarity_weight=1.0, adversarial_weight=1.0)
    batch = _batch()
    towers = model.query_tower.trainable_variables + model.candidate_tower.trainable_variables

    def losses():
        with tf.GradientTape(persistent=True) as tape:
            total = model.compute_loss(batch, training=True)
            query = model.query_tower(batch)
            ids = batch[features.ITEM_ID]
            retrieval = LOSSES["softmax"](LossInputs(
                query=query, candidates=model.candidate_tower(ids), positive_ids=ids,
                candidate_ids=ids, sample_weight=model.recency_weight(batch[features.TIMESTAMP]),
                log_q=model.sampler.log_q(ids, tf.shape(ids)[0])), model.config)
        return tape, total, retrieval

    assert float(model.guidance.active) == 0.0  # teacher_pretrain_epochs=1 by default
    tape, total, retrieval = losses()
    for ours, plain in zip(tape.gradient(total, towers), tape.gradient(retrieval, towers),
                           strict=True):
        np.testing.assert_allclose(tf.convert_to_tensor(ours).numpy(),
                                   tf.convert_to_tensor(plain).numpy(), rtol=1e-5, atol=1e-7)
    model.guidance.active.assign(1.0)
    tape, total, retrieval = losses()
    differs = [not np.allclose(tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy())
               for a, b in zip(tape.gradient(total, model.query_tower.trainable_variables),
                               tape.gradient(retrieval, model.query_tower.trainable_variables),
                               strict=True)]
    assert any(differs)


def test_guidance_leaves_the_default_model_alone(vocab_dir):
    model = RetrievalModel(vocab.read_vocab(vocab_dir),
                           single_model_config(towers={"embedding_dim": 4}))
    assert model.guidance is None
    names = {v.name for v in model.trainable_variables}
    assert not any("guidance" in name for name in names)


@pytest.mark.parametrize("values, message", [
    ({"teacher": {"enabled": 1}}, "model.teacher.enabled=1: expected true or false"),
    ({"teacher": {"hidden_layers": [0]}},
     "model.teacher.hidden_layers=[0]: expected a list of integers >= 1"),
    ({"teacher": {"negatives": 0}}, "model.teacher.negatives=0: expected an integer >= 1"),
    ({"teacher": {"pretrain_epochs": -1}},
     "model.teacher.pretrain_epochs=-1: expected an integer >= 0"),
    ({"teacher": {"loss_weight": -0.5}}, "model.teacher.loss_weight=-0.5: expected a number >= 0"),
    ({"teacher": {"discriminator": True}},
     "model.teacher.discriminator=True: expected false unless model.teacher.enabled is true"),
    ({"teacher": {"enabled": True, "pretrain_epochs": 2}, "training": {"epochs": 2}},
     "model.teacher.pretrain_epochs=2: expected fewer than model.training.epochs=2"),
    ({"teacher": {"enabled": True, "loss_weight": 0.0, "similarity_weight": 0.0}},
     "expected a weight > 0 among loss_weight, similarity_weight"),
])
def test_config_rejects_bad_teacher_values(values, message):
    with pytest.raises(ConfigError) as error:
        single_model_config(**values)
    assert message in str(error.value)


def test_config_turns_hidden_layers_into_a_tuple():
    config = single_model_config(teacher={"enabled": True, "hidden_layers": [16, 8]})
    assert config.teacher.hidden_layers == (16, 8)


# --- through the Trainer ------------------------------------------------------


def _checkpoint_keys(directory: str) -> set[str]:
    prefix = os.path.join(directory, "variables", "variables")
    return {name for name, _ in tf.train.list_variables(prefix)}


def test_trainer_option_trains_and_exports_only_the_towers(tmp_path):
    data = write_tiny_data(tmp_path)
    base = {"towers": {"embedding_dim": 8}, "training": {"batch_size": 16, "epochs": 2}}
    guided = single_model_config(teacher={"enabled": True, "discriminator": True}, **base)
    # (The teacher's AUC, logged with eval examples, is checked in test_quality.py.)
    logs = train(data["train"], data["vocab"], guided, str(tmp_path / "guided"))
    for name in ("loss", "teacher_bce", "teacher_key", "similarity", "discriminator",
                 "adversarial"):
        assert np.isfinite(logs[name]), (name, logs)
    train(data["train"], data["vocab"], single_model_config(**base), str(tmp_path / "plain"))
    # Same SavedModel variables and warm-start weights as without the teacher.
    assert _checkpoint_keys(str(tmp_path / "guided")) == _checkpoint_keys(str(tmp_path / "plain"))
    assert not any("teacher" in key or "discriminator" in key or "guidance" in key
                   for key in _checkpoint_keys(str(tmp_path / "guided")))

    def npz_keys(name):
        return set(np.load(tmp_path / name / warm_start.WEIGHTS_FILE).files)

    assert npz_keys("guided") == npz_keys("plain")
    towers = Towers(str(tmp_path / "guided"))
    assert towers.config.teacher.enabled
    assert towers.query_embeddings(["u1"], [["i1", "i2"]]).shape == (1, 8)
