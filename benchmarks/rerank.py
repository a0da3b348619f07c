"""The DeepFM ranker re-ranking the merged recall list, on the quality
benchmark's splits (`python -m benchmarks.rerank`).

For each dataset: the channels are fitted and merged as in
`benchmarks.channels` (merge chosen on the `tune` half of the eval users);
the ranker (`ranking` settings, `--set ranking.<key>=<value>`) is trained on
the train clicks against negatives from that merged list and the catalogue,
as RankerTrainer trains it. On the `report` half, under both protocols, the
evaluator's metrics of the merged list, of the merged list with its top D
re-ranked for each D of `--depths`, and of the popularity baselines; the
ranker's AUC and log loss on the report half's clicks; and the added
latency: one request's re-ranking (encoding + the DeepFM call on D
candidates, in process, a compiled `tf.function`), p50 and p99 over
`--latency_requests` requests. Results: benchmarks/results/rerank.json;
page: docs/rerank.md (`python -m benchmarks.rerank_page`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

from benchmarks.channels import (  # noqa: E402
    Fitted,
    command_line,
    each_dataset,
    evaluate_protocols,
)
from clicklog.config import ConfigError, parse  # noqa: E402
from models.channels.config import RecallConfig  # noqa: E402
from models.channels.recall import MERGED  # noqa: E402
from models.ranking.config import RankingConfig  # noqa: E402
from models.ranking.ranker import ItemClock, Ranker  # noqa: E402
from models.ranking.training import (  # noqa: E402
    PairBuilder,
    fit,
    pair_metrics,
    request_batches,
)
from pipeline.config import apply_override  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results", "rerank.json")
PAIR_BATCH = 512


def reranked_name(depth: int) -> str:
    return f"reranked_top{depth}"


def latency(ranker: Ranker, fitted: Fitted, depths: list[int], requests: int) -> dict:
    """{depth: p50/p99 ms} of re-ranking single requests of the report half."""
    rows = []
    for batch in fitted.batches("fresh", "report", ranker.config.max_history):
        for n in range(len(batch["item_id"])):
            rows.append({key: value[n:n + 1] for key, value in batch.items()})
            if len(rows) == requests:
                break
        if len(rows) == requests:
            break
    result = {}
    for depth in depths:
        scores = [fitted.recall.merged_scores(row) for row in rows]
        ranker.rerank(rows[0], scores[0], depth)  # traces the call
        times = []
        for row, score in zip(rows, scores, strict=True):
            started = time.perf_counter()
            ranker.rerank(row, score, depth)
            times.append((time.perf_counter() - started) * 1000)
        result[str(depth)] = {"requests": len(times),
                              "p50_ms": round(float(np.percentile(times, 50)), 2),
                              "p99_ms": round(float(np.percentile(times, 99)), 2)}
    return result


def run_dataset(name: str, root: str, recall_config: RecallConfig, config: RankingConfig,
                depths: list[int], latency_requests: int) -> dict:
    fitted = Fitted(name, root, recall_config)
    towers, recall = fitted.towers, fitted.recall
    vocab = towers.vocab
    started = time.time()
    clock = ItemClock.from_clicks(fitted.clicks, config.trending_days)
    ranker = Ranker.build(config, vocab.item_ids, clock, vocab.user_ids, fitted.item_features)
    builder = PairBuilder(ranker, recall, vocab.item_counts, config, config.seed, clock)
    pairs = builder.pairs(request_batches(fitted.paths["train"], PAIR_BATCH, towers, config))
    pairs_s = time.time() - started
    started = time.time()
    training = fit(ranker, pairs, config)
    train_s = time.time() - started
    held_out = PairBuilder(ranker, recall, vocab.item_counts, config, config.seed + 1)
    report_pairs = pair_metrics(ranker, held_out.pairs(
        fitted.batches("fresh", "report", config.max_history)))

    def score_batch(batch: dict) -> dict:
        merged = recall.merged_scores(batch)
        scores = {MERGED: merged}
        for depth in depths:
            scores[reranked_name(depth)] = ranker.rerank(batch, merged, depth)
        return scores

    protocols = evaluate_protocols(
        lambda protocol: fitted.batches(protocol, "report", config.max_history), score_batch,
        vocab, fitted.evaluation, towers.export.exclude_history)
    return {"train_clicks": int(len(fitted.clicks.items)), "candidates": len(vocab.item_ids),
            "channels": list(recall.channels), "pairs_s": round(pairs_s, 1),
            "train_s": round(train_s, 1), "training": training,
            "skipped_clicks": builder.skipped, "report_pairs": report_pairs,
            "latency": latency(ranker, fitted, depths, latency_requests),
            "protocols": protocols}


def summary(name: str, result: dict) -> str:
    lines = [f"\n{name}: ranker AUC {result['report_pairs']['auc']}, log loss "
             f"{result['report_pairs']['log_loss']} (report half); latency "
             + ", ".join(f"top{d}: p50 {v['p50_ms']} ms / p99 {v['p99_ms']} ms"
                         for d, v in result["latency"].items())]
    for protocol, outcome in result["protocols"].items():
        lines.append(f"  {protocol} ({outcome['num_examples']} clicks)     hit@10  NDCG@10  "
                     "hit@100")
        for scorer, values in outcome["metrics"].items():
            lines.append(f"    {scorer:<22} {values['recall@10']:.4f}  {values['ndcg@10']:.4f}"
                         f"   {values['recall@100']:.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="movietweetings,synthetic")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a ranking or recall setting, e.g. ranking.epochs=5")
    parser.add_argument("--depths", default="100,500",
                        help="comma-separated re-ranked depths")
    parser.add_argument("--latency_requests", type=int, default=200)
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--work_dir", help="the quality benchmark's work directory (pipeline "
                        "runs and towers are reused from it)")
    args = parser.parse_args(argv)
    values: dict = {}
    for item in args.set:
        if not item.startswith(("ranking.", "recall.")):
            parser.error(f"--set {item}: expected ranking.<key>=<value> or recall.<key>=<value>")
        try:
            apply_override(values, item)
        except ValueError as err:
            parser.error(str(err))
    try:
        depths = [int(d) for d in args.depths.split(",") if d]
    except ValueError:
        parser.error(f"--depths {args.depths!r}: expected comma-separated integers")
    if not depths or min(depths) < 1:
        parser.error(f"--depths {args.depths!r}: expected depths of at least 1")
    try:
        recall_config = parse(RecallConfig, values.get("recall"))
        config = parse(RankingConfig, values.get("ranking"))
    except ConfigError as err:
        parser.error(str(err))
    results = {"ranking": config.to_dict(), "depths": depths, "datasets": {},
               "command": command_line("benchmarks.rerank", argv, args.work_dir)}

    def run(name: str, root: str) -> dict:
        result = run_dataset(name, root, recall_config, config, depths, args.latency_requests)
        print(summary(name, result), flush=True)
        return result

    each_dataset(args.datasets, args.work_dir, run, results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
