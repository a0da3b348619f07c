"""The one typed hyperparameter object of the retrieval model.

It crosses into the TFX Trainer as a plain dict (`custom_config["hparams"]`)
and is rebuilt in `run_fn` with `HParams.from_dict`, so unknown or mistyped
keys fail loudly at the start of training instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from clicklog.schema import FEATURE_TYPES, RESERVED_FEATURES
from models import config_dict

SIMILARITIES = ("dot", "cosine")
POOLINGS = ("mean", "attention")
STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
LOSSES = ("softmax", "bce", "triplet_hinge", "triplet_logistic")
NEGATIVE_DISTRIBUTIONS = ("uniform", "popularity")
# Query features are declared click-log features: their types, and the
# example features ClickExampleGen writes itself (never query_features).
QUERY_FEATURE_TYPES = FEATURE_TYPES
_NOT_QUERY_FEATURES = RESERVED_FEATURES


@dataclasses.dataclass(frozen=True)
class HParams:
    """Hyperparameters of the two-tower model and its training loop."""

    embedding_dim: int = 64
    # Most recent items of the user's history the query tower sees.
    max_history: int = 50
    # Off by default: on sparse logs (median MovieTweetings user: 2 clicks) a
    # per-user embedding overfits; the history carries the signal.
    use_user_id: bool = False
    # History pooling: "mean" of the item embeddings (YouTube DNN) or
    # "attention": `attention_heads` learned queries attend over the history.
    history_pooling: str = "mean"
    attention_heads: int = 2
    # Mean pooling weights the item `n` steps before the most recent one by
    # history_position_decay ** n (1.0: the plain mean).
    history_position_decay: float = 1.0
    # The query tower also gets the embeddings of the user's this many most
    # recent history items, concatenated to the pooled vector (zeros where the
    # history is shorter); 0 = off.
    history_last_items: int = 0
    # Training only: each history item is dropped from the query tower's
    # input with this probability (a regulariser; 0 = off).
    history_dropout: float = 0.5
    # Widths of ReLU layers between the pooled inputs and the query tower's
    # final projection; () is a single linear projection.
    # The ablation: [128] beats () at hit@10 on all three datasets and at
    # hit@100 on both MovieTweetings splits (README).
    query_hidden_layers: tuple = (128,)
    # Query tower input: seconds since the user's previous click (the
    # example's `seconds_since_previous_click`; -1 = none), bucketed on a log
    # scale from a minute to a year and embedded. Also a serving input then.
    use_recency_features: bool = False
    # Query tower inputs: declared user/context features of the click log,
    # name -> type as in ingestion.schema (string, int, float, string_list).
    # Strings, ints and list tokens are hashed into `query_feature_buckets`
    # buckets and embedded (lists mean-pooled); floats enter as
    # sign(x) * log1p(|x|). Each is also a named serving input.
    query_features: tuple = ()
    query_feature_buckets: int = 4096
    # Candidate tower input: scaled log all-time and recent click counts.
    use_popularity_features: bool = True
    # Candidate tower input: how recently the item was first clicked (1 for
    # brand-new or never-clicked catalogue items, falling with log age).
    use_freshness_features: bool = False
    # Candidate tower input: the catalogue's item features (VocabStats
    # item_features.tsv: genres, title words, ...), each hashed into
    # `item_feature_buckets` buckets and mean-pooled. No-op without a catalogue.
    use_item_side_features: bool = True
    item_feature_buckets: int = 16384
    # Query tower: each history item's vector is its id embedding plus, per
    # catalogue feature, the mean embedding of its hashed tokens (own tables,
    # `item_feature_buckets` buckets). No-op without a catalogue.
    history_item_side_features: bool = False
    # One item-id embedding table for the history (query side) and the
    # candidates, instead of one per tower.
    share_item_embeddings: bool = False
    # Served and evaluated score = q . c + w * log1p(item's recent click count)
    # (VocabStats' recent window): a trending prior added at export, not in
    # training. 0 = off. See docs/model.md.
    trending_prior_weight: float = 0.0
    # When non-empty, the Trainer picks trending_prior_weight from these
    # values by hit rate on up to prior_calibration_examples eval clicks
    # (models/prior_calibration.py), as early stopping picks the epoch;
    # without eval examples the fixed trending_prior_weight is kept. The
    # ablation: 0.3 is picked on MovieTweetings, 0 on the synthetic data.
    trending_prior_grid: tuple = (0.0, 0.1, 0.2, 0.3, 0.5)
    prior_calibration_examples: int = 5000
    # Train with the trending prior in the logits (PDA-style,
    # models/trending.py): beta * log1p(candidate's clicks in the recent window
    # before the click), beta learned; the export then applies
    # w = temperature * beta, or the grid's choice (the learned w among the
    # candidates) when trending_prior_grid is non-empty. Every loss: the
    # pointwise and pairwise ones add w * log1p(count) to their scores.
    trending_prior_training: bool = True
    similarity: str = "dot"
    temperature: float = 0.1
    # logQ correction of in-batch sampled softmax (Yi et al., RecSys 2019).
    use_logq_correction: bool = True
    remove_accidental_hits: bool = True
    # "softmax": in-batch sampled softmax (with logQ and mixed negatives);
    # "bce": pointwise sigmoid cross-entropy, 1 positive : `pair_negatives`;
    # "triplet_hinge" / "triplet_logistic": pairwise, positive vs each of
    # `pair_negatives` negatives (see models/losses.py and docs/model.md).
    loss: str = "softmax"
    # Mixed negative sampling: extra negatives per batch drawn from the whole
    # corpus, uniformly or by click count ** negative_popularity_alpha; the
    # logQ correction then counts both ways a candidate enters the batch.
    num_mixed_negatives: int = 0
    mixed_negative_distribution: str = "uniform"
    negative_popularity_alpha: float = 0.75
    # Softmax over the positive and only the k highest-scoring negatives.
    num_hard_negatives: int = 0
    # Negatives per query for the bce and triplet losses; hinge margin.
    pair_negatives: int = 10
    triplet_margin: float = 0.5
    # Weight each training click by 0.5 ** (age / half-life), age measured from
    # the newest training click, so the model leans to the current period
    # (catalogues with strong drift, e.g. new releases). 0 = equal weights.
    # 60 days since 2026-11-24 (was 30; see the README's ablation).
    recency_half_life_days: float = 60.0
    batch_size: int = 512
    # Keep the decompressed training examples in memory after the first epoch
    # (later epochs skip file reading and gunzip). Turn off when the training
    # split does not fit in the trainer's RAM.
    cache_train_examples: bool = True
    # With early stopping, `epochs` is the most epochs trained.
    epochs: int = 3
    # Adagrad's rate; 0.03 since 2026-11-24 (was 0.05).
    learning_rate: float = 0.03
    # Stop when eval hit rate@early_stopping_k (on up to early_stopping_examples
    # eval clicks) has not improved for this many epochs; 0 = off.
    early_stopping_patience: int = 0
    early_stopping_k: int = 100
    early_stopping_examples: int = 5000
    # Initialise from the last blessed model's towers (ids matched by value)
    # when the Trainer gets a base_model.
    warm_start: bool = False
    # tf.distribute strategy: batch_size is the global batch; each replica's
    # in-batch negatives are its own share of it (docs/model.md).
    distribution_strategy: str = "default"
    # Teacher-guided retrieval (models/teacher.py, docs/model.md): a ranking
    # MLP over (user representation, item embedding) trained beside the towers
    # scores the query tower's output as a virtual item; from epoch
    # `teacher_pretrain_epochs` on the query tower is also trained on
    # teacher_loss_weight * -log sigmoid(teacher(u, key)) +
    # teacher_similarity_weight * -cos(key, clicked item) (+ with the
    # discriminator teacher_adversarial_weight * -log D(key)). Training only.
    teacher_guided: bool = False
    teacher_hidden_layers: tuple = (64,)
    teacher_negatives: int = 10
    teacher_pretrain_epochs: int = 1
    teacher_loss_weight: float = 0.1
    teacher_similarity_weight: float = 0.1
    teacher_discriminator: bool = False
    teacher_adversarial_weight: float = 0.1
    # Train this many towers with seeds seed, seed + 1, ... and serve the mean
    # of their scores (models/ensemble.py): the exported embeddings are the
    # members' concatenated (query side scaled by 1 / ensemble_size), so every
    # dot-product consumer stays unchanged. Costs ensemble_size x the training
    # time and embedding size.
    ensemble_size: int = 3
    # Number of top-scoring items a served request returns.
    serving_top_k: int = 100
    # Most recent request-history items excluded from served answers.
    serving_exclude_history: int = 50
    seed: int = 42

    def __post_init__(self):
        positive_ints = ("embedding_dim", "max_history", "batch_size", "epochs", "serving_top_k",
                         "serving_exclude_history", "pair_negatives", "attention_heads",
                         "early_stopping_k", "early_stopping_examples", "item_feature_buckets",
                         "prior_calibration_examples", "query_feature_buckets",
                         "ensemble_size")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"hparams.{name}={value!r}: expected a positive integer")
        for name, allowed in (("similarity", SIMILARITIES), ("loss", LOSSES),
                              ("history_pooling", POOLINGS),
                              ("distribution_strategy", STRATEGIES),
                              ("mixed_negative_distribution", NEGATIVE_DISTRIBUTIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"hparams.{name}={getattr(self, name)!r}: expected one of {allowed}")
        for name in ("num_mixed_negatives", "num_hard_negatives", "early_stopping_patience",
                     "history_last_items"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"hparams.{name}={value!r}: expected an integer >= 0")
        if not isinstance(self.query_hidden_layers, tuple) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w > 0
                for w in self.query_hidden_layers):
            raise ValueError(f"hparams.query_hidden_layers={self.query_hidden_layers!r}: "
                             "expected a list of positive layer widths")
        if not isinstance(self.trending_prior_grid, tuple) or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
                for w in self.trending_prior_grid):
            raise ValueError(f"hparams.trending_prior_grid={self.trending_prior_grid!r}: "
                             "expected a list of weights >= 0")
        for name in ("negative_popularity_alpha", "triplet_margin", "trending_prior_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"hparams.{name}={value!r}: expected a number >= 0")
        if not isinstance(self.recency_half_life_days, (int, float)) or \
                self.recency_half_life_days < 0:
            raise ValueError(f"hparams.recency_half_life_days={self.recency_half_life_days!r}: "
                             "expected a number >= 0")
        decay = self.history_position_decay
        if not isinstance(decay, (int, float)) or isinstance(decay, bool) or not 0 < decay <= 1:
            raise ValueError(f"hparams.history_position_decay={decay!r}: expected a number in "
                             "(0, 1] (1: the plain mean)")
        if decay != 1 and self.history_pooling != "mean":
            raise ValueError(f"hparams.history_position_decay={decay!r}: only weights the mean "
                             f"pooling, but history_pooling={self.history_pooling!r}; expected "
                             "1.0 or history_pooling='mean'")
        rate = self.history_dropout
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
            raise ValueError(f"hparams.history_dropout={rate!r}: expected a number in [0, 1)")
        if self.history_last_items > self.max_history:
            raise ValueError(f"hparams.history_last_items={self.history_last_items}: expected at "
                             f"most max_history={self.max_history} (the tower sees no more)")
        for name in ("temperature", "learning_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"hparams.{name}={value!r}: expected a positive number")
        if not isinstance(self.history_item_side_features, bool):
            raise ValueError("hparams.history_item_side_features="
                             f"{self.history_item_side_features!r}: expected true or false")
        if not isinstance(self.trending_prior_training, bool):
            raise ValueError(f"hparams.trending_prior_training={self.trending_prior_training!r}: "
                             "expected true or false")
        self._check_teacher()
        self._check_query_features()

    def _check_query_features(self) -> None:
        if not isinstance(self.use_recency_features, bool):
            raise ValueError(f"hparams.use_recency_features={self.use_recency_features!r}: "
                             "expected true or false")
        values = self.query_features
        if isinstance(values, dict):
            values = tuple(values.items())
        expected = (f"a mapping of declared user/context feature name to type, types one of "
                    f"{QUERY_FEATURE_TYPES}")
        if not isinstance(values, (tuple, list)) or not all(
                isinstance(pair, (tuple, list)) and len(pair) == 2 for pair in values):
            raise ValueError(f"hparams.query_features={self.query_features!r}: expected {expected}")
        pairs = tuple(sorted((name, kind) for name, kind in values))
        for name, kind in pairs:
            if not isinstance(name, str) or not name:
                raise ValueError(f"hparams.query_features: feature name {name!r}: expected a "
                                 "non-empty string")
            if kind not in QUERY_FEATURE_TYPES:
                raise ValueError(f"hparams.query_features.{name}={kind!r}: expected one of "
                                 f"{QUERY_FEATURE_TYPES}")
            if name in _NOT_QUERY_FEATURES:
                raise ValueError(f"hparams.query_features.{name}: {name!r} is not a declared "
                                 "user/context feature (recency: use_recency_features); "
                                 f"not allowed: {_NOT_QUERY_FEATURES}")
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError(f"hparams.query_features: feature names {names} repeat; expected "
                             "each once")
        object.__setattr__(self, "query_features", pairs)

    def _check_teacher(self) -> None:
        for name in ("teacher_guided", "teacher_discriminator"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"hparams.{name}={getattr(self, name)!r}: expected true or false")
        if not isinstance(self.teacher_hidden_layers, tuple) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w > 0
                for w in self.teacher_hidden_layers):
            raise ValueError(f"hparams.teacher_hidden_layers={self.teacher_hidden_layers!r}: "
                             "expected a list of positive layer widths")
        value = self.teacher_negatives
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"hparams.teacher_negatives={value!r}: expected a positive integer")
        value = self.teacher_pretrain_epochs
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"hparams.teacher_pretrain_epochs={value!r}: "
                             "expected an integer >= 0")
        weights = ("teacher_loss_weight", "teacher_similarity_weight",
                   "teacher_adversarial_weight")
        for name in weights:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"hparams.{name}={value!r}: expected a number >= 0")
        if self.teacher_discriminator and not self.teacher_guided:
            raise ValueError("hparams.teacher_discriminator=True: expected teacher_guided=True "
                             "as well (the discriminator only serves the teacher's guidance)")
        if not self.teacher_guided:
            return
        if self.teacher_pretrain_epochs >= self.epochs:
            raise ValueError(f"hparams.teacher_pretrain_epochs={self.teacher_pretrain_epochs}: "
                             f"expected fewer than epochs={self.epochs}, or the guidance "
                             "never switches on")
        if not any(getattr(self, name) for name in weights[:2]) and not (
                self.teacher_discriminator and self.teacher_adversarial_weight):
            raise ValueError("hparams.teacher_guided=True with teacher_loss_weight, "
                             "teacher_similarity_weight (and teacher_adversarial_weight) all 0: "
                             "expected at least one > 0, or the teacher guides nothing")

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["query_features"] = dict(self.query_features)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> HParams:
        """Builds HParams from a plain dict, rejecting unknown keys."""
        return config_dict.from_dict(cls, values, "hparams")
