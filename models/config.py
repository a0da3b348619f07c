"""The model's configuration: a small tree of frozen, checked sections.

    model:
      towers:     embedding size, query MLP, similarity, the towers' inputs
      history:    how the query tower reads the user's recent items
      negatives:  mixed (sampled from the corpus), hard and impressed negatives
      loss:       which loss (`models/losses`), temperature, logQ correction
      prior:      the trending prior: served weight, its grid, in training
      ensemble:   seed ensemble size
      teacher:    teacher-guided retrieval (Recallnet-style, training only)
      training:   batch, epochs, optimiser, early stopping, warm start
      export:     the serving contract: top K, history exclusion, ScaNN

It crosses into the TFX Trainer as a plain dict (`custom_config`), is rebuilt
in `run_fn` with `parse(ModelConfig, ...)`, is saved beside the trained
towers, and its `export` section is the one source of K and of the history
exclusion for the serving exports, the evaluator and the training-time
hit-rate checks (early stopping, prior calibration). Every value is checked
as it enters (`clicklog.config`); docs/model.md documents each option.
"""

from __future__ import annotations

import dataclasses

from clicklog.config import Config, ConfigError, section, setting
from clicklog.schema import FEATURE_TYPES, RESERVED_FEATURES
from models.losses import LOSSES
from models.towers.pooling import POOLINGS

SIMILARITIES = ("dot", "cosine")
STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "parameter_server")
NEGATIVE_DISTRIBUTIONS = ("uniform", "popularity")
# Query feature types: the click log's (clicklog/schema.py), and `text`: a
# `string` click-log feature read as words (models/towers/text.py).
QUERY_FEATURE_TYPES = FEATURE_TYPES + ("text",)
# How text (catalogue `text` features, `text` query features) is embedded:
# `bag`, the mean of its hashed words; `dssm`, letter trigrams through a deep
# tower (models/towers/text_tower.py).
TEXT_TOWERS = ("bag", "dssm")
TEXT_ACTIVATIONS = ("tanh", "relu")


@dataclasses.dataclass(frozen=True)
class TowersConfig(Config):
    """Shape of the two towers and the inputs beyond item ids and history."""

    KEY = "model.towers"
    embedding_dim: int = setting(64, min=1)
    # ReLU layer widths between the query tower's pooled inputs and its final
    # projection; [] is a single linear projection.
    query_hidden_layers: tuple[int, ...] = setting((128,), min=1)
    similarity: str = setting("dot", choices=SIMILARITIES)
    # A user id embedding in the query tower; on sparse logs (median
    # MovieTweetings user: 2 clicks) it overfits, the history carries the signal.
    user_id: bool = False
    # Query input: seconds since the user's previous click, log-bucketed.
    recency: bool = False
    # Query input: YouTube's example age (newest training click - click time)
    # in training; `example_age_serving_seconds` at serving (a serving input,
    # negative = that value).
    example_age: bool = False
    example_age_serving_seconds: int = setting(0, min=0)
    # Query inputs: declared user/context features, name -> type as in
    # ingestion.schema (or `text` for a `string` one read as words), hashed
    # into `query_feature_buckets` buckets.
    query_features: tuple[tuple[str, str], ...] = setting(
        (), mapping=True, choices=QUERY_FEATURE_TYPES)
    query_feature_buckets: int = setting(4096, min=1)
    # Candidate input: scaled log all-time and recent click counts.
    popularity: bool = True
    # Candidate input: catalogue features (VocabStats item_features.tsv),
    # hashed into `item_feature_buckets` buckets and mean-pooled.
    item_side_features: bool = True
    item_feature_buckets: int = setting(16384, min=1)
    # Text (catalogue features of type `text`, `text` query features):
    # `bag` embeds it as the other tokens; `dssm` hashes each word's letter
    # trigrams into `text_trigram_buckets` buckets, then `text_layers`
    # (`text_activation`) and a projection to `embedding_dim`.
    text_tower: str = setting("bag", choices=TEXT_TOWERS)
    text_trigram_buckets: int = setting(32768, min=1)
    text_layers: tuple[int, ...] = setting((256, 64), min=1)
    text_activation: str = setting("tanh", choices=TEXT_ACTIVATIONS)

    def check(self) -> None:
        for name, _ in self.query_features:
            if name in RESERVED_FEATURES:
                raise self.error("query_features", f"declared user/context features only; "
                                 f"{name!r} is one of the click example's own features "
                                 f"{list(RESERVED_FEATURES)} (recency: model.towers.recency)")


