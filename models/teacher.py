"""Teacher-guided retrieval (Recallnet-style): a ranking model guides the query tower.

A two-tower model can only score by a dot product; a ranking model over
(user, item) can learn more, but cannot search a catalogue. Here a small
ranking model, the *teacher*, is trained beside the towers and scores the
query tower's output (the retrieval key) as if it were an item: a key the
teacher would rank high for this user is a good key. Training-only: nothing
of it is exported (`models/towers_export.py` saves the towers alone).

Pieces (all on by `model.teacher.enabled`, see docs/model.md):

  * `TeacherRanker`: logit = MLP([u, v, (u A) * v]) over the user
    representation u (the query tower's pooled inputs, `QueryTower.representation`)
    and an item representation v (a candidate tower embedding). The
    elementwise term gives the MLP the user-item interaction directly: plain
    MLPs learn a dot product poorly (Rendle et al., RecSys 2020).
  * Teacher loss (`teacher_bce_loss`): sigmoid cross-entropy, the clicked
    item positive and `model.teacher.negatives` other candidates of the batch
    negative, accidental hits (a negative that is the clicked item) left out.
    Its inputs are gradient-stopped: it trains the teacher and nothing else.
  * Guidance (`guidance_loss`): `-log sigmoid(teacher(u, key))` with the
    teacher's weights (and u) gradient-stopped, so it moves only the query tower.
  * Similarity reward (`similarity_reward`): `-cos(key, stop_gradient(c+))`,
    c+ the clicked item's embedding. Cosine, not the dot product: the dot
    product is unbounded and would reward growing the key's norm.
  * Optional discriminator (`Discriminator`, `discriminator_loss`): an MLP
    telling clicked items' embeddings (real) from keys (fake), on
    gradient-stopped inputs; the query tower gets `-log D(key)` with D's
    weights frozen (`adversarial_loss`), which keeps keys inside the item
    embedding distribution, where the teacher's scores mean something.
  * Schedule: the teacher and discriminator train from the first step, the
    three query-tower terms are multiplied by `TeacherGuidance.active`
    (0 or 1), which `GuidanceSchedule` sets to 1 from epoch
    `model.teacher.pretrain_epochs` on, so keys are only scored by a teacher that
    already ranks.

Every loss is a sum over the batch's queries, each weighted by its sample
weight, like the retrieval losses in `models/losses`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.early_stopping import query_batch  # noqa: E402
from models.losses import common  # noqa: E402
from models.towers.candidate import corpus_embeddings  # noqa: E402

# Teacher AUC on eval clicks: clicks scored and sampled items per click.
AUC_EXAMPLES = 5000
AUC_NEGATIVES = 100


def teacher_bce_loss(positive_logits: tf.Tensor, negative_logits: tf.Tensor,
                     valid: tf.Tensor | None = None,
                     sample_weight: tf.Tensor | None = None) -> tf.Tensor:
    """Per query `-log s(t+) - sum_j valid_j log(1 - s(t-_j))`, summed.

    Args:
      positive_logits: `[B]` teacher logits of the clicked items.
      negative_logits: `[B, k]` teacher logits of the query's negatives.
      valid: `[B, k]` 1 for a real negative, 0 for an accidental hit.
      sample_weight: `[B]`.
    """
    positive = tf.math.softplus(-positive_logits)
    negative = tf.math.softplus(negative_logits)
    if valid is not None:
        negative *= valid
    return common.weighted_sum(positive + tf.reduce_sum(negative, axis=1), sample_weight)


def guidance_loss(key_logits: tf.Tensor, sample_weight: tf.Tensor | None = None) -> tf.Tensor:
    """`-log sigmoid(teacher(u, key))` per query, summed."""
    return common.weighted_sum(tf.math.softplus(-key_logits), sample_weight)


def similarity_reward(key: tf.Tensor, clicked: tf.Tensor,
                      sample_weight: tf.Tensor | None = None) -> tf.Tensor:
    """`-cos(key, stop_gradient(clicked))` per query, summed (a loss: lower is better)."""
    cosine = tf.reduce_sum(tf.math.l2_normalize(key, axis=-1) *
                           tf.math.l2_normalize(tf.stop_gradient(clicked), axis=-1), axis=-1)
    return common.weighted_sum(-cosine, sample_weight)


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor,
                       sample_weight: tf.Tensor | None = None) -> tf.Tensor:
    """Per query `-log D(real) - log(1 - D(fake))`, summed."""
    return common.weighted_sum(tf.math.softplus(-real_logits) + tf.math.softplus(fake_logits),
                         sample_weight)


def adversarial_loss(fake_logits: tf.Tensor, sample_weight: tf.Tensor | None = None) -> tf.Tensor:
    """`-log D(key)` per query, summed: the query tower's side of the game."""
    return common.weighted_sum(tf.math.softplus(-fake_logits), sample_weight)


