"""Timing helpers: latency percentiles, interleaved timing, throughput, and
what the machine was doing meanwhile (CPU counters, load averages)."""

from __future__ import annotations

import os
import platform
import subprocess
import time

import faiss
import grpc
import numpy as np
import tensorflow as tf

from benchmarks.serving_latency import settings


def summarize_ms(latencies_ms) -> dict:
    """p50/p95/p99/mean/max of a list of latencies in milliseconds."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"count": int(values.size), "p50_ms": round(float(p50), 4),
            "p95_ms": round(float(p95), 4), "p99_ms": round(float(p99), 4),
            "mean_ms": round(float(values.mean()), 4), "max_ms": round(float(values.max()), 4)}

def timed_calls(search, inputs: list, indices) -> list[float]:
    """Milliseconds of each `search(inputs[i % len(inputs)])` for i in `indices`."""
    latencies = []
    for i in indices:
        one = inputs[i % len(inputs)]
        start = time.perf_counter()
        search(one)
        latencies.append((time.perf_counter() - start) * 1000.0)
    return latencies

def time_single(search, inputs: list, calls: int | None = None,
                warmup: int = settings.WARMUP_CALLS) -> dict:
    """Latency of `search(inputs[i])` over `calls` (default LATENCY_CALLS) calls
    after `warmup` untimed ones."""
    timed_calls(search, inputs, range(warmup))
    return summarize_ms(timed_calls(search, inputs, range(calls or settings.LATENCY_CALLS)))

def time_interleaved(searches: dict, calls: int | None = None,
                     blocks: int = settings.INTERLEAVE_BLOCKS) -> dict:
    """Batch-1 latency of several methods timed in alternating blocks of calls.

    Slow drifts of a shared machine then hit every method alike, which keeps
    their ratios meaningful. `searches` maps name -> (search, inputs).
    """
    for search, inputs in searches.values():
        timed_calls(search, inputs, range(settings.WARMUP_CALLS))
    per_block = (calls or settings.LATENCY_CALLS) // blocks
    latencies = {name: [] for name in searches}
    for block in range(blocks):
        for name, (search, inputs) in searches.items():
            latencies[name] += timed_calls(
                search, inputs, range(block * per_block, (block + 1) * per_block))
    return {name: summarize_ms(values) for name, values in latencies.items()}

def time_batches(search, batches: list) -> dict:
    """Throughput of `search(batch)` over up to MAX_BATCHES calls or BATCH_SECONDS."""
    search(batches[0])  # warm-up
    done, rows = 0, 0
    start = time.perf_counter()
    while done < settings.MAX_BATCHES and (
            done < 3 or time.perf_counter() - start < settings.BATCH_SECONDS):
        batch = batches[done % len(batches)]
        search(batch)
        done += 1
        rows += len(batch)
    seconds = time.perf_counter() - start
    return {"batch_size": settings.BATCH, "batches": done, "seconds": round(seconds, 3),
            "queries_per_s": round(rows / seconds, 1),
            "ms_per_batch": round(seconds * 1000.0 / done, 3)}

def cpu_counters() -> list[int] | None:
    """Aggregate CPU time counters from /proc/stat (Linux), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None

def cpu_usage(before: list[int] | None, after: list[int] | None) -> dict:
    """Busy and steal (time taken by other VMs) percent of all CPUs in between."""
    if not before or not after or len(before) < 8:
        return {}
    delta = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(delta) or 1  # user nice system idle iowait irq softirq steal
    return {"busy_percent": round(100.0 * (total - delta[3] - delta[4]) / total, 1),
            "steal_percent": round(100.0 * delta[7] / total, 1),
            "load_average_1m": round(os.getloadavg()[0], 2)}

def query_batches(queries: np.ndarray, size: int, as_tensor: bool) -> list:
    """Consecutive `size`-row slices of `queries` (as tensors when `as_tensor`)."""
    slices = [queries[i:i + size] for i in range(0, len(queries) - size + 1, size)]
    return [tf.constant(s) for s in slices] if as_tensor else slices

def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def load_now() -> dict:
    """`uptime` as printed, and the 1/5/15-minute load averages."""
    try:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5,
                                check=False).stdout.strip()
    except OSError:
        uptime = ""
    one, five, fifteen = os.getloadavg()
    return {"uptime": uptime, "load_average": [round(one, 2), round(five, 2),
                                               round(fifteen, 2)]}

def machine_info() -> dict:
    """CPU count, platform and library versions of this run."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "faiss": faiss.__version__, "numpy": np.__version__, "grpc": grpc.__version__}
