"""The one typed hyperparameter object of the retrieval model.

It crosses into the TFX Trainer as a plain dict (`custom_config["hparams"]`)
and is rebuilt in `run_fn` with `HParams.from_dict`, so unknown or mistyped
keys fail loudly at the start of training instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from models import config_dict

SIMILARITIES = ("dot", "cosine")
POOLINGS = ("mean", "attention")
STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
LOSSES = ("softmax", "bce", "triplet_hinge", "triplet_logistic")
NEGATIVE_DISTRIBUTIONS = ("uniform", "popularity")


@dataclasses.dataclass(frozen=True)
class HParams:
    """Hyperparameters of the two-tower model and its training loop."""

    embedding_dim: int = 64
    # Most recent items of the user's history the query tower sees.
    max_history: int = 10
    # Off by default: on sparse logs (median MovieTweetings user: 2 clicks) a
    # per-user embedding overfits; the history carries the signal.
    use_user_id: bool = False
    # History pooling: "mean" of the item embeddings (YouTube DNN) or
    # "attention": `attention_heads` learned queries attend over the history.
    history_pooling: str = "mean"
    attention_heads: int = 2
    # Widths of ReLU layers between the pooled inputs and the query tower's
    # final projection; () is a single linear projection.
    query_hidden_layers: tuple = ()
    # Candidate tower input: scaled log all-time and recent click counts.
    use_popularity_features: bool = True
    # Served and evaluated score = q . c + w * log1p(item's recent click count)
    # (VocabStats' recent window): a trending prior added at export, not in
    # training. 0 = off. See docs/model.md.
    trending_prior_weight: float = 0.0
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
    recency_half_life_days: float = 30.0
    batch_size: int = 512
    # Keep the decompressed training examples in memory after the first epoch
    # (later epochs skip file reading and gunzip). Turn off when the training
    # split does not fit in the trainer's RAM.
    cache_train_examples: bool = True
    # With early stopping, `epochs` is the most epochs trained.
    epochs: int = 3
    learning_rate: float = 0.05
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
    # Number of top-scoring items a served request returns.
    serving_top_k: int = 100
    # Most recent request-history items excluded from served answers.
    serving_exclude_history: int = 50
    seed: int = 42

    def __post_init__(self):
        positive_ints = ("embedding_dim", "max_history", "batch_size", "epochs", "serving_top_k",
                         "serving_exclude_history", "pair_negatives", "attention_heads",
                         "early_stopping_k", "early_stopping_examples")
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
        for name in ("num_mixed_negatives", "num_hard_negatives", "early_stopping_patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"hparams.{name}={value!r}: expected an integer >= 0")
        if not isinstance(self.query_hidden_layers, tuple) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w > 0
                for w in self.query_hidden_layers):
            raise ValueError(f"hparams.query_hidden_layers={self.query_hidden_layers!r}: "
                             "expected a list of positive layer widths")
        for name in ("negative_popularity_alpha", "triplet_margin", "trending_prior_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"hparams.{name}={value!r}: expected a number >= 0")
        if not isinstance(self.recency_half_life_days, (int, float)) or \
                self.recency_half_life_days < 0:
            raise ValueError(f"hparams.recency_half_life_days={self.recency_half_life_days!r}: "
                             "expected a number >= 0")
        for name in ("temperature", "learning_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"hparams.{name}={value!r}: expected a positive number")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> HParams:
        """Builds HParams from a plain dict, rejecting unknown keys."""
        return config_dict.from_dict(cls, values, "hparams")
