"""Recall channels alone, merged, and merged without each one, on the
quality benchmark's splits (`python -m benchmarks.channels`).

For each dataset: the quality benchmark's pipeline run (reused from
`--work_dir`) gives the train and eval clicks and the candidates; the
two-tower channel is its `single_model` towers (trained if missing); the
other channels are fitted on the train clicks (content on the run's item
catalog)
(`recall` settings, `--set recall.<key>=<value>`). The eval users are split
in two halves by a hash of the user id: the merge's weights and quotas per
history bucket are chosen on the `tune` half (fresh history), and every
figure is measured on the other, `report`, half under both protocols, with
the evaluator's metrics and breakdowns (history bucket, item popularity,
item freshness). Results: benchmarks/results/channels.json; page:
docs/channels.md (`python -m benchmarks.channels_page`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import zlib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import quality  # noqa: E402
from clicklog.config import parse  # noqa: E402
from components.topk_evaluator.config import EvaluationConfig  # noqa: E402
from components.topk_evaluator.evaluation import (  # noqa: E402
    RELATED_K,
    eval_batches,
    evaluate_scorers,
    history_read_length,
)
from models import features  # noqa: E402
from models.channels.clicks import Catalogue, read_clicks  # noqa: E402
from models.channels.config import RecallConfig  # noqa: E402
from models.channels.recall import Recall  # noqa: E402
from models.channels.two_tower import TwoTowerChannel  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.towers_export import Towers  # noqa: E402
from models.trainer import train  # noqa: E402
from models.vocab import read_item_features  # noqa: E402
from pipeline.config import apply_override  # noqa: E402

REPO = quality.REPO
RESULTS = os.path.join(REPO, "benchmarks", "results", "channels.json")
TOWERS = "single_model"
HALVES = ("tune", "report")


def half(batches, name: str):
    """The batches' clicks of the users in half `name` (crc32 of the user id)."""
    keep = HALVES.index(name)
    for batch in batches:
        users = batch[features.USER_ID].numpy()
        mask = np.array([zlib.crc32(user) % 2 == keep for user in users])
        if mask.any():
            yield {key: tf.boolean_mask(value, mask) for key, value in batch.items()}


def towers_of(name: str, paths: dict, root: str) -> str:
    """The dataset's `single_model` towers of the quality benchmark (trained if missing)."""
    towers_dir = os.path.join(root, name, "towers", TOWERS)
    if not os.path.exists(os.path.join(towers_dir, "saved_model.pb")):
        with contextlib.redirect_stdout(io.StringIO()):
            train(paths["train"], paths["vocab"], parse(ModelConfig, quality.VARIANTS[TOWERS]),
                  towers_dir, eval_files=paths["eval"])
    return towers_dir


def without_curves(result: dict) -> dict:
    return {key: value for key, value in result.items() if key != "recall_curves"}


def evaluate_protocols(batches, score_batch, vocab, evaluation: EvaluationConfig,
                       exclude: int) -> dict:
    """{protocol: the evaluator's outcome (no curves) and its seconds} of
    `score_batch` (batch -> {name: float32 `[B, N]`}) beside popularity and
    recent popularity; `batches(protocol)` gives the eval batches."""
    popularity = np.asarray(vocab.item_counts, np.float32)
    recent = np.asarray(vocab.item_recent_counts, np.float32)

    def with_baselines(batch: dict) -> dict:
        scores = score_batch(batch)
        rows = len(batch[features.ITEM_ID])
        scores["popularity"] = np.tile(popularity, (rows, 1))
        scores["recent_popularity"] = np.tile(recent, (rows, 1))
        return {key: tf.constant(value) for key, value in scores.items()}

    protocols = {}
    for protocol in evaluation.protocols:
        started = time.time()
        protocols[protocol] = without_curves(evaluate_scorers(
            batches(protocol), with_baselines, vocab.item_ids, vocab.item_counts, evaluation,
            exclude))
        protocols[protocol]["seconds"] = round(time.time() - started, 1)
    return protocols


class Fitted:
    """A dataset's channels fitted on its train clicks and merged on the
    `tune` half of its eval users, and its eval batches by protocol and half."""

    def __init__(self, name: str, root: str, config: RecallConfig):
        self.paths = quality.run_pipeline(name, quality.DATASETS[name], os.path.join(root, name))
        self.towers = towers = Towers(towers_of(name, self.paths, root))
        vocab = towers.vocab
        catalogue = Catalogue(vocab.item_ids)
        started = time.time()
        self.clicks = read_clicks(self.paths["train"], catalogue)
        self.item_features = read_item_features(self.paths["vocab"])
        self.recall = Recall.fit(self.clicks, catalogue, config,
                                 TwoTowerChannel(towers, vocab.item_ids), self.item_features)
        self.fit_s = time.time() - started
        self.evaluation = EvaluationConfig(short_history_max=config.merge.short_history_max)
        self.read_length = history_read_length(towers, self.evaluation.short_history_max)
        started = time.time()
        self.recall.tune(self.batches("fresh", "tune"), self.evaluation.blessing_k)
        self.tune_s = time.time() - started

    def batches(self, protocol: str, which: str, read_length: int | None = None):
        return half(eval_batches(self.paths["eval"], self.evaluation.batch_size,
                                 max(self.read_length, read_length or 0),
                                 list(self.towers.query_specs[2:]), protocol), which)


