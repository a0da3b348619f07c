"""Evaluation wall time vs catalogue size (TopKEvaluator's metric loop).

Runs `components.topk_evaluator.evaluation.evaluate_scorers` (the loop TopKEvaluator runs:
score the whole catalogue, drop seen items, rank, accumulate every metric at
every K plus the breakdowns) over the same synthetic eval clicks for
catalogues of 10k, 100k and 1M candidates, with two scorers: a dot-product
"model" over random 64-d embeddings and all-time popularity. Writes
`benchmarks/results/evaluate.json`.

    .venv/bin/python -m benchmarks.evaluate [--clicks 1000] [--sizes ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from components.topk_evaluator import evaluation  # noqa: E402
from components.topk_evaluator.config import EvaluationConfig  # noqa: E402
from models import topk_metrics  # noqa: E402

DIM = 64
HISTORY = 10
QUERY = "query_embedding"


def synthetic_clicks(num_items: int, clicks: int, batch_size: int, seed: int) -> list[dict]:
    """Eval click batches: Zipf-ish targets, 10-item histories, query embeddings."""
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.2, size=(clicks, HISTORY + 1)) - 1, num_items - 1)
    ids = np.char.add("i", ranks.astype(str)).astype(object)
    queries = rng.normal(size=(clicks, DIM)).astype(np.float32)
    users = np.array([f"u{i}" for i in range(clicks)], dtype=object)
    return [{"user_id": tf.constant(users[s:s + batch_size]),
             "item_id": tf.constant(ids[s:s + batch_size, 0]),
             "history": tf.constant(ids[s:s + batch_size, 1:]),
             QUERY: tf.constant(queries[s:s + batch_size])}
            for s in range(0, clicks, batch_size)]


def run_size(num_items: int, clicks: int, seed: int = 0) -> dict:
    config = EvaluationConfig()
    rng = np.random.default_rng(seed + 1)
    item_ids = [f"i{i}" for i in range(num_items)]
    counts = np.sort(rng.zipf(1.5, size=num_items).astype(np.float64))[::-1]
    candidates = tf.constant(rng.normal(size=(num_items, DIM)).astype(np.float32))
    popularity = tf.constant(counts.astype(np.float32))[None, :]
    scorers = {
        "model": lambda batch: tf.matmul(batch[QUERY], candidates, transpose_b=True),
        "popularity": lambda batch: tf.tile(popularity, [tf.shape(batch[QUERY])[0], 1]),
    }
    batches = synthetic_clicks(num_items, clicks, config.batch_size, seed)
    # Warm-up on a few clicks (tracing, lookup table build) outside the timing.
    evaluation.evaluate_scorers([{k: v[:4] for k, v in batches[0].items()}], scorers,
                                item_ids, counts, config, exclude_history=HISTORY)
    start = time.perf_counter()
    result = evaluation.evaluate_scorers(batches, scorers, item_ids, counts, config,
                                         exclude_history=HISTORY)
    seconds = time.perf_counter() - start
    return {"num_candidates": num_items, "num_clicks": result["num_examples"],
            "num_scorers": len(scorers), "seconds": seconds,
            "ns_per_click_candidate_scorer": seconds * 1e9 / (
                clicks * num_items * len(scorers)),
            "model_recall@100": result["metrics"]["model"]["recall@100"],
            "popularity_recall@100": result["metrics"]["popularity"]["recall@100"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clicks", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "evaluate.json"))
    args = parser.parse_args(argv)
    rows = []
    for size in args.sizes:
        rows.append(run_size(size, args.clicks))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for row in rows:
        # > 1 means slower per (click x candidate) than the smallest catalogue.
        row["cost_ratio_vs_smallest"] = (row["ns_per_click_candidate_scorer"]
                                         / base["ns_per_click_candidate_scorer"])
    out = {"description": "components.topk_evaluator.evaluation.evaluate_scorers wall time "
                          "(metrics at "
                          "K=10/50/100, coverage, breakdowns, 10 seen items excluded) for "
                          "2 scorers over the same synthetic clicks",
           "rows_per_batch": {r["num_candidates"]: max(
               1, min(256, topk_metrics.MAX_SCORES_PER_BATCH // r["num_candidates"]))
                              for r in rows},
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "loadavg_at_end": os.getloadavg()},
           "results": rows}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(out, f, indent=2)
    print(f"{'candidates':>10} {'seconds':>8} {'ns/(click*cand*scorer)':>22} {'ratio':>6}")
    for r in rows:
        print(f"{r['num_candidates']:>10} {r['seconds']:>8.2f} "
              f"{r['ns_per_click_candidate_scorer']:>22.3f} {r['cost_ratio_vs_smallest']:>6.2f}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
