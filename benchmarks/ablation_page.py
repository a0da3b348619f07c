"""Writes docs/ablation.md from benchmarks/results/quality.json.

    .venv/bin/python -m benchmarks.ablation_page [--results PATH] [--output PATH]

One table per dataset: the baselines, then every model row with its
configuration spelled out as changes to its base row (`single_model`, one
member of the defaults, or `defaults`, the three-member ensemble), hit rates
at 10/50/100, the ratio to recent popularity, the difference to the base and,
where measured, hit@100 on the eval clicks to items first clicked in the eval
window. Then a verdict per option: its difference to the base on every
dataset against the seed noise of that dataset. Nothing in the page is typed
by hand.
"""

from __future__ import annotations

import json
import os
import sys

from benchmarks.pages import REPO, write_page

RESULTS = os.path.join(REPO, "benchmarks", "results", "quality.json")
OUTPUT = os.path.join(REPO, "docs", "ablation.md")
KS = (10, 50, 100)
SEED_ROWS = ("single_model_seed_43", "single_model_seed_44")
NEW_ITEMS = "new_items_hit_rate@100"


def flat(config: dict, prefix: str = "") -> dict:
    """{"model.towers.user_id": True, ...} of a nested config dict."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changes(variant: str, results: dict) -> str:
    """The variant's settings that differ from its base row's, as `key=value`."""
    variants, base_of = results["variants"], results["base_of"]
    base = base_of.get(variant)
    mine = flat(variants[variant])
    theirs = flat(variants[base]) if base else {}
    diff = {k: v for k, v in mine.items() if theirs.get(k, object()) != v}
    if not diff and not base:
        return "the defaults" if variant == "defaults" else ""
    return ", ".join(f"`model.{k}={json.dumps(v)}`" for k, v in sorted(diff.items())) or "-"


def dataset_table(name: str, result: dict, results: dict) -> list[str]:
    recent = result["baselines"]["recent_popularity"]["hit_rate@100"]
    new_clicks = result.get("eval_clicks_on_new_items")
    new_note = (f" {new_clicks:,} eval clicks go to items first clicked in the eval window "
                "(`new items`, measured for the rows run since the column exists)."
                if new_clicks is not None else "")
    lines = [f"## {name}", "",
             f"{result['train_clicks']:,} training clicks, {result['eval_clicks']:,} eval clicks, "
             f"{result['candidates']:,} candidates; "
             f"{result['eval_targets_outside_catalogue']:,} eval clicks go to items outside the "
             f"candidates (a miss for every row).{new_note}", "",
             "| row | changes from its base | hit@10 | hit@50 | hit@100 | / recent popularity "
             "| vs base at hit@100 | new items hit@100 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]

    def new_items(values: dict) -> str:
        return f"{values[NEW_ITEMS]:.4f}" if NEW_ITEMS in values else "-"

    for baseline, values in result["baselines"].items():
        lines.append(f"| baseline: {baseline} | | "
                     + " | ".join(f"{values[f'hit_rate@{k}']:.4f}" for k in KS)
                     + f" | {values['hit_rate@100'] / recent:.3f}x | | {new_items(values)} |")
    order = [v for v in results["variants"] if v in result["model"]]
    for variant in order:
        values = result["model"][variant]
        base = results["base_of"].get(variant)
        delta = ""
        if base and base in result["model"]:
            delta = f"{values['hit_rate@100'] - result['model'][base]['hit_rate@100']:+.4f}"
        label = f"**{variant}**" if variant in ("defaults", "single_model") else variant
        lines.append(f"| {label} | {changes(variant, results)} | "
                     + " | ".join(f"{values[f'hit_rate@{k}']:.4f}" for k in KS)
                     + f" | {values['hit_rate@100'] / recent:.3f}x | {delta} | "
                     f"{new_items(values)} |")
    return lines + [""]


def seed_noise(result: dict) -> float | None:
    """Largest |hit@100 difference| of the seed rows to `single_model`, or None."""
    model = result["model"]
    if "single_model" not in model or not any(r in model for r in SEED_ROWS):
        return None
    base = model["single_model"]["hit_rate@100"]
    return max(abs(model[r]["hit_rate@100"] - base) for r in SEED_ROWS if r in model)


def verdict(deltas: list[float], noises: list[float]) -> str:
    """"helps" / "hurts" when every dataset moves beyond its seed noise one
    way, "within noise" when none does, "mixed" otherwise."""
    if all(d > n for d, n in zip(deltas, noises, strict=True)):
        return "helps"
    if all(d < -n for d, n in zip(deltas, noises, strict=True)):
        return "hurts"
    if all(abs(d) <= n for d, n in zip(deltas, noises, strict=True)):
        return "within noise"
    return "mixed"


def verdict_table(results: dict) -> list[str]:
    """Per option row of `single_model`: its hit@100 difference on each
    dataset it ran on (seed noise in brackets) and the verdict over those."""
    datasets = {name: result for name, result in results["datasets"].items()
                if seed_noise(result) is not None}
    if not datasets:
        return []
    names = list(datasets)
    lines = ["## Verdicts", "",
             "Each option's hit@100 difference to `single_model` on each dataset it ran on, "
             "and in brackets that dataset's seed noise (the largest difference of the seed "
             "rows to `single_model`). An option **helps** when it beats the noise on every "
             "dataset it ran on, **hurts** when it falls below it on every one, is **within "
             "noise** when it stays inside it everywhere, and is **mixed** otherwise.", "",
             "| option | " + " | ".join(names) + " | verdict |",
             "|---|" + "---:|" * len(names) + "---|"]
    for variant in results["variants"]:
        if results["base_of"].get(variant) != "single_model" or variant in SEED_ROWS:
            continue
        ran = [n for n in names if variant in datasets[n]["model"]]
        if not ran:
            continue
        deltas = {n: datasets[n]["model"][variant]["hit_rate@100"]
                  - datasets[n]["model"]["single_model"]["hit_rate@100"] for n in ran}
        noises = {n: seed_noise(datasets[n]) for n in ran}
        cells = [f"{deltas[n]:+.4f} ({noises[n]:.4f})" if n in deltas else "-" for n in names]
        lines.append(f"| {variant} | " + " | ".join(cells) + " | "
                     + verdict([deltas[n] for n in ran], [noises[n] for n in ran]) + " |")
    return lines + [""]


def page(results: dict) -> str:
    lines = [
        "# Ablation: one change at a time",
        "",
        "Generated by `python -m benchmarks.ablation_page` from "
        "`benchmarks/results/quality.json`; do not edit by hand. The benchmark "
        "(`benchmarks/quality.py`) runs the pipeline once per dataset for the temporal "
        "split and the vocabularies, then trains every row on the same training clicks "
        "and scores it on the same eval clicks: full-catalogue hit rate@K, the click's "
        "history excluded. `single_model` is one member of the defaults (seed 42); the "
        "rows under it change one thing of it. `defaults` is the shipped configuration, "
        "a three-member seed ensemble. Training is deterministic for a seed; the seed "
        "rows show how much of a difference is training noise.",
        "",
        "Commands that produced these results (`W` is a work directory):",
        "",
        *[f"    {command}" for command in results.get("commands", [])],
        "",
    ]
    lines += verdict_table(results)
    for name, result in results["datasets"].items():
        lines += dataset_table(name, result, results)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return write_page(page, RESULTS, OUTPUT, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
