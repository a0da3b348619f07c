"""Ratios, targets and the markdown summary of a run's results."""

from __future__ import annotations

from benchmarks.serving_latency import settings


def latency_ratios(methods: dict, paths: dict) -> dict:
    """Batch-1 p50 ratios; > 1 means ScaNN is faster. The headline ratios call
    both SavedModels through `SessionSearch`; the others are labelled."""
    def p50(latency: dict) -> float:
        return latency["p50_ms"]

    scann = p50(methods["scann_savedmodel"]["batch1_latency"])
    brute = methods["brute_force_savedmodel"]
    faiss_p50 = p50(methods["faiss_ivf_flat"]["batch1_latency"])
    return {
        "brute_over_scann_p50": round(p50(brute["batch1_latency"]) / scann, 2),
        "faiss_over_scann_p50": round(faiss_p50 / scann, 3),
        # The same export through other call paths (same interleaved run).
        "faiss_over_scann_session_caller_thread_p50": round(
            faiss_p50 / p50(paths["scann_session_caller_thread"]["batch1_latency"]), 3),
        "faiss_over_scann_session_run_feed_dict_p50": round(
            faiss_p50 / p50(paths["scann_session_run_feed_dict"]["batch1_latency"]), 3),
        "faiss_over_scann_eager_signature_p50": round(
            faiss_p50 / p50(paths["scann_eager_signature"]["batch1_latency"]), 3),
        "brute_over_scann_eager_signature_p50": round(
            p50(brute["eager_signature_batch1_latency"])
            / p50(paths["scann_eager_signature"]["batch1_latency"]), 2),
        # Informational: the same ScaNN searcher without TensorFlow.
        "faiss_over_scann_pybind_p50": round(
            faiss_p50 / p50(paths["scann_pybind"]["batch1_latency"]), 3),
    }

def other_call_path_targets(methods: dict, ratios: dict) -> dict:
    """The FAISS target for the export called through the other paths (not
    the headline: see `bench_ann`), so a reader sees what the path costs."""
    recall = f"recall@{settings.K}"
    ok = (methods["scann_savedmodel"][recall] >= settings.RECALL_TARGET
          and methods["faiss_ivf_flat"][recall] >= settings.RECALL_TARGET)
    return {
        "scann_session_caller_thread_no_slower_than_faiss_ivf":
            ok and ratios["faiss_over_scann_session_caller_thread_p50"] >= 1.0,
        "scann_session_run_feed_dict_no_slower_than_faiss_ivf":
            ok and ratios["faiss_over_scann_session_run_feed_dict_p50"] >= 1.0,
        "scann_eager_signature_no_slower_than_faiss_ivf":
            ok and ratios["faiss_over_scann_eager_signature_p50"] >= 1.0,
        "scann_eager_signature_10x_faster_than_brute_force_eager":
            ok and ratios["brute_over_scann_eager_signature_p50"] >= settings.SPEEDUP_TARGET,
    }

def targets_met(methods: dict, ratios: dict, grpc_result: dict | None) -> dict:
    """Evaluates the issue's targets on this run's numbers."""
    recall = f"recall@{settings.K}"
    scann_ok = methods["scann_savedmodel"][recall] >= settings.RECALL_TARGET
    faiss_ok = methods["faiss_ivf_flat"][recall] >= settings.RECALL_TARGET
    one_client = grpc_result["levels"][0] if grpc_result else None
    batched = (grpc_result or {}).get("batching", {}).get("levels", [])
    eight = next((level for level in batched if level["concurrency"] == 8), None)
    return {
        "scann_recall_at_least_0.95": scann_ok,
        "scann_10x_faster_than_brute_force": (scann_ok and ratios["brute_over_scann_p50"]
                                              >= settings.SPEEDUP_TARGET),
        "scann_no_slower_than_faiss_ivf": (scann_ok and faiss_ok
                                           and ratios["faiss_over_scann_p50"] >= 1.0),
        "grpc_p99_under_10ms_one_client": None if one_client is None else bool(
            one_client["failed"] == 0
            and one_client["latency"].get("p99_ms", float("inf")) < settings.GRPC_P99_TARGET_MS),
        "grpc_p50_under_3ms_one_client": None if one_client is None else bool(
            one_client["failed"] == 0
            and one_client["latency"].get("p50_ms", float("inf")) < settings.GRPC_P50_TARGET_MS),
        "grpc_batching_8_clients_3x_229_rps_p99_within_4x_p50": None if eight is None else bool(
            eight["failed"] == 0
            and eight["throughput_rps"]
            >= settings.GRPC_THROUGHPUT_FACTOR * settings.GRPC_BASELINE_RPS_8
            and eight["latency"]["p99_ms"]
            <= settings.GRPC_TAIL_FACTOR * eight["latency"]["p50_ms"]),
    }

