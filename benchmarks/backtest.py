"""Backtest: the pushed model, served, on the clicks that came after its run.

    .venv/bin/python -m benchmarks.backtest [--datasets movietweetings,synthetic]
        [--cutoffs 0.8,0.85,0.9] [--name defaults] [--set section.key=value ...] [--daily]

Replays a click log in time order. For each cut-off T_k (a quantile of the
log's timestamps), it writes the clicks before T_k in the log's own format,
runs `retrieval-pipeline` on them as a user would (the default config plus
`--set`s), serves what the run pushed with `retrieval-serve`, and asks it
through the official gRPC client (`serving.client.RetrievalClient`) about the
clicks from T_k to the next cut-off (or the end), under two protocols:

  * fresh history: one query per click, its history every earlier click of
    the user (real-time serving);
  * frozen history: one query per user, its history the user's clicks
    before T_k, every later click of the user a target (recommendations
    computed at the run and served until the next one).

The baselines (benchmarks/backtest_baselines.py: popularity, recent
popularity, EASE or item-kNN, last-item transitions) are fitted on the same
clicks before T_k and ranked with the same history exclusion as the served
model (the export's `exclude_history` most recent request items). Metrics:
hit@10, hit@100, NDCG@100, overall, by history bucket (none, short: 1-5
items, long) and for the clicks on items first seen after T_k.

With --daily, every cut-off after the first is a daily run: the previous
cut-off's output directory (MLMD and served versions) is copied and the
pipeline runs with `--since base` (warm-started from the last blessed model,
trained on the clicks after its window). If that run is not blessed, the
previous version keeps serving and is scored, as in production.

Writes benchmarks/results/backtest.json (one entry per --name and dataset,
merged with what is there) and prints a table; `python -m
benchmarks.backtest_page` writes docs/backtest.md from it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.backtest_baselines import baselines  # noqa: E402
from benchmarks.backtest_log import DATASETS, load_log, write_input  # noqa: E402
from benchmarks.ranking import top_k  # noqa: E402
from benchmarks.serving_latency.grpc_load import ServerProcess  # noqa: E402
from models.channels.clicks import Catalogue  # noqa: E402
from models.topk_metrics import history_bucket  # noqa: E402
from serving.client import RetrievalClient  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "backtest.json"
CUTOFFS = (0.8, 0.85, 0.9)
KS = (10, 100)
SHORT_HISTORY_MAX = 5
REQUEST_HISTORY = 50  # most recent items sent with each request
BATCH = 64


def _versions(base: Path) -> list[str]:
    return sorted(v for v in os.listdir(base) if v.isdigit()) if base.exists() else []


def run_pipeline(input_path: str, output: Path, sets: list[str], config: str | None,
                 extra: list[str] = ()) -> dict:
    """`retrieval-pipeline` on the input; returns the served (newest) version's
    dir, whether this run pushed it, and the run's time."""
    base = output / "serving" / "retrieval"
    before = _versions(base)
    command = [sys.executable, "-m", "pipeline.cli", "--data", input_path,
               "--output", str(output), *extra]
    if config:
        command += ["--config", config]
    for assignment in sets:
        command += ["--set", assignment]
    started = time.time()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"retrieval-pipeline failed on {input_path}:\n{result.stderr[-4000:]}")
    versions = _versions(base)
    return {"pipeline_s": round(time.time() - started, 1), "stdout": result.stdout,
            "version_dir": base / versions[-1] if versions else None, "base": base,
            "pushed": versions != before}


def queries(log: dict, start: int, stop: int) -> dict:
    """The fresh and frozen queries of the clicks in [start, stop).

    A click's history holds the user's clicks with strictly earlier
    timestamps (as ClickExampleGen builds it), the most recent
    `REQUEST_HISTORY` of them.
    """
    clicks_of: dict[str, list[tuple[int, str]]] = {}
    fresh: dict[str, list] = {"user": [], "history": [], "target": []}
    frozen_targets: dict[str, list[str]] = {}
    frozen_history: dict[str, list[str]] = {}
    for user, item, timestamp in zip(log["user"], log["item"], log["timestamp"], strict=True):
        if timestamp >= stop:
            break
        past = clicks_of.setdefault(user, [])
        if timestamp >= start:
            end = len(past)
            while end and past[end - 1][0] >= timestamp:  # same time: not history
                end -= 1
            fresh["user"].append(user)
            fresh["history"].append([i for _, i in past[max(0, end - REQUEST_HISTORY):end]])
            fresh["target"].append(item)
            if user not in frozen_history:  # the user's first click after the cut-off
                frozen_history[user] = [i for _, i in past[-REQUEST_HISTORY:]]
            frozen_targets.setdefault(user, []).append(item)
        past.append((timestamp, item))
    users = sorted(frozen_targets)
    return {"fresh": fresh,
            "frozen": {"user": users, "history": [frozen_history[u] for u in users],
                       "targets": [frozen_targets[u] for u in users]}}