@dataclasses.dataclass(frozen=True)
class HistoryConfig(Config):
    """How the query tower reads the user's history."""

    KEY = "model.history"
    # Most recent items the query tower sees (a served history is cut the same way).
    max_history: int = setting(50, min=1)
    # models/towers/pooling: "mean" (YouTube DNN), "attention" or
    # "self_attention" (SASRec: causal self-attention over the ordered history).
    pooling: str = setting("mean", choices=tuple(POOLINGS))
    attention_heads: int = setting(2, min=1)
    # "self_attention": blocks, heads per block, width (0: embedding_dim) and
    # the dropout inside the blocks (training only).
    sequence_blocks: int = setting(2, min=1)
    sequence_heads: int = setting(1, min=1)
    sequence_width: int = setting(0, min=0)
    sequence_dropout: float = setting(0.2, min=0.0, lt=1.0)
    # Training only: each history item is dropped with this probability.
    dropout: float = setting(0.5, min=0.0, lt=1.0)
    # Each history item also carries its catalogue tokens (own tables).
    item_side_features: bool = False


@dataclasses.dataclass(frozen=True)
class NegativesConfig(Config):
    """Negatives beyond the batch's other clicked items."""

    KEY = "model.negatives"
    # Extra negatives per batch drawn from the whole corpus (mixed negative
    # sampling); logQ then counts both ways a candidate enters the batch.
    mixed: int = setting(0, min=0)
    # "uniform", or "popularity": VocabStats' count^alpha shares (the alpha
    # is `vocab.negative_sampling_alpha`).
    mixed_distribution: str = setting("uniform", choices=NEGATIVE_DISTRIBUTIONS)
    # Softmax over the positive and only the k highest-scoring negatives.
    hard: int = setting(0, min=0)
    remove_accidental_hits: bool = True
    # Per click, up to this many items the user was shown and did not click
    # (the examples' `impressed_negatives`, ingestion.impression_event_types)
    # enter its softmax as extra negatives, without logQ; 0 = off.
    impressions: int = setting(0, min=0)
    # Each impressed negative counts this many times in the softmax's
    # denominator (its logit + log(weight)); 0 equals off. 10 measured
    # better than 1 on the synthetic log with impressions (docs/ablation.md).
    impression_weight: float = setting(10.0, min=0.0)


@dataclasses.dataclass(frozen=True)
class LossConfig(Config):
    """The retrieval loss (models/losses)."""

    KEY = "model.loss"
    kind: str = setting("softmax", choices=tuple(LOSSES))
    temperature: float = setting(0.1, gt=0.0)
    # logQ correction of in-batch sampled softmax (Yi et al., RecSys 2019).
    logq_correction: bool = True
    # Negatives per query of the pointwise and pairwise losses; hinge margin.
    pair_negatives: int = setting(10, min=1)
    triplet_margin: float = setting(0.5, min=0.0)


@dataclasses.dataclass(frozen=True)
class PriorConfig(Config):
    """The trending prior: w * log1p(item's clicks in the recent window)."""

    KEY = "model.prior"
    # Served weight when `grid` is empty (0: no prior).
    weight: float = setting(0.0, min=0.0)
    # The Trainer picks the weight from these by eval hit rate (models/prior_calibration.py).
    grid: tuple[float, ...] = setting((0.0, 0.1, 0.2, 0.3, 0.5), min=0.0)
    calibration_examples: int = setting(5000, min=1)
    # The prior also in the training logits, its weight learned (models/trending.py).
    in_training: bool = True


@dataclasses.dataclass(frozen=True)
class EnsembleConfig(Config):
    """Seed ensembles served as one dot product (models/ensemble.py)."""

    KEY = "model.ensemble"
    size: int = setting(3, min=1)


@dataclasses.dataclass(frozen=True)
class TeacherConfig(Config):
    """Teacher-guided retrieval (models/teacher.py); training only."""

    KEY = "model.teacher"
    enabled: bool = False
    hidden_layers: tuple[int, ...] = setting((64,), min=1)
    negatives: int = setting(10, min=1)
    pretrain_epochs: int = setting(1, min=0)
    loss_weight: float = setting(0.1, min=0.0)
    similarity_weight: float = setting(0.1, min=0.0)
    discriminator: bool = False
    adversarial_weight: float = setting(0.1, min=0.0)

    def check(self) -> None:
        if self.discriminator and not self.enabled:
            raise self.error("discriminator", "false unless model.teacher.enabled is true "
                             "(the discriminator only serves the teacher's guidance)")
        if self.enabled and not (self.loss_weight or self.similarity_weight or (
                self.discriminator and self.adversarial_weight)):
            raise self.error("loss_weight", "a weight > 0 among loss_weight, similarity_weight "
                             "(and adversarial_weight), or the teacher guides nothing")


