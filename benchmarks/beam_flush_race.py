"""Reproduces the local-runner data loss on the code that showed it, with and without the guard.

    git worktree add /tmp/old 431b0b2~1
    (cd /tmp/old && /path/to/repo/.venv/bin/python /path/to/repo/benchmarks/beam_flush_race.py \\
        --mode stock)      # and again with --mode guarded

Runs the pre-change ClickExampleGen (which held hundreds of MB per stage input
at 1M clicks) on that tree's own generated 1M-click log with 2 worker
processes. `stock` leaves Beam as installed; `guarded` first sets the runner's
time-based flush limit to 0, as `components/beam_runner.py` does. It prints
one RESULT line: mode, seconds, "ok" or the reconciliation error, and the
ingestion totals. Run it from inside the old tree (its `components` package is
imported). See docs/architecture.md, "Known issues".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("stock", "guarded"), required=True)
    parser.add_argument("--workdir", default="/tmp/beam-flush-race")
    parser.add_argument("--clicks", type=int, default=1_000_000)
    args = parser.parse_args()
    old_tree = os.getcwd()
    sys.path[:0] = [old_tree, os.path.join(old_tree, "benchmarks")]
    import ingest as old_benchmark  # the old tree's generator (Zipf users)

    os.makedirs(args.workdir, exist_ok=True)
    data = os.path.join(args.workdir, f"clicks-{args.clicks}.csv")
    if not os.path.exists(data):
        old_benchmark.generate(data, args.clicks)
    if args.mode == "guarded":
        from apache_beam.runners.portability.fn_api_runner import worker_handlers

        worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts

    from components import click_example_gen
    from components.artifacts import QuarantinedClicks

    work = os.path.join(args.workdir, f"run-{args.mode}-{int(time.time())}")
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=[
        "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(work, "examples")
    quarantine = QuarantinedClicks()
    quarantine.uri = os.path.join(work, "quarantine")
    started = time.time()
    try:
        click_example_gen.Executor(context).Do(
            {}, {"examples": [examples], "quarantine": [quarantine]},
            {"input_base": data, "config": json.dumps({"max_bad_fraction": 0.5})})
        outcome = "ok"
    except RuntimeError as error:  # the reconciliation check
        outcome = f"RuntimeError: {str(error)[:300]}"
    report_path = os.path.join(quarantine.uri, "ingestion.json")
    totals = json.load(open(report_path))["totals"] if os.path.exists(report_path) else {}
    print("RESULT", args.mode, round(time.time() - started), outcome, json.dumps(totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