class MLP(tf.keras.layers.Layer):
    """ReLU MLP to one logit whose weights can be read gradient-stopped (`frozen`).

    Weights are created at construction (the input width is given), so the
    optimizer and checkpoints see them before the first step.
    """

    def __init__(self, input_dim: int, hidden_layers: tuple, seed: int, **kwargs):
        super().__init__(**kwargs)
        widths = [int(input_dim), *hidden_layers, 1]
        self.kernels, self.biases = [], []
        for n, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            self.kernels.append(self.add_weight(
                name=f"kernel_{n}", shape=(fan_in, fan_out),
                initializer=tf.keras.initializers.GlorotUniform(seed=seed + n)))
            self.biases.append(self.add_weight(name=f"bias_{n}", shape=(fan_out,),
                                               initializer="zeros"))

    def call(self, x: tf.Tensor, frozen: bool = False) -> tf.Tensor:
        """`[..., input_dim]` -> logits `[...]`."""
        last = len(self.kernels) - 1
        for n, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            if frozen:
                kernel, bias = tf.stop_gradient(kernel), tf.stop_gradient(bias)
            x = tf.tensordot(x, kernel, axes=1) + bias
            if n < last:
                x = tf.nn.relu(x)
        return x[..., 0]


class TeacherRanker(tf.keras.layers.Layer):
    """Click logit of (user representation `[B, U]`, item `[B, D]` or `[B, K, D]`)."""

    def __init__(self, user_dim: int, item_dim: int, hidden_layers: tuple, seed: int,
                 **kwargs):
        super().__init__(**kwargs)
        self.interaction = self.add_weight(
            name="interaction", shape=(user_dim, item_dim),
            initializer=tf.keras.initializers.GlorotUniform(seed=seed))
        self.mlp = MLP(user_dim + 2 * item_dim, hidden_layers, seed + 1, name="mlp")

    def call(self, user: tf.Tensor, item: tf.Tensor, frozen: bool = False) -> tf.Tensor:
        interaction = tf.stop_gradient(self.interaction) if frozen else self.interaction
        mapped = tf.matmul(user, interaction)  # [B, D]
        if item.shape.rank == 3:
            shape = tf.concat([tf.shape(item)[:2], tf.shape(user)[-1:]], axis=0)
            user = tf.broadcast_to(user[:, None, :], shape)
            mapped = mapped[:, None, :]
        return self.mlp(tf.concat([user, item, mapped * item], axis=-1), frozen=frozen)


