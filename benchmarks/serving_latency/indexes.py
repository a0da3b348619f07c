"""ANN indexes in process: ScaNN and FAISS sweeps to the recall target, the
exports at the chosen setting, and every call path timed interleaved."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gc  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.serving_latency import settings  # noqa: E402
from benchmarks.serving_latency.data import recall_at_k  # noqa: E402
from benchmarks.serving_latency.savedmodels import (  # noqa: E402
    BenchmarkRetrieval,
    NoOpSearch,
    SessionSearch,
    directory_mb,
    eager_flat_search,
    save_module,
    savedmodel_search,
)
from benchmarks.serving_latency.timing import (  # noqa: E402
    query_batches,
    time_batches,
    time_interleaved,
    time_single,
)
from models import scann_tuning  # noqa: E402
from models.config import ScannConfig  # noqa: E402

SESSION_CALL = "session (serve tag), C++ RunCallable by tensor names"
CALL_PATHS = {
    "scann": ("scann", f"{SESSION_CALL}, inter-op thread pool"),  # the headline rows
    "faiss": (None, "FAISS from Python, numpy in and out"),
    "scann_pybind": (None, "ScaNN pybind searcher, no TensorFlow"),
    "noop_session": ("noop", f"{SESSION_CALL}, inter-op thread pool"),
    "scann_session_caller_thread": ("scann", f"{SESSION_CALL}, caller thread"),
    "noop_session_caller_thread": ("noop", f"{SESSION_CALL}, caller thread"),
    "scann_session_run_feed_dict": ("scann", "session, Session.run(fetch, feed_dict) "
                                              "(= make_callable with feeds), thread pool"),
    "scann_eager_signature": ("scann", "eager, loaded.signatures['search'](queries=...)"),
    "scann_eager_flat_call": ("scann", "eager, inference_fn.call_flat (TF internals)"),
    "noop_eager_signature": ("noop", "eager, loaded.signatures['search'](queries=...)"),
}


def recall_and_throughput(search, queries: np.ndarray, truth: np.ndarray,
                          as_tensor: bool) -> dict:
    """Recall@K and batch-64 throughput of one `search` callable."""
    found = np.concatenate([search(b) for b in query_batches(queries, settings.RECALL_BATCH,
                                                             as_tensor)])
    return {f"recall@{settings.K}": round(recall_at_k(found, truth), 4),
            "batch_throughput": time_batches(search, query_batches(queries, settings.BATCH,
                                                                   as_tensor))}

def pick_setting(rows: list[dict]) -> dict:
    """The first row, in grid order of increasing search effort, that meets the
    recall target (the last row if none does).

    Search cost grows with nprobe, so this is the cheapest passing setting
    without trusting noisy sweep timings to rank near-equal settings.
    """
    passing = [r for r in rows if r[f"recall@{settings.K}"] >= settings.RECALL_TARGET]
    return passing[0] if passing else rows[-1]

def sweep_scann(items: np.ndarray, queries: np.ndarray, truth: np.ndarray):
    """Chooses ScaNN's settings with the export's own chooser
    (`models.scann_tuning.choose`: leaves x dimensions per block builds,
    leaves searched x re-ordering as query-time overrides), here on the
    benchmark's queries as FAISS's nprobe is.

    Returns (results, searcher, query-time options of the chosen setting);
    the results hold every measured setting, the recall/latency frontier and
    the pybind (no TensorFlow) latency at the chosen setting as a reference.
    """
    choice = scann_tuning.choose(
        items, queries, settings.FETCH_K, ScannConfig(target_recall=settings.RECALL_TARGET),
        recall_k=settings.K, exact=truth, latency_calls=settings.SWEEP_LATENCY_CALLS,
        past_target=settings.SCANN_PAST_TARGET, keep_searcher=True,
        log=lambda row: print(f"  scann sweep {row}", flush=True))
    report = choice.report
    searcher, opts = choice.searcher, choice.search_options
    if searcher is None:  # nothing met the target: time the highest-recall setting
        chosen = choice.settings
        searcher = scann_tuning._build(items, settings.FETCH_K, chosen.num_leaves,
                                       chosen.num_leaves_to_search,
                                       chosen.dimensions_per_block, chosen.reorder)
        opts = {"final_num_neighbors": settings.FETCH_K,
                "pre_reorder_num_neighbors": chosen.reorder,
                "leaves_to_search": chosen.num_leaves_to_search}
    reference = {"settings": opts, f"recall@{settings.K}": report["chosen"][f"recall@{settings.K}"],
                 "batch1_latency": time_single(lambda q: searcher.search(q, **opts),
                                               list(queries))}
    return ({"sweep_s": report["sweep_s"], "grid": report["measured"],
             "frontier": report["frontier"], "chosen": report["chosen"],
             "meets_target": report["meets_target"], "pybind_reference": reference},
            searcher, opts)

def build_faiss(items: np.ndarray) -> tuple[faiss.IndexIVFFlat, float]:
    """An inner-product `IndexIVFFlat` with NUM_LEAVES lists; returns (index, build s)."""
    start = time.perf_counter()
    quantizer = faiss.IndexFlatIP(settings.DIM)
    index = faiss.IndexIVFFlat(quantizer, settings.DIM, settings.NUM_LEAVES,
                               faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(settings.SEED).choice(
        settings.NUM_ITEMS, min(settings.FAISS_TRAIN_SAMPLE, settings.NUM_ITEMS), replace=False)
    index.train(items[np.sort(sample)])
    index.add(items)
    return index, time.perf_counter() - start

def sweep_faiss(index: faiss.IndexIVFFlat, queries: np.ndarray, truth: np.ndarray) -> dict:
    """Sweeps nprobe; leaves the index at the cheapest setting meeting the target."""
    rows = []
    for nprobe in settings.FAISS_NPROBE_GRID:
        index.nprobe = nprobe
        _, found = index.search(queries, settings.K)
        latency = time_single(lambda q: index.search(q, settings.K),
                              query_batches(queries, 1, False),
                              calls=settings.SWEEP_LATENCY_CALLS)
        rows.append({"nprobe": nprobe, f"recall@{settings.K}": round(recall_at_k(found, truth), 4),
                     "batch1_p50_ms": latency["p50_ms"]})
        print(f"  faiss sweep {rows[-1]}", flush=True)
    chosen = pick_setting(rows)
    index.nprobe = chosen["nprobe"]
    return {"grid": rows, "chosen": chosen,
            "frontier": scann_tuning.pareto_frontier(rows, f"recall@{settings.K}")}

def save_scann_savedmodel(items, users, chosen: dict, path: Path) -> dict:
    """Builds the ScaNN serving module at the chosen sweep setting and saves it."""
    scann = ScannConfig(num_leaves=chosen["num_leaves"],
                        num_leaves_to_search=chosen["num_leaves_to_search"],
                        reorder=chosen["reorder"],
                        dimensions_per_block=chosen["dimensions_per_block"])
    start = time.perf_counter()
    module = BenchmarkRetrieval(items, users, "scann", scann)
    build_s = time.perf_counter() - start
    save_s = save_module(module, path, scann=True)
    resolved = module.index.settings.to_dict()
    del module
    gc.collect()
    return {"settings": resolved, "fetch_k": settings.FETCH_K, "build_s": round(build_s, 1),
            "trace_and_save_s": round(save_s, 1), "savedmodel_mib": directory_mb(path)}

def bench_brute_savedmodel(items, users, queries, truth, path: Path) -> dict:
    """Saves, reloads and measures the matmul + top_k serving module on its own
    (its 256 MB scan per query would evict the ANN indexes from cache).

    Called like the ScaNN export (see `bench_ann`): the headline figures
    through a session (`SessionSearch`), and batch-1 latency also through the
    eager signature, the two timed interleaved.
    """
    module = BenchmarkRetrieval(items, users, "brute_force")
    save_s = save_module(module, path, scann=False)
    del module
    gc.collect()
    search = SessionSearch(path)
    loaded, eager_search = savedmodel_search(path)
    result = recall_and_throughput(search, queries, truth, as_tensor=False)
    latency = time_interleaved({
        "session": (search, query_batches(queries, 1, as_tensor=False)),
        "eager_signature": (eager_search, query_batches(queries, 1, as_tensor=True))})
    result["batch1_latency"] = latency["session"]
    result["eager_signature_batch1_latency"] = latency["eager_signature"]
    search.close()
    del loaded, eager_search, search
    gc.collect()
    shutil.rmtree(path, ignore_errors=True)
    return {"fetch_k": settings.FETCH_K, "trace_and_save_s": round(save_s, 1),
            "call_path": CALL_PATHS["scann"][1], **result}

def build_tuned_faiss(items, queries, truth) -> tuple[faiss.IndexIVFFlat, dict]:
    """Builds FAISS IndexIVFFlat (inner product) and sets nprobe by a sweep."""
    index, build_s = build_faiss(items)
    sweep = sweep_faiss(index, queries, truth)
    return index, {"nlist": settings.NUM_LEAVES, "nprobe": sweep["chosen"]["nprobe"],
                   "train_sample": settings.FAISS_TRAIN_SAMPLE, "build_s": round(build_s, 1),
                   "omp_threads": faiss.omp_get_max_threads(), "sweep": sweep["grid"],
                   "frontier": sweep["frontier"]}

def call_path_breakdown(latency: dict) -> dict:
    """Per-call cost of each layer between Python and the ScaNN op, from the
    interleaved p50s (differences of medians: indicative, not exactly additive)."""
    p50 = {name: lat["p50_ms"] for name, lat in latency.items()}

    def diff(a: str, b: str) -> float:
        return round(p50[a] - p50[b], 4)

    breakdown = {
        "session_call_no_op_ms": p50["noop_session"],
        "scann_graph_in_session_ms": diff("scann", "noop_session"),
        "scann_pybind_search_ms": p50["scann_pybind"],
        "tf_graph_over_pybind_caller_thread_ms": round(
            p50["scann_session_caller_thread"] - p50["noop_session_caller_thread"]
            - p50["scann_pybind"], 4),
        "inter_op_thread_handoff_ms": diff("scann", "scann_session_caller_thread"),
        "python_feed_fetch_handling_ms": diff("scann_session_run_feed_dict", "scann"),
        "eager_signature_over_session_ms": diff("scann_eager_signature", "scann"),
        "eager_no_op_signature_ms": p50["noop_eager_signature"],
    }
    if "scann_eager_flat_call" in p50:
        breakdown["eager_structured_call_wrapper_ms"] = diff("scann_eager_signature",
                                                             "scann_eager_flat_call")
    return breakdown

def bench_ann(scann_path: Path, faiss_index, pybind_searcher, pybind_options: dict,
              queries, truth, workdir: Path) -> dict:
    """Reloads the ScaNN SavedModel and measures it, FAISS and a no-op signature,
    with batch-1 latency of every call path in `CALL_PATHS` timed interleaved
    (see `time_interleaved`).

    The headline ScaNN row runs the export as TF Serving's C++ server does
    (`SessionSearch`, default threading); recall and batch-64 throughput are
    measured through it. The other paths show what each layer costs.
    """
    # The first session in a process sizes the shared inter-op pool: default.
    start = time.perf_counter()
    scann_search = SessionSearch(scann_path)
    load_s = time.perf_counter() - start
    caller_search = SessionSearch(scann_path, caller_thread=True)
    scann_loaded, eager_search = savedmodel_search(scann_path)
    noop = NoOpSearch()
    tf.saved_model.save(noop, str(workdir / "noop"), signatures={"search": noop.search})
    noop_search = SessionSearch(workdir / "noop")
    noop_caller_search = SessionSearch(workdir / "noop", caller_thread=True)
    noop_loaded, noop_eager_search = savedmodel_search(workdir / "noop")
    tensors = query_batches(queries, 1, as_tensor=True)
    arrays = query_batches(queries, 1, as_tensor=False)
    flat_search = eager_flat_search(scann_loaded, tensors[0])

    def faiss_search(batch: np.ndarray) -> np.ndarray:
        return faiss_index.search(batch, settings.K)[1]

    def pybind_search(batch: np.ndarray) -> np.ndarray:
        return pybind_searcher.search(batch[0], **pybind_options)[0]

    # Every TensorFlow path must answer exactly like the headline one.
    expected = scann_search(arrays[0])
    same_answers = {
        "session_caller_thread": np.array_equal(caller_search(arrays[0]), expected),
        "session_run_feed_dict": np.array_equal(scann_search.run_feed_dict(arrays[0]), expected),
        "eager_signature": np.array_equal(eager_search(tensors[0]), expected)}
    searches = {
        "scann": (scann_search, arrays), "faiss": (faiss_search, arrays),
        "scann_pybind": (pybind_search, arrays),
        "noop_session": (noop_search, arrays),
        "scann_session_caller_thread": (caller_search, arrays),
        "noop_session_caller_thread": (noop_caller_search, arrays),
        "scann_session_run_feed_dict": (scann_search.run_feed_dict, arrays),
        "scann_eager_signature": (eager_search, tensors),
        "scann_eager_flat_call": (flat_search, tensors),
        "noop_eager_signature": (noop_eager_search, tensors)}
    if flat_search is None:
        del searches["scann_eager_flat_call"]
    latency = time_interleaved(searches)
    scann = {"call_path": CALL_PATHS["scann"][1], "load_s": round(load_s, 1),
             "session_runs_callable": scann_search.runs_callable,
             "batch1_latency": latency["scann"],
             **recall_and_throughput(scann_search, queries, truth, as_tensor=False)}
    faiss_result = {"batch1_latency": latency["faiss"],
                    **recall_and_throughput(faiss_search, queries, truth, as_tensor=False)}
    paths = {name: {"savedmodel": CALL_PATHS[name][0], "call": CALL_PATHS[name][1],
                    "batch1_latency": latency[name]} for name in searches}
    for search in (scann_search, caller_search, noop_search, noop_caller_search):
        search.close()
    del scann_loaded, noop_loaded
    gc.collect()
    return {"scann": scann, "faiss": faiss_result,
            "noop": {"call_path": CALL_PATHS["noop_session"][1],
                     "batch1_latency": latency["noop_session"]},
            "call_paths": {"same_answers_as_headline": same_answers, "batch1": paths,
                           "breakdown": call_path_breakdown(latency)}}
