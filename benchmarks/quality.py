"""Model-option ablation against classic baselines, all scored in one run.

For each dataset the real pipeline (`retrieval-pipeline` with one in-process
Beam worker and one single-member training epoch: only its ingestion and
VocabStats outputs are used here)
produces the temporal train/eval split and the vocabularies. Then, on the
same eval clicks:

  * all-time popularity and recent popularity (VocabStats' recent window, the
    last 10% of the training period);
  * implicit ALS (the `implicit` package), the user factor recomputed from
    the click's history (popularity for an empty history);
  * the model with the default configuration (a three-member seed ensemble),
    and one member of it (`single_model`) with one option changed per row.

Metric: full-catalogue hit rate@10/50/100 (the clicked item among the top K of
all candidate items), the click's history excluded, as the TopKEvaluator
ranks (benchmarks/hit_rates.py).

    .venv/bin/python -m benchmarks.quality [--datasets movietweetings,...] [--only NAME,...]

Writes benchmarks/results/quality.json (merged into any datasets already
there with --merge) and prints a table; `python -m benchmarks.ablation_page`
turns the JSON into docs/ablation.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import hit_rates as rates  # noqa: E402
from clicklog import synthetic  # noqa: E402
from clicklog.config import parse  # noqa: E402
from components.artifacts import VocabStats  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.trainer import train  # noqa: E402
from models.vocab import read_vocab  # noqa: E402
from pipeline import reports  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results", "quality.json")
MOVIETWEETINGS = os.path.join(REPO, "data", "movietweetings-100k", "ratings.dat")

# name -> extra retrieval-pipeline arguments (config, split) and its data.
# MovieTweetings joins its movies.dat (genres, title words) for clicked items
# only: the bundled movies.dat lists exactly the movies rated somewhere in the
# 100k sample, so its never-clicked movies are precisely the eval split's new
# items, which no real catalogue would single out. The synthetic data joins
# its items.csv (each item's category).
MOVIETWEETINGS_SETS = ["--config", os.path.join(REPO, "configs", "movietweetings.yaml"),
                       "--set", "vocab.item_catalog.include_unclicked=false"]
DATASETS = {
    "movietweetings": {"sets": MOVIETWEETINGS_SETS},
    "movietweetings_eval20": {"sets": MOVIETWEETINGS_SETS
                              + ["--set", "ingestion.eval_fraction=0.2"]},
    "synthetic": {"sets": [], "synthetic": True},
    # The same log with every catalogue item a candidate: items first clicked
    # in the eval window are reachable (through their category), so
    # `new_items_hit_rate@K` measures them.
    "synthetic_catalogue": {"sets": [], "synthetic": True, "include_unclicked": True},
    # The same clicks, each shown after 10 impressions of popular items from
    # categories the user dislikes (`retrieval-datagen --impressions_per_click`).
    "synthetic_impressions": {"sets": ["--set", "ingestion.schema.event_type=event",
                                       "--set", "ingestion.impression_event_types=[impression]"],
                              "synthetic": True, "impressions_per_click": 10},
    # The same users and items, with 70% of the eval window's clicks moved
    # to new accounts (no training click): mostly cold users at eval time.
    "synthetic_new_users": {"sets": [], "synthetic": True, "new_user_click_share": 0.7},
}

SINGLE = {"ensemble": {"size": 1}}
# name -> changes to one member of the defaults (`single_model`), section by section.
_CHANGES_TO_ONE_MEMBER = {
    "single_model": {},
    "single_model_seed_43": {"training": {"seed": 43}},
    "single_model_seed_44": {"training": {"seed": 44}},
    "no_logq": {"loss": {"logq_correction": False}},
    "mixed_uniform_256": {"negatives": {"mixed": 256}},
    "mixed_popularity_256": {"negatives": {"mixed": 256, "mixed_distribution": "popularity"}},
    "loss_nce": {"loss": {"kind": "nce", "temperature": 1.0}},
    "loss_nce_mixed_popularity_256": {"loss": {"kind": "nce", "temperature": 1.0},
                                      "negatives": {"mixed": 256,
                                                    "mixed_distribution": "popularity"}},
    "hard_negatives_64": {"negatives": {"hard": 64}},
    "no_accidental_hit_removal": {"negatives": {"remove_accidental_hits": False}},
    "loss_bce": {"loss": {"kind": "bce"}},
    "loss_triplet_hinge": {"loss": {"kind": "triplet_hinge"}},
    "loss_triplet_logistic": {"loss": {"kind": "triplet_logistic"}},
    "cosine": {"towers": {"similarity": "cosine"}, "loss": {"temperature": 0.05}},
    "attention_pooling": {"history": {"pooling": "attention"}},
    "self_attention_history": {"history": {"pooling": "self_attention"}},
    # Only the synthetic_impressions log has impressions; elsewhere these
    # rows train exactly as single_model.
    "impressed_negatives_10_weight_1": {"negatives": {"impressions": 10,
                                                      "impression_weight": 1.0}},
    "impressed_negatives_10_weight_10": {"negatives": {"impressions": 10,
                                                       "impression_weight": 10.0}},
    "self_attention_history_dropout_0.2": {"history": {"pooling": "self_attention",
                                                       "dropout": 0.2}},
    "no_history_dropout": {"history": {"dropout": 0.0}},
    "max_history_10": {"history": {"max_history": 10}},
    "history_item_side_features": {"history": {"item_side_features": True}},
    "no_query_mlp": {"towers": {"query_hidden_layers": []}},
    "query_mlp_256": {"towers": {"query_hidden_layers": [256]}},
    "with_user_id": {"towers": {"user_id": True}},
    "recency_input": {"towers": {"recency": True}},
    "example_age": {"towers": {"example_age": True}},
    # The example age in place of the trending prior (compare no_trending_prior).
    "example_age_no_trending_prior": {"towers": {"example_age": True},
                                      "prior": {"in_training": False, "grid": [],
                                                "weight": 0.0}},
    "no_popularity_input": {"towers": {"popularity": False}},
    "no_item_side_features": {"towers": {"item_side_features": False}},
    # Catalogue `text` features (MovieTweetings titles) through the DSSM text
    # tower instead of the hashed word bag; the synthetic catalogue has no
    # text feature, so there it equals single_model.
    "dssm_text_tower": {"towers": {"text_tower": "dssm"}},
    "dssm_text_tower_relu": {"towers": {"text_tower": "dssm", "text_activation": "relu"}},
    "no_prior_in_training": {"prior": {"in_training": False}},
    "no_trending_prior": {"prior": {"in_training": False, "grid": [], "weight": 0.0}},
    "prior_learned_weight_served": {"prior": {"grid": []}},
    "no_recency_weighting": {"training": {"recency_half_life_days": 0.0}},
    "teacher_guided": {"teacher": {"enabled": True}},
    "teacher_guided_discriminator": {"teacher": {"enabled": True, "discriminator": True}},
    "embedding_dim_128": {"towers": {"embedding_dim": 128}},
}
# name -> changes to the defaults (the three-member ensemble).
_CHANGES_TO_DEFAULTS = {
    "defaults": {},
    "defaults_seed_45": {"training": {"seed": 45}},
    "ensemble_5": {"ensemble": {"size": 5}},
}


def merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied section by section."""
    out = {name: dict(values) for name, values in base.items()}
    for name, values in changes.items():
        out[name] = {**out.get(name, {}), **values}
    return out