class TeacherGuidance(tf.keras.layers.Layer):
    """Teacher, optional discriminator, the guidance switch and all teacher-side losses."""

    def __init__(self, user_dim: int, config, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings = config.teacher
        dim = config.towers.embedding_dim
        seed = config.training.seed
        self.teacher = TeacherRanker(user_dim, dim, settings.hidden_layers, seed + 100,
                                     name="teacher")
        self.discriminator = (MLP(dim, settings.hidden_layers, seed + 200,
                                  name="discriminator")
                              if settings.discriminator else None)
        # 1.0 once the teacher is pre-trained (GuidanceSchedule); multiplies the
        # query tower's guidance terms.
        self.active = self.add_weight(
            name="guidance_active", shape=(), trainable=False,
            initializer=tf.keras.initializers.Constant(
                1.0 if settings.pretrain_epochs == 0 else 0.0),
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def terms(self, user: tf.Tensor, key: tf.Tensor, candidates: tf.Tensor,
              positive_ids: tf.Tensor, candidate_ids: tf.Tensor,
              sample_weight: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """Every teacher-side loss term, unweighted and ungated.

        Args:
          user: `[B, U]` user representations (gradient is stopped here).
          key: `[B, D]` query tower outputs.
          candidates: `[N, D]` candidate embeddings, row i < B query i's
            clicked item (gradient is stopped here).
          positive_ids, candidate_ids: `[B]`, `[N]` item ids (accidental hits).
          sample_weight: `[B]` or None.

        Returns:
          `teacher_bce`, `teacher_key` (guidance), `similarity`, and with the
          discriminator `discriminator` and `adversarial`.
        """
        user = tf.stop_gradient(user)
        candidates = tf.stop_gradient(candidates)
        batch = tf.shape(key)[0]
        clicked = candidates[:batch]
        columns = common.pair_negatives(batch, tf.shape(candidates)[0],
                                        self.settings.negatives)  # [B, k]
        hits = tf.gather(tf.cast(common.accidental_hits(positive_ids, candidate_ids),
                                 tf.float32), columns, batch_dims=1)
        out = {
            "teacher_bce": teacher_bce_loss(
                self.teacher(user, clicked), self.teacher(user, tf.gather(candidates, columns)),
                1.0 - hits, sample_weight),
            "teacher_key": guidance_loss(self.teacher(user, key, frozen=True), sample_weight),
            "similarity": similarity_reward(key, clicked, sample_weight),
        }
        if self.discriminator is not None:
            out["discriminator"] = discriminator_loss(
                self.discriminator(clicked), self.discriminator(tf.stop_gradient(key)),
                sample_weight)
            out["adversarial"] = adversarial_loss(self.discriminator(key, frozen=True),
                                                  sample_weight)
        return out

    def total(self, terms: dict[str, tf.Tensor]) -> tf.Tensor:
        """What is added to the retrieval loss: own losses + gated, weighted guidance."""
        settings = self.settings
        guidance = (settings.loss_weight * terms["teacher_key"]
                    + settings.similarity_weight * terms["similarity"])
        own = terms["teacher_bce"]
        if "discriminator" in terms:
            own += terms["discriminator"]
            guidance += settings.adversarial_weight * terms["adversarial"]
        return own + self.active * guidance


class GuidanceSchedule(tf.keras.callbacks.Callback):
    """Switches the guidance on at the start of epoch `pretrain_epochs` (0-based)."""

    def __init__(self, guidance: TeacherGuidance, pretrain_epochs: int):
        super().__init__()
        self.guidance = guidance
        self.pretrain_epochs = pretrain_epochs

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.guidance.active.assign(1.0 if epoch >= self.pretrain_epochs else 0.0)


def teacher_auc(model, dataset: tf.data.Dataset, item_ids: list[str], max_history: int,
                num_negatives: int = AUC_NEGATIVES, max_examples: int = AUC_EXAMPLES,
                seed: int = 0) -> float:
    """The teacher's AUC on clicks: clicked item vs items sampled uniformly from the corpus.

    For each click (up to `max_examples`) the teacher scores the clicked item
    and `num_negatives` sampled items (the clicked item and the click's
    history left out); AUC = share of (click, negative) pairs the clicked item
    wins, ties counting half. Clicks of items outside `item_ids` are skipped.

    Args:
      model: a `RetrievalModel` built with `model.teacher.enabled`.
      dataset: batches of parsed click examples (`models/data.py`).
      item_ids: the candidate corpus.
      max_history: history items the query tower sees (the most recent).
    """
    guidance = model.guidance
    candidates = corpus_embeddings(model.candidate_tower, item_ids)
    index = {item: n for n, item in enumerate(item_ids)}
    rng = np.random.default_rng(seed)
    wins, pairs, seen_examples = 0.0, 0.0, 0
    for batch in dataset:
        if seen_examples >= max_examples:
            break
        targets = np.array([index.get(i.decode(), -1) for i in batch[features.ITEM_ID].numpy()])
        keep = np.flatnonzero(targets >= 0)[:max_examples - seen_examples]
        if not len(keep):
            continue
        seen_examples += len(keep)
        batch = query_batch({name: tf.gather(value, keep) for name, value in batch.items()},
                            max_history)
        targets = targets[keep]
        history = [{index.get(i.decode(), -1) for i in row}
                   for row in batch[features.HISTORY].numpy()]
        negatives = rng.integers(0, len(item_ids), size=(len(keep), num_negatives))
        valid = np.array([[n != t and n not in h for n in row]
                          for row, t, h in zip(negatives, targets, history, strict=True)],
                         np.float64)
        user = model.query_tower.representation(batch)
        positive = guidance.teacher(user, tf.gather(candidates, targets)).numpy()
        negative = guidance.teacher(user, tf.gather(candidates, negatives)).numpy()
        wins += float((((positive[:, None] > negative) + 0.5 * (positive[:, None] == negative))
                       * valid).sum())
        pairs += float(valid.sum())
    if not pairs:
        raise ValueError("teacher AUC: no click of a corpus item in the eval examples")
    return wins / pairs