def method_rows(results: dict) -> list[str]:
    """Markdown rows of the in-process table."""
    methods = results["methods"]
    labels = {
        "scann_savedmodel": ("ScaNN, reloaded SavedModel (session)", lambda m: (
            f"leaves {m['settings']['num_leaves_to_search']}/{m['settings']['num_leaves']}, "
            f"reorder {m['settings']['reorder']}, "
            f"AH {m['settings']['dimensions_per_block']} dims/block")),
        "brute_force_savedmodel": ("Brute force, SavedModel (session)",
                                   lambda m: "matmul + top_k"),
        "faiss_ivf_flat": ("FAISS IndexIVFFlat (IP)", lambda m: (
            f"nprobe {m['nprobe']}/{m['nlist']}")),
    }
    rows = []
    for key, (label, setting) in labels.items():
        m = methods[key]
        lat = m["batch1_latency"]
        recall = m[f"recall@{settings.K}"]
        rows.append(f"| {label} | {setting(m)} | {recall:.3f} | {lat['p50_ms']:.2f} | "
                    f"{lat['p95_ms']:.2f} | {lat['p99_ms']:.2f} | "
                    f"{m['batch_throughput']['queries_per_s']:,.0f} |")
    ref = results["scann_sweep"]["pybind_reference"]
    lat = results["call_paths"]["batch1"]["scann_pybind"]["batch1_latency"]
    recall = ref[f"recall@{settings.K}"]
    rows.append(f"| (reference) ScaNN pybind, no TF | same as ScaNN | {recall:.3f} | "
                f"{lat['p50_ms']:.2f} | {lat['p95_ms']:.2f} | {lat['p99_ms']:.2f} | - |")
    lat = results["savedmodel_call_overhead"]["batch1_latency"]
    rows.append(f"| (reference) no-op SavedModel signature (session) | TF call overhead | - | "
                f"{lat['p50_ms']:.2f} | {lat['p95_ms']:.2f} | {lat['p99_ms']:.2f} | - |")
    return rows

def call_path_rows(results: dict) -> list[str]:
    """Markdown rows of the batch-1 latency of each call path (one interleaved run)."""
    paths = results["call_paths"]["batch1"]
    faiss_p50 = results["methods"]["faiss_ivf_flat"]["batch1_latency"]["p50_ms"]
    rows = []
    for path in paths.values():
        lat = path["batch1_latency"]
        rows.append(f"| {path['savedmodel'] or '-'} | {path['call']} | {lat['p50_ms']:.3f} | "
                    f"{lat['p95_ms']:.3f} | {lat['p99_ms']:.3f} | "
                    f"{faiss_p50 / lat['p50_ms']:.2f} |")
    return rows

FRONTIER_RECALLS = (0.8, 0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99)


def frontier_table(results: dict) -> list[str]:
    """ann-benchmarks style: the ScaNN and FAISS recall/latency Pareto
    frontiers of the two sweeps side by side; at each recall level, the
    fastest point of each frontier reaching it (batch-1 p50, queries/s)."""
    key = f"recall@{settings.K}"
    scann, faiss_points = results["frontiers"]["scann"], results["frontiers"]["faiss"]

    def scann_setting(r: dict) -> str:
        return (f"{r['num_leaves_to_search']}/{r['num_leaves']} leaves, reorder "
                f"{r['reorder']}, AH {r['dimensions_per_block']}")

    def faiss_setting(r: dict) -> str:
        return f"nprobe {r['nprobe']}"

    def cells(points: list[dict], level: float, setting) -> str:
        reaching = [p for p in points if p[key] >= level]
        if not reaching:
            return "- | - | - | -"
        p = min(reaching, key=lambda r: r["batch1_p50_ms"])
        return (f"{setting(p)} | {p[key]:.3f} | {p['batch1_p50_ms']:.3f} | "
                f"{1000.0 / p['batch1_p50_ms']:,.0f}")

    lines = ["| recall@100 >= | ScaNN setting | recall | p50 ms | q/s | FAISS IVF setting | "
             "recall | p50 ms | q/s |", "|---:|---|---:|---:|---:|---|---:|---:|---:|"]
    for level in FRONTIER_RECALLS:
        lines.append(f"| {level:.2f} | {cells(scann, level, scann_setting)} | "
                     f"{cells(faiss_points, level, faiss_setting)} |")
    lines += ["", "Frontier points (recall, p50 ms): ScaNN "
              + ", ".join(f"({p[key]:.3f}, {p['batch1_p50_ms']:.3f})" for p in scann)
              + "; FAISS " + ", ".join(f"({p[key]:.3f}, {p['batch1_p50_ms']:.3f})"
                                       for p in faiss_points) + "."]
    return lines

