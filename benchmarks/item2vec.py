"""The item2vec and content channels alone, over a grid of item2vec settings
(`python -m benchmarks.item2vec`): how its defaults were chosen.

For each dataset (the quality benchmark's pipeline runs, reused from
`--work_dir`): item2vec is fitted on the train clicks once per variant
(the `recall.item2vec` defaults with the variant's settings), and ranked
alone on every eval click under both protocols, beside the content channel,
item_cf, recent popularity and popularity. A channel answers only a click with
history, so the figures to compare are those of the history buckets
(short, long). `related_items` from its neighbours is
judged by next-click hit@20 against co-occurrence counts, item_cf's
neighbours and content's. Results: benchmarks/results/item2vec.json; page:
docs/item2vec.md (`python -m benchmarks.item2vec_page`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks import quality  # noqa: E402
from benchmarks.channels import command_line, each_dataset, evaluate_protocols  # noqa: E402
from clicklog.config import parse  # noqa: E402
from components.topk_evaluator.config import EvaluationConfig  # noqa: E402
from components.topk_evaluator.evaluation import RELATED_K, eval_batches  # noqa: E402
from models.channels.clicks import Catalogue, read_clicks  # noqa: E402
from models.channels.config import RecallConfig  # noqa: E402
from models.channels.recall import Recall  # noqa: E402
from models.vocab import read_item_features, read_vocab  # noqa: E402

REPO = quality.REPO
RESULTS = os.path.join(REPO, "benchmarks", "results", "item2vec.json")
# name -> recall.item2vec settings over the defaults. MovieTweetings is a
# rating log over years: the session gap is a real choice there.
VARIANTS = {
    "defaults": {},
    "gap_1h": {"session_gap_hours": 1.0},
    "gap_24h": {"session_gap_hours": 24.0},
    "gap_7d": {"session_gap_hours": 168.0},
    "sampling_power_0.5": {"sampling_power": 0.5},
    "sampling_power_0.75": {"sampling_power": 0.75},
    "no_global_context": {"global_context": False},
    "same_category_negatives_2": {"same_category_negatives": 2},
    "pool_items_3": {"pool_items": 3},
    "pool_items_30": {"pool_items": 30},
    "batch_1024": {"batch_size": 1024},
    "epochs_10": {"epochs": 10},
    "dim_64": {"dim": 64},
}
# Eval history read per click, and removed from every ranking (the export's
# default `model.export.exclude_history`).
READ_LENGTH = EXCLUDE_HISTORY = 50


def run_dataset(name: str, root: str, variants: list[str]) -> dict:
    paths = quality.run_pipeline(name, quality.DATASETS[name], os.path.join(root, name))
    vocab = read_vocab(paths["vocab"])
    catalogue = Catalogue(vocab.item_ids)
    clicks = read_clicks(paths["train"], catalogue)
    item_features = read_item_features(paths["vocab"])
    evaluation = EvaluationConfig()
    base = RecallConfig()
    fitted: dict[str, Recall] = {}
    fit_s: dict[str, float] = {}
    for variant in variants:
        config = base.replace(channels=("item2vec",),
                              item2vec=base.item2vec.replace(**VARIANTS[variant]))
        started = time.time()
        fitted[variant] = Recall.fit(clicks, catalogue, config, item_features=item_features)
        fit_s[variant] = round(time.time() - started, 1)
    content = (Recall.fit(clicks, catalogue, base.replace(channels=("content",)),
                          item_features=item_features) if item_features else None)
    # related_items from item_cf's neighbours (and from content's alone), once.
    others = {"item_cf": Recall.fit(clicks, catalogue, base.replace(channels=("item_cf",)))}
    if content is not None:
        others["content"] = content

    def score_batch(batch: dict) -> dict:
        scores = {variant: recall.channels["item2vec"].score(recall.requests(batch))[0]
                  for variant, recall in fitted.items()}
        for name, recall in others.items():
            scores[name] = recall.channels[name].score(recall.requests(batch))[0]
        return scores

    protocols = evaluate_protocols(
        lambda protocol: eval_batches(paths["eval"], evaluation.batch_size, READ_LENGTH, [],
                                      protocol),
        score_batch, vocab, evaluation, EXCLUDE_HISTORY)
    related = {variant: recall.related_hits(
        eval_batches(paths["eval"], evaluation.batch_size, READ_LENGTH, [], "fresh"), RELATED_K)
        for variant, recall in {**fitted, **others}.items()}
    return {"train_clicks": int(len(clicks.items)), "candidates": len(catalogue),
            "fit": {variant: {"seconds": fit_s[variant],
                              **recall.fit_reports["item2vec"]}
                    for variant, recall in fitted.items()},
            "related_items": related, "protocols": protocols}


def summary(name: str, result: dict) -> str:
    """hit@100 by history bucket, and related_items' hit@20, per scorer."""
    lines = []
    for protocol, outcome in result["protocols"].items():
        lines.append(f"\n{name}, {protocol}: {outcome['num_examples']} eval clicks; "
                     "hit@100 with short / long history")
        for scorer in outcome["metrics"]:
            history = outcome["breakdowns"][scorer]["history"]
            hits = "  ".join(f"{bucket} {history[bucket]['recall@100']:.4f}"
                             for bucket in ("short", "long") if bucket in history)
            related = result["related_items"].get(scorer)
            if related:
                hits += "   related " + ", ".join(
                    f"{key} {value}" for key, value in related.items() if "hit@" in key)
            lines.append(f"  {scorer:<28} {hits}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="movietweetings,synthetic")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--work_dir", help="the quality benchmark's work directory")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; expected some of {list(VARIANTS)}")
    results = {"defaults": parse(RecallConfig, None).item2vec.to_dict(),
               "variants": {v: VARIANTS[v] for v in variants}, "datasets": {},
               "command": command_line("benchmarks.item2vec", argv, args.work_dir)}

    def run(name: str, root: str) -> dict:
        result = run_dataset(name, root, variants)
        print(summary(name, result), flush=True)
        return result

    each_dataset(args.datasets, args.work_dir, run, results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
