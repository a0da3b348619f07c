"""The `ranking` section: the DeepFM ranker trained beside the recall
channels (RankerTrainer) and the re-ranking the evaluator measures with it."""

from __future__ import annotations

import dataclasses

from clicklog.config import Config, setting


@dataclasses.dataclass(frozen=True)
class RankingConfig(Config):
    """DeepFM (Guo et al., IJCAI 2017) over the fields user, history, history
    length, item, the item's catalog tokens and its popularity, all told and
    in the trailing `trending_days`, as it stood at the click (training) or
    at the end of the training clicks (serving): a first-order weight per field value, FM's pairwise
    interactions of the field embeddings, and an MLP over them, summed into
    one logit per (request, candidate). Trained on each training click
    against `sampled_negatives` catalogue items (drawn by count **
    `sampling_power`), `retrieved_negatives` items of the merged recall
    list's top `retrieve_depth` and up to `impression_negatives` items the
    user was shown and did not click (when the log has impressions)."""

    KEY = "ranking"
    # Train the ranker (RankerTrainer) and report its AUC, log loss and the
    # re-ranked list in the evaluator.
    enabled: bool = False
    embedding_dim: int = setting(16, min=1)
    hidden_units: tuple[int, ...] = setting((64, 32), min=1)
    dropout: float = setting(0.1, min=0.0, lt=1.0)
    l2: float = setting(1e-6, min=0.0)
    # History items read per click (most recent).
    max_history: int = setting(20, min=1)
    # Catalog tokens kept per item (in feature order).
    max_item_tokens: int = setting(32, min=1)
    # log2 buckets of an item's clicks before the request (1 + floor(log2(1 +
    # clicks)), capped), all told and in the trailing `trending_days`.
    popularity_buckets: int = setting(16, min=1)
    trending_days: float = setting(14.0, gt=0.0)
    sampled_negatives: int = setting(4, min=0)
    sampling_power: float = setting(0.0, min=0.0)
    retrieved_negatives: int = setting(4, min=0)
    retrieve_depth: int = setting(100, min=1)
    impression_negatives: int = setting(0, min=0)
    epochs: int = setting(3, min=1)
    batch_size: int = setting(256, min=1)
    learning_rate: float = setting(0.01, gt=0.0)
    # The evaluator re-ranks the merged list's top `rerank_depth` candidates.
    rerank_depth: int = setting(100, min=1)
    seed: int = 0

    def check(self) -> None:
        if self.sampled_negatives + self.retrieved_negatives + self.impression_negatives == 0:
            raise self.error("sampled_negatives", "at least one negative per click "
                             "(sampled, retrieved or impression negatives above 0)")