def run_dataset(name: str, root: str, config: RecallConfig) -> dict:
    fitted = Fitted(name, root, config)
    recall, vocab = fitted.recall, fitted.towers.vocab
    protocols = evaluate_protocols(lambda protocol: fitted.batches(protocol, "report"),
                                   recall.score_batch, vocab, fitted.evaluation,
                                   fitted.towers.export.exclude_history)
    item_cf = recall.channels.get("item_cf")
    related = recall.related_hits(fitted.batches("fresh", "report"), RELATED_K) \
        if recall.related is not None else None
    return {"train_clicks": int(len(fitted.clicks.items)), "candidates": len(vocab.item_ids),
            "fit_s": round(fitted.fit_s, 1), "tune_s": round(fitted.tune_s, 1),
            "item_cf": getattr(item_cf, "report", None), "fit": recall.fit_reports,
            "related_items": related,
            "merge": recall.reports, "protocols": protocols}


def summary(results: dict, k: int = 100) -> str:
    lines = []
    for name, result in results["datasets"].items():
        for protocol, outcome in result["protocols"].items():
            metrics = outcome["metrics"]
            lines.append(f"\n{name}, {protocol} history ({outcome['num_examples']} report-half "
                         f"clicks, {result['candidates']} candidates): hit@{k}")
            history = {scorer: groups.get("history", {})
                       for scorer, groups in outcome["breakdowns"].items()}
            for scorer, values in metrics.items():
                buckets = "  ".join(
                    f"{bucket} {values_b.get(f'recall@{k}', float('nan')):.4f}"
                    for bucket, values_b in sorted(history.get(scorer, {}).items()))
                lines.append(f"  {scorer:<28} {values[f'recall@{k}']:.4f}   {buckets}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="movietweetings,movietweetings_eval20,synthetic")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a recall setting, e.g. recall.trending.half_life_days=14")
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--merge", action="store_true",
                        help="keep the other datasets already in --output")
    parser.add_argument("--work_dir", help="the quality benchmark's work directory (pipeline "
                        "runs and towers are reused from it)")
    args = parser.parse_args(argv)
    values: dict = {}
    for item in args.set:
        if not item.startswith("recall."):
            parser.error(f"--set {item}: expected recall.<key>=<value>")
        try:
            apply_override(values, item)
        except ValueError as err:
            parser.error(str(err))
    config = parse(RecallConfig, values.get("recall"))
    results = {"recall": config.to_dict(), "datasets": {}, "commands": []}
    if args.merge and os.path.exists(args.output):
        with open(args.output) as f:
            previous = json.load(f)
        results["datasets"], results["commands"] = previous["datasets"], previous["commands"]
    results["commands"].append(command_line("benchmarks.channels", argv, args.work_dir))

    def run(name: str, root: str) -> dict:
        result = run_dataset(name, root, config)
        result["recall"] = config.to_dict()
        print(summary({"datasets": {name: result}}), flush=True)
        return result

    each_dataset(args.datasets, args.work_dir, run, results, args.output)
    return 0


def command_line(module: str, argv: list[str] | None, work_dir: str | None) -> str:
    """The command as run, the work directory written `W`."""
    return f"python -m {module} " + " ".join(
        "W" if work_dir and a == work_dir else a for a in (argv or sys.argv[1:]))


def each_dataset(datasets: str, work_dir: str | None, run, results: dict, output: str) -> None:
    """`results["datasets"][name] = run(name, root)` for each comma-separated
    dataset, in `work_dir` (or a temporary directory), `results` written to
    `output` after each."""
    with (contextlib.nullcontext(work_dir) if work_dir
          else tempfile.TemporaryDirectory()) as root:
        for name in [d for d in datasets.split(",") if d]:
            results["datasets"][name] = run(name, root)
            os.makedirs(os.path.dirname(output), exist_ok=True)
            with open(output, "w") as f:
                json.dump(results, f, indent=2)
    print(f"\nwritten to {os.path.relpath(output, REPO)}")


if __name__ == "__main__":
    sys.exit(main())
