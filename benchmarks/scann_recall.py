"""Recall@K of the embedded ScaNN index against exact search, for a few settings.

    .venv/bin/python -m benchmarks.scann_recall \
        --towers demo-output/tfx/RetrievalTrainer/model/<id>/Format-Serving

Queries are the query tower applied to random 5-item histories drawn from the
2000 most clicked items. Writes benchmarks/results/scann_recall.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models.config import ScannConfig  # noqa: E402
from models.scann_index import ScannIndex  # noqa: E402
from models.towers_export import Towers  # noqa: E402

SETTINGS = [ScannConfig(), ScannConfig(num_leaves_to_search=0, reorder=1000),
            ScannConfig(num_leaves=100, num_leaves_to_search=10)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--towers", required=True, help="the Trainer's Format-Serving directory")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--output", default="benchmarks/results/scann_recall.json")
    args = parser.parse_args()
    towers = Towers(args.towers)
    candidates = towers.candidate_embeddings()
    rng = np.random.default_rng(0)
    top = min(2000, towers.vocab.num_items)
    histories = [[towers.vocab.item_ids[i] for i in rng.integers(0, top, size=5)]
                 for _ in range(args.queries)]
    queries = towers.query_embeddings(["benchmark-user"] * args.queries, histories)
    exact = tf.math.top_k(tf.matmul(queries, candidates, transpose_b=True), args.k)
    exact_ids = exact.indices.numpy()
    rows = []
    for settings in SETTINGS:
        index = ScannIndex(candidates, tf.range(candidates.shape[0]), args.k, settings)
        index(queries[:1])  # build the searcher before timing
        start = time.perf_counter()
        _, found = index(queries)
        seconds = time.perf_counter() - start
        recall = float(np.mean([len(set(a) & set(b)) / args.k
                                for a, b in zip(exact_ids, found.numpy(), strict=True)]))
        rows.append({"settings": index.settings.to_dict(), f"recall@{args.k}": round(recall, 4),
                     "batch_ms": round(seconds * 1000, 2)})
        print(json.dumps(rows[-1]))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"num_candidates": towers.vocab.num_items, "queries": args.queries,
                   "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