def ranked_by_baseline(scorer, histories: list[list[str]], candidates: Catalogue,
                       exclude: int, k: int) -> list[list[str]]:
    """Each query's top k item ids by `scorer`, its last `exclude` history
    items left out (as the export excludes them)."""
    out = []
    for start in range(0, len(histories), 1024):
        part = histories[start:start + 1024]
        scores = scorer(part)
        for row, history in enumerate(part):
            seen = [candidates.index[i] for i in history[-exclude:] if i in candidates.index] \
                if exclude else []
            scores[row, seen] = -np.inf
        out += [[candidates.item_ids[i] for i in row] for row in top_k(scores, k)]
    return out


def score_lists(lists: list[list[str]], targets: list[list[str]], histories: list[list[str]],
                new_items: set[str]) -> dict:
    """hit@K and NDCG@100 of answer lists against their targets (one list may
    serve several targets: the frozen protocol), overall and by group."""
    groups: dict[str, dict[str, float]] = {}

    def add(group: str, rank: int | None) -> None:
        entry = groups.setdefault(group, {"clicks": 0, **{f"hit@{k}": 0.0 for k in KS},
                                          "ndcg@100": 0.0})
        entry["clicks"] += 1
        if rank is not None:
            for k in KS:
                entry[f"hit@{k}"] += rank < k
            entry["ndcg@100"] += 1.0 / np.log2(rank + 2) if rank < 100 else 0.0

    for answer, wanted, history in zip(lists, targets, histories, strict=True):
        position = {item: n for n, item in enumerate(answer)}
        bucket = history_bucket(len(history), SHORT_HISTORY_MAX)
        for target in wanted:
            rank = position.get(target)
            add("all", rank)
            add(f"history_{bucket}", rank)
            if target in new_items:
                add("new_items", rank)
    return {name: {"clicks": entry["clicks"],
                   **{key: round(value / entry["clicks"], 4) for key, value in entry.items()
                      if key != "clicks"}}
            for name, entry in sorted(groups.items())}


def backtest_cutoff(log: dict, start: int, stop: int, work: Path, sets: list[str],
                    config: str | None, dataset: dict, previous: Path | None = None) -> dict:
    """One cut-off; `previous`: the output directory a daily run continues."""
    input_path = write_input(log, start, work / "input", dataset)
    if previous is not None:
        shutil.copytree(previous, work / "out")
    run = run_pipeline(input_path, work / "out", sets, config,
                       ["--since", "base"] if previous is not None else [])
    before = np.asarray(log["timestamp"]) < start
    users = [u for u, b in zip(log["user"], before, strict=True) if b]
    items = [i for i, b in zip(log["item"], before, strict=True) if b]
    times = [t for t, b in zip(log["timestamp"], before, strict=True) if b]
    candidates = Catalogue(sorted(set(items)))
    new_items = {i for i in log["item"]} - set(items)
    asked = queries(log, start, stop)
    result = {"cutoff": int(start), "until": int(stop), "train_clicks": len(items),
              "target_clicks": len(asked["fresh"]["target"]),
              "target_users": len(asked["frozen"]["user"]), "pipeline_s": run["pipeline_s"],
              "pushed": run["pushed"], "daily": previous is not None}
    if run["version_dir"] is None:
        result["note"] = "nothing pushed (not blessed): " + run["stdout"][-500:]
        return result
    with open(run["version_dir"] / "assets.extra" / "retrieval_export.json") as f:
        export = json.load(f)
    exclude, k = export["exclude_history"], max(KS)
    scorers, result["baselines"] = baselines(users, items, times, candidates)
    result["protocols"] = {}
    with ServerProcess(run["base"], work / "server.log") as server, \
            RetrievalClient(server.target, batch_size=BATCH, timeout=60) as client:
        for protocol in ("fresh", "frozen"):
            q = asked[protocol]
            targets = q["targets"] if protocol == "frozen" else [[t] for t in q["target"]]
            started = time.time()
            served = [[item for item, _ in row] for row in client.recommend(
                q["user"], q["history"], k=k)]
            lists = {"model": served}
            seconds = time.time() - started
            for name, scorer in scorers.items():
                lists[name] = ranked_by_baseline(scorer, q["history"], candidates, exclude, k)
            result["protocols"][protocol] = {
                "queries": len(q["user"]), "serving_s": round(seconds, 1),
                "scorers": {name: score_lists(ranked, targets, q["history"], new_items)
                            for name, ranked in lists.items()}}
    result["new_item_share"] = round(sum(
        t in new_items for t in asked["fresh"]["target"]) / max(result["target_clicks"], 1), 4)
    return result