def markdown(results: dict) -> str:
    """A compact markdown summary of `results`."""
    p = results["parameters"]
    lines = [
        f"In-process, {p['num_items']:,} items x {p['dim']}-d (clustered, seeded), "
        f"{p['num_queries']:,} queries, top-{p['k']}, "
        f"{results['machine']['cpu_count']} CPUs:",
        "",
        "| method | setting | recall@100 | p50 ms | p95 ms | p99 ms | batch-64 q/s |",
        "|---|---|---:|---:|---:|---:|---:|",
        *method_rows(results),
        "",
        "SavedModel rows: the export loaded as TF Serving loads it (`tf.compat.v1` Session, "
        "`serve` tag), the signature run by tensor names through one C++ `RunCallable` per "
        "call, default threading (ops on the inter-op thread pool).",
        "",
        f"Brute force / ScaNN p50 latency: {results['ratios']['brute_over_scann_p50']:.1f}x; "
        f"FAISS IVF / ScaNN: {results['ratios']['faiss_over_scann_p50']:.2f}x "
        f"(FAISS IVF / ScaNN pybind: {results['ratios']['faiss_over_scann_pybind_p50']:.2f}x).",
        "",
        "Recall/latency frontiers of the ScaNN (the export's chooser) and FAISS sweeps, "
        "batch 1 in process without TensorFlow (ScaNN pybind, FAISS from Python), "
        "q/s = 1000 / p50:",
        "",
        *frontier_table(results),
        "",
        "The same exports by call path, batch 1, timed interleaved with the rows above:",
        "",
        "| SavedModel | call path | p50 ms | p95 ms | p99 ms | FAISS p50 / this p50 |",
        "|---|---|---:|---:|---:|---:|",
        *call_path_rows(results),
        "",
        "Per-call cost by layer (differences of p50s, ms): "
        + ", ".join(f"{name} {value}" for name, value
                    in results["call_paths"]["breakdown"].items()) + ".",
    ]
    grpc_result = results.get("grpc")
    if grpc_result:
        in_process = grpc_result["in_process_serving_default"]
        lines += ["", "End-to-end gRPC (retrieval-serve on 127.0.0.1, batch 1, 10-item history); "
                  "the same requests through `serving_default` in-process: p50 "
                  f"{in_process['batch1_latency']['p50_ms']:.2f} ms, p99 "
                  f"{in_process['batch1_latency']['p99_ms']:.2f} ms "
                  f"(server overhead at p50: {grpc_result['server_overhead_p50_ms']:.2f} ms):",
                  "", "| clients | batching | requests | p50 ms | p95 ms | p99 ms | req/s "
                  "| failed | server CPU ms/request |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        rows = [("no", level) for level in grpc_result["levels"]] + [
            ("yes", level) for level in grpc_result.get("batching", {}).get("levels", [])]
        for batching, level in rows:
            lat = level["latency"]
            lines.append(f"| {level['concurrency']} | {batching} | {level['requests']} | "
                         f"{lat.get('p50_ms', float('nan')):.2f} | "
                         f"{lat.get('p95_ms', float('nan')):.2f} | "
                         f"{lat.get('p99_ms', float('nan')):.2f} | {level['throughput_rps']:.0f} | "
                         f"{level['failed']} | {level.get('server_cpu_ms_per_request')} |")
        floor = grpc_result.get("grpc_floor_no_model", {}).get("batch1_latency")
        if floor:
            lines += ["", f"gRPC round trip with no model (constant answer, in-process "
                      f"server): p50 {floor['p50_ms']:.2f} ms, p99 {floor['p99_ms']:.2f} ms."]
    load = results.get("load")
    if load:
        lines += ["", f"Load average (1/5/15 min) at start {load['at_start']['load_average']}, "
                  f"at end {load['at_end']['load_average']}."]
    lines += ["", "Targets:"]
    verdict = {True: "met", False: "NOT met", None: "not run"}
    lines += [f"- {name}: {verdict[ok]}" for name, ok in results["targets"].items()]
    lines += ["", "The same targets for the export called through other paths (not the headline):"]
    lines += [f"- {name}: {verdict[ok]}"
              for name, ok in results["targets_other_call_paths"].items()]
    return "\n".join(lines)