VARIANTS = {**{name: merged(SINGLE, changes) for name, changes in _CHANGES_TO_ONE_MEMBER.items()},
            **_CHANGES_TO_DEFAULTS}
BASE_OF = {**{name: "single_model" for name in _CHANGES_TO_ONE_MEMBER}, "single_model": None,
           **{name: "defaults" for name in _CHANGES_TO_DEFAULTS}, "defaults": None}


def run_pipeline(name: str, spec: dict, root: str) -> dict:
    """Runs retrieval-pipeline once; returns the split example globs and vocab dir.

    A pipeline output already in `root` (from an earlier `--work_dir` run) is reused.
    """
    output = os.path.join(root, "out")
    done = os.path.join(root, "pipeline-done")
    if os.path.exists(done):
        return _split_paths(output, 0.0)
    data = MOVIETWEETINGS
    arguments = list(spec["sets"])
    if spec.get("synthetic"):
        data = synthetic.write(synthetic.SyntheticConfig(
            num_users=3000, num_items=1500, seed=7,
            impressions_per_click=spec.get("impressions_per_click", 0),
            new_user_click_share=spec.get("new_user_click_share", 0.0)),
            os.path.join(root, "data"))
        arguments += ["--set", f"vocab.item_catalog.path={os.path.join(root, 'data', 'items.csv')}",
                      "--set", "vocab.item_catalog.features={category: string}",
                      "--set", "vocab.item_catalog.include_unclicked="
                      + ("true" if spec.get("include_unclicked") else "false")]
    # One in-process Beam worker: the example files then hold the same clicks
    # in the same order on every run, so the rows are reproducible from a
    # fresh work directory (with two workers the shard files' contents vary
    # from run to run, and with them the training order).
    command = [sys.executable, "-m", "pipeline.cli", "--data", data, "--output", output,
               "--set", "model.training.epochs=1", "--set", "model.ensemble.size=1",
               "--set", "pipeline.beam_args=[--direct_running_mode=in_memory]",
               "--set", "pipeline.final_fit=false"] + arguments
    started = time.time()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pipeline on {name} failed:\n{result.stderr[-3000:]}")
    open(done, "w").close()
    return _split_paths(output, time.time() - started)