@dataclasses.dataclass(frozen=True)
class TrainingConfig(Config):
    """The training loop."""

    KEY = "model.training"
    batch_size: int = setting(512, min=1)
    # With early stopping, the most epochs trained.
    epochs: int = setting(3, min=1)
    # Adagrad's learning rate.
    learning_rate: float = setting(0.03, gt=0.0)
    # Each click weighs 0.5 ** (age / half-life), age from the newest
    # training click; 0 = equal weights.
    recency_half_life_days: float = setting(60.0, min=0.0)
    # Keep the decompressed training examples in memory after the first epoch.
    cache_examples: bool = True
    # Stop when eval hit rate@early_stopping_k has not improved for this many
    # epochs; 0 = off.
    early_stopping_patience: int = setting(0, min=0)
    early_stopping_k: int = setting(100, min=1)
    early_stopping_examples: int = setting(5000, min=1)
    # Initialise from the base model's towers (ids matched by value).
    warm_start: bool = False
    # Train only on clicks at or after this unix time (earlier clicks still
    # give histories, vocabularies and popularity); None: every click.
    since: int | None = None
    # Train only on the clicks after the base model's newest training click
    # (a daily warm-started run: `retrieval-pipeline --since base`).
    since_base_model: bool = False
    # batch_size is the global batch; each replica's in-batch negatives are its
    # share (docs/distributed-training.md). The cluster comes from TF_CONFIG.
    distribution_strategy: str = setting("default", choices=STRATEGIES)
    # parameter_server: a variable (an embedding table) is split into at
    # most one shard per parameter server, each shard at least this large.
    min_shard_bytes: int = setting(256 << 10, min=1)
    # parameter_server: steps per epoch (a step is one batch on one worker);
    # 0 = the batches of one pass over the training clicks, counted first.
    steps_per_epoch: int = setting(0, min=0)
    seed: int = 42


@dataclasses.dataclass(frozen=True)
class ScannConfig(Config):
    """ScaNN index settings; 0 = chosen at export time by a sweep on probe
    queries: the fastest setting with recall@K >= `target_recall`
    (models/scann_tuning.py; an exact scan under 2000 candidates)."""

    KEY = "model.export.scann"
    num_leaves: int = setting(0, min=0)
    num_leaves_to_search: int = setting(0, min=0)
    reorder: int = setting(0, min=0)
    # Asymmetric hashing: dimensions per block (fewer: finer, slower codes).
    dimensions_per_block: int = setting(0, min=0)
    # Recall@K against exact search the chosen setting must reach on the probe queries.
    target_recall: float = setting(0.95, gt=0.0, max=1.0)


@dataclasses.dataclass(frozen=True)
class ExportConfig(Config):
    """The serving contract: the one source of K and of the history exclusion."""

    KEY = "model.export"
    # Items per served answer.
    top_k: int = setting(100, min=1)
    # Most recent request-history items excluded from answers, from the
    # evaluator's rankings and from the training-time hit-rate checks.
    exclude_history: int = setting(50, min=0)
    scann: ScannConfig = section(ScannConfig)


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """Everything about the retrieval model (see the module docstring)."""

    KEY = "model"
    towers: TowersConfig = section(TowersConfig)
    history: HistoryConfig = section(HistoryConfig)
    negatives: NegativesConfig = section(NegativesConfig)
    loss: LossConfig = section(LossConfig)
    prior: PriorConfig = section(PriorConfig)
    ensemble: EnsembleConfig = section(EnsembleConfig)
    teacher: TeacherConfig = section(TeacherConfig)
    training: TrainingConfig = section(TrainingConfig)
    export: ExportConfig = section(ExportConfig)

    def check(self) -> None:
        width = self.history.sequence_width or self.towers.embedding_dim
        if self.history.pooling == "self_attention" and width % self.history.sequence_heads:
            raise ConfigError("model.history.sequence_heads", self.history.sequence_heads,
                              f"a divisor of the self-attention width {width} "
                              "(model.history.sequence_width, 0: model.towers.embedding_dim)")
        if self.negatives.impressions and self.loss.kind != "softmax":
            raise ConfigError("model.negatives.impressions", self.negatives.impressions,
                              f"0 with model.loss.kind={self.loss.kind!r}; impressed negatives "
                              "need model.loss.kind=softmax")
        if self.teacher.enabled and self.teacher.pretrain_epochs >= self.training.epochs:
            raise ConfigError("model.teacher.pretrain_epochs", self.teacher.pretrain_epochs,
                              f"fewer than model.training.epochs={self.training.epochs}, or "
                              "the guidance never switches on")

    def with_changes(self, **sections: dict) -> ModelConfig:
        """A copy with some fields of some sections changed:
        `config.with_changes(training={"seed": 43})`."""
        return self.replace(**{name: getattr(self, name).replace(**changes)
                               for name, changes in sections.items()})

