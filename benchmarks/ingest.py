"""Ingestion benchmark: ClickExampleGen and VocabStatsGen on generated click logs.

    .venv/bin/python -m benchmarks.ingest [--sizes 1000000,10000000] [--workers 1,2]
        [--components ClickExampleGen,VocabStatsGen] [--append] [--workdir DIR]

For each size it writes a CSV click log (generation timed separately): users
with log-normal activity (mean 20 clicks, the busiest ~2.8k at any size),
Zipf items, 60 days, plus 1% of rows from planted bots (10k clicks each, one
per million rows), 0.1% malformed rows and 0.1% duplicates. The components run
with `max_clicks_per_user=5000`, so bots are quarantined. Then it runs
each component's real executor (`Executor().Do`) on DirectRunner
(``--direct_running_mode=multi_processing --direct_num_workers=W``) in a
fresh subprocess (`benchmarks.ingest_executor`), and samples the summed
RSS of that subprocess and all its children (the Beam workers) every 0.5 s,
also recording the runner process's own peak and the workers' peak apart.
Results are appended run by run to benchmarks/results/ingest.json, so an
interrupted benchmark keeps what ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "ingest.json")
START = 1_600_000_000
CHUNK = 1_000_000
USER_ACTIVITY_SIGMA = 1.2  # log-normal clicks-per-user spread
BOT_FRACTION = 0.01  # of each chunk's rows, all from one bot user per chunk
MAX_CLICKS_PER_USER = 5000  # the bot cap the components run with
COMPONENTS = ("ClickExampleGen", "VocabStatsGen")  # VocabStatsGen reads ClickExampleGen's output


def generate(path: str, num_clicks: int, seed: int = 0) -> dict:
    """Writes `num_clicks` data rows to a CSV; returns timings and counts.

    User activity is log-normal, so the busiest real user stays far below the
    bot cap however large the log; each 1M-row chunk adds one bot user
    (`b<chunk>`) with 1% of the chunk's rows, above the cap.
    """
    rng = np.random.default_rng(seed)
    num_users = max(1000, num_clicks // 20)
    num_items = max(500, num_clicks // 200)
    activity = rng.lognormal(0.0, USER_ACTIVITY_SIGMA, num_users)
    activity /= activity.sum()
    started = time.time()
    bad = duplicates = bot_rows = 0
    with open(path, "w") as f:
        f.write("user_id,item_id,timestamp,weight\n")
        for offset in range(0, num_clicks, CHUNK):
            n = min(CHUNK, num_clicks - offset)
            users = [f"u{u}" for u in rng.choice(num_users, size=n, p=activity)]
            bots = int(n * BOT_FRACTION)
            for index in rng.choice(n, size=bots, replace=False):
                users[index] = f"b{offset // CHUNK}"
            bot_rows += bots
            items = rng.zipf(1.2, n) % num_items
            times = START + rng.integers(0, 60 * 86_400, n)
            lines = [f"{u},i{i},{t},1" for u, i, t in zip(users, items, times, strict=True)]
            # 0.1% malformed (bad timestamp) and 0.1% exact duplicates of the previous row.
            for index in rng.choice(n, size=n // 1000, replace=False):
                lines[index] = f"{users[index]},i{items[index]},not-a-time,1"
            bad += n // 1000
            for index in rng.choice(np.arange(1, n), size=n // 1000, replace=False):
                lines[index] = lines[index - 1]
            duplicates += n // 1000
            f.write("\n".join(lines))
            f.write("\n")
    return {"rows": num_clicks, "users": num_users, "items": num_items,
            "bytes": os.path.getsize(path), "seconds": round(time.time() - started, 1),
            "max_expected_clicks_of_a_user": round(float(activity.max()) * num_clicks),
            "bot_users_planted": -(-num_clicks // CHUNK), "bot_rows_planted": bot_rows,
            "malformed_rows_planted": bad, "duplicate_rows_planted": duplicates}


def _rss(process) -> tuple[int, int]:
    """(RSS of `process`, summed RSS of its children: the Beam workers)."""
    import psutil

    try:
        own = process.memory_info().rss
        children = process.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, 0
    total = 0
    for proc in children:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return own, total


def run_component(component: str, data: str, work: str, workers: int) -> dict:
    """Runs one executor in a subprocess; returns seconds, peak tree RSS and its report."""
    import psutil

    args = {"component": component, "data": data, "work": work,
            "max_clicks_per_user": MAX_CLICKS_PER_USER, "beam_args": [
        "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]}
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
    started = time.time()
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.ingest_executor",
                              json.dumps(args)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    watched = psutil.Process(child.pid)
    peak = runner_peak = workers_peak = 0
    while child.poll() is None:
        runner, workers = _rss(watched)
        peak = max(peak, runner + workers)
        runner_peak = max(runner_peak, runner)
        workers_peak = max(workers_peak, workers)
        time.sleep(0.5)
    stdout, stderr = child.communicate()
    wall = time.time() - started
    if child.returncode != 0:
        raise RuntimeError(f"{component} with {workers} worker(s) failed:\n{stderr[-3000:]}")
    result = json.loads(next(line[7:] for line in stdout.splitlines()
                             if line.startswith("RESULT ")))
    return {"executor_seconds": round(result["seconds"], 1), "wall_seconds": round(wall, 1),
            "peak_rss_mib": round(peak / 2**20), "runner_peak_rss_mib": round(runner_peak / 2**20),
            "workers_peak_rss_mib": round(workers_peak / 2**20), "report": result["report"]}


def _save(results: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--components", default=",".join(COMPONENTS),
                        help=f"comma-separated subset of {COMPONENTS}")
    parser.add_argument("--workdir", default=None, help="default: a temporary directory")
    parser.add_argument("--results", default=RESULTS, help="results JSON (default: %(default)s)")
    parser.add_argument("--append", action="store_true",
                        help="add runs to an existing results file instead of replacing it")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    components = [c for c in args.components.split(",") if c]
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown or not components:
        parser.error(f"--components={args.components!r}: expected a comma-separated subset of "
                     f"{COMPONENTS}")
    command = "benchmarks/ingest.py " + " ".join(argv or sys.argv[1:])
    results = {"machine": {"cpus": os.cpu_count()}, "runs": []}
    if args.append and os.path.exists(args.results):
        with open(args.results) as f:
            results = json.load(f)
    root = args.workdir or tempfile.mkdtemp(prefix="ingest-bench-")
    os.makedirs(root, exist_ok=True)
    for size in sizes:
        data = os.path.join(root, f"clicks-{size}.csv")
        generation = generate(data, size)
        print(f"generated {size} rows in {generation['seconds']} s ({generation['bytes']} bytes)",
              flush=True)
        for count in workers:
            work = os.path.join(root, f"run-{size}-{count}")
            for component in components:
                # The machine may be shared: record how busy it was around the run.
                load_before = os.getloadavg()[0]
                measured = run_component(component, data, work, count)
                rows = measured["report"].get("rows_read") or measured["report"]["num_clicks"]
                run = {"command": command, "component": component, "clicks_in_log": size,
                       "workers": count, "load_average_1min": [round(load_before, 2),
                                                               round(os.getloadavg()[0], 2)],
                       "rows": rows, "rows_per_second": round(rows / measured["wall_seconds"]),
                       "generation": generation, **measured}
                results["runs"].append(run)
                _save(results, args.results)
                print(json.dumps({k: v for k, v in run.items() if k != "generation"}),
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