def summarize(cutoffs: list[dict]) -> dict:
    """Click-weighted means over the cut-offs: {protocol: {scorer: {group: metrics}}}."""
    out: dict = {}
    for cutoff in cutoffs:
        for protocol, values in cutoff.get("protocols", {}).items():
            for scorer, groups in values["scorers"].items():
                for group, metrics in groups.items():
                    entry = out.setdefault(protocol, {}).setdefault(scorer, {}).setdefault(
                        group, {"clicks": 0})
                    for key, value in metrics.items():
                        if key != "clicks":
                            entry[key] = entry.get(key, 0.0) + value * metrics["clicks"]
                    entry["clicks"] += metrics["clicks"]
    for protocol in out.values():
        for groups in protocol.values():
            for entry in groups.values():
                for key in entry:
                    if key != "clicks":
                        entry[key] = round(entry[key] / entry["clicks"], 4)
    return out


def run_dataset(name: str, fractions: list[float], sets: list[str], root: Path,
                daily: bool = False) -> dict:
    dataset = DATASETS[name]
    log = load_log(dataset, root)
    times = np.asarray(log["timestamp"])
    bounds = [int(np.quantile(times, f)) for f in fractions] + [int(times.max()) + 1]
    cutoffs = []
    for n, fraction in enumerate(fractions):
        print(f"[{name}] cut-off {fraction:g} ({bounds[n]}) ...", flush=True)
        previous = root / name / f"cut{n - 1}" / "out" if daily and n else None
        result = backtest_cutoff(log, bounds[n], bounds[n + 1], root / name / f"cut{n}",
                                 sets + dataset.get("sets", []), dataset.get("config"), dataset,
                                 previous)
        result["fraction"] = fraction
        cutoffs.append(result)
        fresh = summarize([result]).get("fresh", {})
        print(f"[{name}] fresh: model {fresh.get('model', {}).get('all')}, recent popularity "
              f"{fresh.get('recent_popularity', {}).get('all')}", flush=True)
    return {"log_clicks": len(log["item"]), "cutoffs": cutoffs, "summary": summarize(cutoffs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="movietweetings,synthetic")
    parser.add_argument("--cutoffs", default=",".join(f"{c:g}" for c in CUTOFFS))
    parser.add_argument("--name", default="defaults", help="the configuration's name in the "
                        "results (one entry per name and dataset)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config override of every pipeline run; repeatable")
    parser.add_argument("--daily", action="store_true", help="cut-offs after the first are "
                        "daily runs warm-started from the previous cut-off's output (--since base)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--work_dir", type=Path, help="keep the runs here (default: temporary)")
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.cutoffs.split(",") if f]
    if not fractions or fractions != sorted(fractions) or not all(0 < f < 1 for f in fractions):
        parser.error(f"--cutoffs {args.cutoffs!r}: expected increasing fractions in (0, 1)")
    names = [d for d in args.datasets.split(",") if d]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"--datasets: unknown {unknown}; expected some of {sorted(DATASETS)}")
    results = json.loads(args.output.read_text()) if args.output.exists() else {"runs": {}}
    entry = results["runs"].setdefault(args.name, {"sets": args.set, "datasets": {}})
    entry["sets"] = args.set
    command = ["python -m benchmarks.backtest", f"--datasets {args.datasets}",
               f"--cutoffs {args.cutoffs}", f"--name {args.name}"] + [
        f"--set {s}" for s in args.set] + (["--daily"] if args.daily else [])
    entry["command"] = " ".join(command)
    with (contextlib.nullcontext(args.work_dir) if args.work_dir
          else tempfile.TemporaryDirectory(prefix="backtest-")) as root:
        for name in names:
            entry["datasets"][name] = run_dataset(name, fractions, args.set, Path(root),
                                                  args.daily)
            entry["datasets"][name]["command"] = entry["command"]
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(results, indent=2) + "\n")
    from benchmarks.backtest_page import summary_table

    print(summary_table(results, args.name))
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
