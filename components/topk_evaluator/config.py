"""TopKEvaluator's settings: the `evaluation` section (docs/configuration.md).

The history exclusion is not here: the evaluator ranks as the model serves,
excluding the model's own `model.export.exclude_history`.
"""

from __future__ import annotations

import dataclasses

from clicklog.config import Config, setting

MODEL = "model"
POPULARITY = "popularity"
RECENT_POPULARITY = "recent_popularity"
LAST_BLESSED = "last_blessed"
# The model's list with its top `ranking.rerank_depth` ordered by the ranker.
RERANKED = "reranked"
BASELINES = (POPULARITY, RECENT_POPULARITY)
# fresh: one query per eval click with the user's whole history before it (as
# served in real time); frozen: the history as it stood when the eval period
# began for every eval click of the user (recommendations computed at the
# cut-off, served until the next run).
PROTOCOLS = ("fresh", "frozen")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig(Config):
    """Cut-offs, breakdowns, blessing thresholds and the ANN check."""

    KEY = "evaluation"
    ks: tuple[int, ...] = setting((10, 50, 100), min=1)
    # Eval clicks ranked at once (fewer for huge catalogues).
    batch_size: int = setting(256, min=1)
    # Protocols reported (PROTOCOLS) and the one the blessing checks.
    protocols: tuple[str, ...] = setting(PROTOCOLS, choices=PROTOCOLS)
    blessing_protocol: str = setting("fresh", choices=PROTOCOLS)
    # History buckets of the breakdown: none, short (1 .. this), long.
    short_history_max: int = setting(5, min=1)
    # Item popularity buckets by cumulative share of training clicks.
    head_click_share: float = setting(0.5, gt=0.0, lt=1.0)
    torso_click_share: float = setting(0.3, min=0.0, lt=1.0)
    # Blessing (blessing.py), all on recall@blessing_k.
    blessing_k: int = setting(100, min=1)
    min_recall: float = setting(0.0, min=0.0, max=1.0)
    # The model must score more than min_lift x the strongest of lift_baselines.
    min_lift: float = setting(1.02, min=0.0)
    lift_baselines: tuple[str, ...] = setting(BASELINES, choices=BASELINES)
    max_regression: float = setting(0.05, min=0.0, max=1.0)
    min_ann_recall: float = setting(0.9, min=0.0, max=1.0)
    # ANN check: eval requests answered by both exports, single-request timings.
    ann_queries: int = setting(500, min=1)
    ann_latency_calls: int = setting(200, min=1)

    def check(self) -> None:
        if not self.ks:
            raise self.error("ks", "a non-empty list of cut-offs")
        if self.blessing_protocol not in self.protocols:
            raise self.error("blessing_protocol", f"one of protocols={list(self.protocols)}")
        if self.blessing_k not in self.ks:
            raise self.error("blessing_k", f"one of ks={list(self.ks)}")
        if self.head_click_share + self.torso_click_share >= 1:
            raise self.error("torso_click_share", f"less than 1 - head_click_share="
                             f"{1 - self.head_click_share:g} (the rest is the tail)")