def _split_paths(output: str, seconds: float) -> dict:
    store = reports._store(os.path.join(output, "tfx", "metadata.sqlite"))
    examples = reports.node_output(store, "ClickExampleGen", "Examples")
    # The evaluated model's vocabulary (train split), not the final fit's.
    vocab = reports.node_output(store, "VocabStatsGen", VocabStats.TYPE_NAME)
    return {"train": os.path.join(examples.uri, "Split-train", "*"),
            "eval": os.path.join(examples.uri, "Split-eval", "*"),
            "vocab": vocab.uri, "pipeline_s": round(seconds, 1)}


def run_dataset(name: str, spec: dict, variants: list[str], root: str,
                with_als: bool = True) -> dict:
    paths = run_pipeline(name, spec, os.path.join(root, name))
    vocab = read_vocab(paths["vocab"])
    train_set = rates.read_examples(paths["train"])
    eval_set = rates.read_examples(paths["eval"])
    hit_rates = rates.HitRates(vocab.item_ids, eval_set, train_items=set(train_set["item"]))
    result = {"train_clicks": len(train_set["item"]), "eval_clicks": len(eval_set["item"]),
              "candidates": vocab.num_items, "pipeline_s": paths["pipeline_s"],
              "eval_targets_outside_catalogue": int((hit_rates.targets < 0).sum()),
              "eval_clicks_on_new_items": int(hit_rates.new_item.sum()),
              "baselines": {}, "model": {}}
    result["baselines"]["popularity"] = rates.popularity(vocab.item_counts, hit_rates)
    result["baselines"]["recent_popularity"] = rates.popularity(vocab.item_recent_counts,
                                                                hit_rates)
    if with_als:
        started = time.time()
        result["baselines"]["als"] = rates.als(train_set, vocab, hit_rates)
        result["baselines"]["als"]["seconds"] = round(time.time() - started, 1)
    print(f"[{name}] baselines {json.dumps(result['baselines'])}", flush=True)
    for variant in variants:
        config = parse(ModelConfig, VARIANTS[variant])
        towers_dir = os.path.join(root, name, "towers", variant)
        started = time.time()
        with contextlib.redirect_stdout(io.StringIO()):
            # Eval clicks: the trending prior's weight is chosen on them (the
            # Trainer's eval split in the pipeline), and the teacher's AUC.
            logs = train(paths["train"], paths["vocab"], config, towers_dir,
                         eval_files=paths["eval"])
        seconds = time.time() - started
        metrics = rates.model_hit_rates(towers_dir, eval_set, hit_rates)
        if "teacher_auc" in logs:
            metrics["teacher_auc"] = round(logs["teacher_auc"], 4)
        if "trending_prior_learned_weight" in logs:
            metrics["trending_prior_learned_weight"] = logs["trending_prior_learned_weight"]
        if "weight" in logs.get("trending_prior", {}):
            metrics["trending_prior_weight"] = logs["trending_prior"]["weight"]
        metrics["train_s"] = round(seconds, 1)
        result["model"][variant] = metrics
        print(f"[{name}] {variant:>28}: {metrics}", flush=True)
    return result


