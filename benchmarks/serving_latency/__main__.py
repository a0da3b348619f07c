"""Serving benchmark: embedded ScaNN vs brute force vs FAISS IVF, and end-to-end gRPC.

    .venv/bin/python -m benchmarks.serving_latency

On 1,000,000 synthetic clustered 64-d item embeddings and 1,000 queries drawn the
same way (seeded), measures:

  * recall@100 against exact search, and in-process batch-1 latency
    (p50/p95/p99) and batch-64 throughput of (a) the ScaNN index inside a
    saved-and-reloaded SavedModel, (b) brute force (matmul + top_k) inside a
    SavedModel, (c) FAISS ``IndexIVFFlat`` with inner product. ScaNN's
    settings (``num_leaves``, ``num_leaves_to_search``, ``reorder``,
    ``dimensions_per_block``) are chosen by the export's own chooser
    (``models/scann_tuning.py``: the fastest batch-1 setting with recall@100
    >= 0.95), FAISS's ``nprobe`` by a sweep to the fewest probes reaching
    0.95, both on the benchmark's queries; ScaNN and FAISS batch-1 latencies
    are timed interleaved so machine noise hits both;
  * the two sweeps' recall/latency Pareto frontiers side by side
    (ann-benchmarks style: at each recall level the fastest point of each,
    batch-1 p50 and queries per second, without TensorFlow);
  * how the SavedModels are called: the headline rows run the export the way
    TF Serving's C++ server does (graph mode: a ``tf.compat.v1.Session`` that
    loads the ``serve`` MetaGraph; each call one C++ ``RunCallable`` on the
    ``search`` signature's tensor names, default threading). The same export
    is also timed on the session's calling thread, through ``Session.run``
    with a feed dict, and through the eager ``loaded.signatures["search"]``
    call (what ``retrieval-serve`` does), with a no-op signature through each
    path, so the per-call cost of each layer is measured rather than guessed
    (``call_paths`` in the JSON);
  * end-to-end gRPC latency and throughput of the ScaNN SavedModel served by
    ``retrieval-serve`` on 127.0.0.1 with 1, 4 and 16 concurrent clients, next
    to the same requests through ``serving_default`` in-process and a gRPC
    round trip to a model-less server (the floor of any Python gRPC answer);
  * ``uptime`` and the load averages at start and end: on a shared machine
    the latency tails follow the load more than anything in the code.

Writes benchmarks/results/serving.json and prints a markdown summary. Takes
about 10-15 minutes on 2 cores and stays well under 8 GiB of memory. The same
at the width the default model exports (`settings.export_dim`: a three-member
ensemble of 64-d towers plus the trending prior's column, 193), in-process:

    .venv/bin/python -m benchmarks.serving_latency --dim 193 --skip_grpc

writes benchmarks/results/serving-d193.json. Smaller runs for development
(not comparable with the 1M figures):

    .venv/bin/python -m benchmarks.serving_latency --num_items 200000 \
        --latency_calls 300 --skip_grpc --output serving-small.json
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.serving_latency import settings  # noqa: E402
from benchmarks.serving_latency.data import exact_top_k, make_data  # noqa: E402
from benchmarks.serving_latency.grpc_load import bench_grpc  # noqa: E402
from benchmarks.serving_latency.indexes import (  # noqa: E402
    CALL_PATHS,
    bench_ann,
    bench_brute_savedmodel,
    build_tuned_faiss,
    save_scann_savedmodel,
    sweep_scann,
)
from benchmarks.serving_latency.report import (  # noqa: E402
    latency_ratios,
    markdown,
    other_call_path_targets,
    targets_met,
)
from benchmarks.serving_latency.timing import (  # noqa: E402
    cpu_counters,
    cpu_usage,
    load_now,
    machine_info,
)


def run(workdir: Path, skip_grpc: bool) -> dict:
    """Runs every measurement; returns the results dictionary."""
    started = time.perf_counter()
    load_at_start = load_now()
    print(f"load at start: {load_at_start['uptime']}", flush=True)
    counters = cpu_counters()
    timings = {}
    print("generating data and exact top-100 ...", flush=True)
    start = time.perf_counter()
    items, queries = make_data()
    timings["data_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    truth = exact_top_k(items, queries)
    timings["exact_top_k_s"] = round(time.perf_counter() - start, 1)
    users = queries  # serving_default hashes user ids onto the query vectors

    print("ScaNN sweep (pybind) ...", flush=True)
    scann_sweep, pybind_searcher, pybind_options = sweep_scann(items, queries, truth)
    print(f"  chosen {scann_sweep['chosen']}", flush=True)
    print("ScaNN SavedModel ...", flush=True)
    scann_dir = workdir / "retrieval" / "1"
    scann_info = save_scann_savedmodel(items, users, scann_sweep["chosen"], scann_dir)
    print("brute-force SavedModel ...", flush=True)
    brute = bench_brute_savedmodel(items, users, queries, truth, workdir / "brute" / "1")
    print("FAISS IVF ...", flush=True)
    faiss_index, faiss_info = build_tuned_faiss(items, queries, truth)
    del items, users
    gc.collect()
    print("ScaNN SavedModel (several call paths), FAISS and no-op signature, interleaved ...",
          flush=True)
    ann = bench_ann(scann_dir, faiss_index, pybind_searcher, pybind_options, queries, truth,
                    workdir)
    del faiss_index, pybind_searcher
    gc.collect()
    methods = {"scann_savedmodel": {**scann_info, **ann["scann"]},
               "brute_force_savedmodel": brute,
               "faiss_ivf_flat": {**faiss_info, **ann["faiss"]}}
    overhead = ann["noop"]

    ratios = latency_ratios(methods, ann["call_paths"]["batch1"])
    grpc_result = None
    if not skip_grpc:
        print("end-to-end gRPC ...", flush=True)
        grpc_result = bench_grpc(workdir / "retrieval", workdir / "server.log")
    timings["cpu_during_run"] = cpu_usage(counters, cpu_counters())
    load_at_end = load_now()
    print(f"load at end: {load_at_end['uptime']}", flush=True)
    return {"machine": machine_info(),
            "load": {"at_start": load_at_start, "at_end": load_at_end},
            "parameters": {**settings.parameters(), "headline_call_path": CALL_PATHS["scann"][1]},
            "timings": timings,
            "scann_sweep": scann_sweep, "methods": methods,
            "frontiers": {"scann": scann_sweep["frontier"], "faiss": faiss_info["frontier"]},
            "savedmodel_call_overhead": overhead, "call_paths": ann["call_paths"],
            "ratios": ratios, "grpc": grpc_result,
            "targets": targets_met(methods, ratios, grpc_result),
            "targets_other_call_paths": other_call_path_targets(methods, ratios),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "runtime_s": round(time.perf_counter() - started, 1)}

def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark, writes the JSON results and prints the markdown summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None,
                        help="default: benchmarks/results/serving.json, serving-d<dim>.json "
                             "at another --dim")
    parser.add_argument("--skip_grpc", action="store_true", help="in-process part only")
    parser.add_argument("--num_items", type=int, default=settings.NUM_ITEMS,
                        help="catalogue size (1,000,000 in the results file; smaller for "
                             "development)")
    parser.add_argument("--num_leaves", type=int, default=0,
                        help="FAISS IVF lists (default: about sqrt(num_items)); ScaNN's "
                             "leaves are the export chooser's")
    parser.add_argument("--dim", type=int, default=settings.DIM,
                        help=f"embedding width ({settings.DIM} in the results file; "
                             f"{settings.export_dim()} is the default model's export width)")
    parser.add_argument("--latency_calls", type=int, default=settings.LATENCY_CALLS,
                        help="timed batch-1 calls per method")
    args = parser.parse_args(argv)
    settings.configure(args.num_items, args.num_leaves, args.latency_calls, args.dim)
    if args.output is None:
        args.output = (settings.RESULTS_PATH if args.dim == 64 else
                       settings.RESULTS_PATH.with_name(f"serving-d{args.dim}.json"))
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as workdir:
        results = run(Path(workdir), args.skip_grpc)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(markdown(results))
    print(f"\nwrote {args.output} ({results['runtime_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
