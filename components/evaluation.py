"""Evaluating trained towers against popularity baselines, and the blessing rule.

Pure functions over files: `evaluate` reads the eval examples and the towers
SavedModel; `decide_blessing` turns metrics into a decision with reasons.
"""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from components import topk_metrics  # noqa: E402
from models import config_dict, features  # noqa: E402
from models.data import make_dataset  # noqa: E402
from models.towers_export import Towers  # noqa: E402

MODEL = "model"
POPULARITY = "popularity"
RECENT_POPULARITY = "recent_popularity"
BASELINES = (POPULARITY, RECENT_POPULARITY)


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Settings of TopKEvaluator."""

    ks: tuple[int, ...] = (10, 50, 100)
    # Already-seen items excluded: the most recent `exclude_history` of the
    # click's history (ClickExampleGen keeps up to its history_length).
    exclude_history: int = 50
    batch_size: int = 256
    # Blessing: hit_rate@blessing_k must reach min_hit_rate and be at least
    # min_lift times that of every baseline in lift_baselines.
    blessing_k: int = 100
    min_hit_rate: float = 0.0
    min_lift: float = 1.0
    lift_baselines: tuple[str, ...] = (POPULARITY,)

    def __post_init__(self):
        if not self.ks or any(not isinstance(k, int) or k < 1 for k in self.ks):
            raise ValueError(f"evaluation.ks={self.ks!r}: expected positive integers")
        if self.blessing_k not in self.ks:
            raise ValueError(f"evaluation.blessing_k={self.blessing_k!r}: expected one of "
                             f"ks={list(self.ks)}")
        unknown = sorted(set(self.lift_baselines) - set(BASELINES))
        if unknown:
            raise ValueError(f"evaluation.lift_baselines has unknown {unknown}; expected some "
                             f"of {list(BASELINES)}")
        if self.min_lift < 0 or not 0 <= self.min_hit_rate <= 1:
            raise ValueError(f"evaluation.min_lift={self.min_lift!r} / min_hit_rate="
                             f"{self.min_hit_rate!r}: expected min_lift >= 0 and "
                             "0 <= min_hit_rate <= 1")

    @classmethod
    def from_dict(cls, values: dict | None) -> EvaluationConfig:
        return config_dict.from_dict(cls, values, "evaluation")


def evaluate(towers_dir: str, eval_files, config: EvaluationConfig) -> dict:
    """Hit rate@K of the model and the popularity baselines on the same clicks.

    Returns:
      {"num_examples", "num_candidates", "metrics": {scorer: {"hit_rate@K": v}}}.
    """
    towers = Towers(towers_dir)
    vocab = towers.vocab
    lookup = topk_metrics.index_lookup(vocab.item_ids)
    candidates = towers.candidate_embeddings()  # [N, D]
    counter = topk_metrics.HitCounter(list(config.ks))
    dataset = make_dataset(eval_files, config.batch_size, config.exclude_history, shuffle=False)
    for batch in dataset:
        size = int(tf.shape(batch[features.ITEM_ID])[0])
        counter.examples += size
        target = lookup.lookup(batch[features.ITEM_ID])
        history = batch[features.HISTORY]
        seen = tf.where(tf.equal(history, features.PADDING),
                        tf.constant(topk_metrics.NOT_A_CANDIDATE, tf.int64), lookup.lookup(history))
        query = towers.query_embeddings(batch[features.USER_ID], history)
        counter.add(MODEL, tf.matmul(query, candidates, transpose_b=True), target, seen)
        counter.add(POPULARITY, topk_metrics.popularity_scores(vocab.item_counts, size),
                    target, seen)
        counter.add(RECENT_POPULARITY,
                    topk_metrics.popularity_scores(vocab.item_recent_counts, size), target, seen)
    if counter.examples == 0:
        raise ValueError(f"eval examples {eval_files}: no example to evaluate on")
    return {"num_examples": counter.examples, "num_candidates": vocab.num_items,
            "metrics": counter.hit_rates()}


def decide_blessing(result: dict, config: EvaluationConfig) -> tuple[bool, list[str]]:
    """Applies the blessing thresholds.

    Returns:
      (blessed, reasons): one human-readable reason per check, pass or fail.
    """
    key = f"hit_rate@{config.blessing_k}"
    metrics = result["metrics"]
    model = metrics[MODEL][key]
    checks = [(model >= config.min_hit_rate,
               f"{key} {model:.4f} {'>=' if model >= config.min_hit_rate else '<'} "
               f"min_hit_rate {config.min_hit_rate:.4f}")]
    for baseline in config.lift_baselines:
        needed = config.min_lift * metrics[baseline][key]
        checks.append((model >= needed,
                       f"{key} {model:.4f} {'>=' if model >= needed else '<'} {config.min_lift:g}"
                       f" x {baseline} {metrics[baseline][key]:.4f}"))
    return all(ok for ok, _ in checks), [("pass: " if ok else "FAIL: ") + text
                                         for ok, text in checks]