def with_ratio(result: dict) -> dict:
    """`result` with the defaults' hit@100 over recent popularity's, when both are there."""
    recent = result["baselines"]["recent_popularity"]["hit_rate@100"]
    default = result["model"].get("defaults", {}).get("hit_rate@100")
    if default is not None and recent:
        result["defaults_over_recent_popularity@100"] = round(default / recent, 3)
    return result


def table(results: dict) -> str:
    lines = []
    for name, result in results["datasets"].items():
        lines.append(f"\n{name}: {result['train_clicks']} train / {result['eval_clicks']} eval "
                     f"clicks, {result['candidates']} candidates")
        lines.append(f"| {'method':<34} | hit@10 | hit@50 | hit@100 |")
        lines.append(f"|{'-' * 36}|--------|--------|---------|")
        rows = [(f"baseline: {n}", m) for n, m in result["baselines"].items()]
        rows += [(f"model: {n}", m) for n, m in result["model"].items()]
        for label, m in rows:
            lines.append(f"| {label:<34} | {m['hit_rate@10']:.4f} | {m['hit_rate@50']:.4f} | "
                         f"{m['hit_rate@100']:.4f}  |")
        if "defaults_over_recent_popularity@100" in result:
            lines.append(f"defaults / recent popularity at hit@100: "
                         f"{result['defaults_over_recent_popularity@100']}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--only", default=",".join(VARIANTS), help="model variants to train")
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--merge", action="store_true",
                        help="keep the results already in --output (other datasets, and other "
                             "variants of the datasets run here)")
    parser.add_argument("--work_dir", help="keep pipeline outputs here and reuse them on the "
                        "next run (default: a temporary directory)")
    parser.add_argument("--no_als", action="store_true",
                        help="skip the ALS baseline (quicker exploratory runs)")
    args = parser.parse_args(argv)
    variants = [v for v in args.only.split(",") if v]
    datasets = [d for d in args.datasets.split(",") if d]
    for name in datasets + variants:
        if name not in DATASETS and name not in VARIANTS:
            parser.error(f"unknown dataset or variant {name!r}; expected some of "
                         f"{sorted(DATASETS)} / {sorted(VARIANTS)}")
    started = time.time()
    results = {"defaults": ModelConfig().to_dict(), "variants": VARIANTS, "base_of": BASE_OF,
               "datasets": {}, "commands": []}
    if args.merge and os.path.exists(args.output):
        with open(args.output) as f:
            previous = json.load(f)
        results["datasets"] = previous.get("datasets", {})
        results["commands"] = previous.get("commands", [])
    results["commands"].append("python -m benchmarks.quality " + " ".join(
        "W" if args.work_dir and a == args.work_dir else a for a in (argv or sys.argv[1:])))
    with (contextlib.nullcontext(args.work_dir) if args.work_dir
          else tempfile.TemporaryDirectory()) as root:
        for name in datasets:
            result = run_dataset(name, DATASETS[name], variants, root, with_als=not args.no_als)
            earlier = results["datasets"].get(name, {}) if args.merge else {}
            if earlier:
                if any(earlier["baselines"]["recent_popularity"][f"hit_rate@{k}"]
                       != result["baselines"]["recent_popularity"][f"hit_rate@{k}"]
                       for k in rates.KS):
                    raise RuntimeError(f"{name}: the baselines differ from the results in "
                                       f"{args.output}; rerun every variant instead of --merge")
                result["model"] = {**earlier.get("model", {}), **result["model"]}
                result["baselines"] = {**earlier["baselines"], **result["baselines"]}
            results["datasets"][name] = with_ratio(result)
            os.makedirs(os.path.dirname(args.output), exist_ok=True)
            with open(args.output, "w") as f:
                json.dump(results, f, indent=2)
    results["runtime_s"] = round(time.time() - started, 1)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=2)
    print(table(results))
    print(f"\nwritten to {os.path.relpath(args.output, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
