"""Choosing the ScaNN index's settings by measurement.

`choose` fills the `model.export.scann` settings left at 0 by a small sweep
on probe queries and returns the fastest setting whose recall@K against
exact search meets `target_recall`. The rule:

  * a setting given (non-zero) is used as given and not swept;
  * a catalogue under `scann_index.EXACT_BELOW` candidates with
    ``num_leaves`` 0 is scanned exactly: nothing to choose, nothing timed;
  * with all four settings given, nothing is swept;
  * otherwise the grid is ``num_leaves`` in `LEAVES_FACTORS` x sqrt(N),
    ``dimensions_per_block`` (asymmetric hashing) in `DIMENSIONS_PER_BLOCK`,
    ``num_leaves_to_search`` in `SEARCH_FRACTIONS` of the leaves and
    ``reorder`` in `REORDER_FACTORS` x the neighbours searched. One ScaNN
    searcher is built per (num_leaves, dimensions_per_block), with the
    index's own tree / asymmetric hashing / re-ordering configuration
    (`scann_index.ScannIndex`); leaves searched and re-ordered candidates
    are query-time overrides on it. Each setting gets recall@K on the probe
    queries (one batched search) and batch-1 latency (the p50 of single
    searches through ScaNN's pybind searcher: the op inside the export runs
    the same search, plus a fixed TensorFlow call cost that does not change
    the ranking of settings);
  * the choice is the setting with the lowest p50 among those meeting the
    target; each searcher's fastest passing setting is re-timed against the
    best so far in alternating blocks (`_faster`), so a drift of a shared
    machine between builds cannot decide it. If no setting meets the target,
    the one with the highest recall is chosen and `meets_target` is false.

Leaves searched grow from the fewest: once a searcher/re-order pair meets the
target, `past_target` more (larger) values are measured for the frontier and
the larger ones are skipped (they are slower and only add recall).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from models.config import ScannConfig
from models.scann_index import EXACT_BELOW, resolve

LEAVES_FACTORS = (0.5, 1.0, 2.0)  # x sqrt(number of candidates)
DIMENSIONS_PER_BLOCK = (2, 4)
SEARCH_FRACTIONS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3,
                    0.4, 0.5)
REORDER_FACTORS = (2, 3, 4, 6, 10)  # x the neighbours searched
LATENCY_CALLS = 200
WARMUP_CALLS = 10
RETIME_BLOCKS = 6


@dataclasses.dataclass(frozen=True)
class Choice:
    """The chosen settings (resolved: no zeros) and, when a sweep ran, its
    report: target, chosen row, Pareto frontier and every measured row."""

    settings: ScannConfig
    report: dict | None
    # The chosen setting's pybind searcher and query options (`keep_searcher`).
    searcher: object = dataclasses.field(default=None, compare=False, repr=False)
    search_options: dict | None = None


def exact_neighbours(items: np.ndarray, queries: np.ndarray, k: int,
                     batch: int = 64) -> np.ndarray:
    """Indices `[Q, k]` of the exact top-k items by dot product (any order within a row)."""
    rows = []
    for start in range(0, len(queries), batch):
        scores = queries[start:start + batch] @ items.T
        rows.append(np.argpartition(-scores, k - 1, axis=1)[:, :k])
    return np.concatenate(rows)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each row of `exact` among the first `exact.shape[1]`
    entries of the same row of `found`."""
    k = exact.shape[1]
    return float(np.mean([len(set(f[:k].tolist()) & set(e.tolist())) / k
                          for f, e in zip(found, exact, strict=True)]))


def pareto_frontier(rows: list[dict], recall_key: str, latency_key: str = "batch1_p50_ms"
                    ) -> list[dict]:
    """The rows no other row beats on both recall (higher) and latency
    (lower), by increasing latency (ann-benchmarks' frontier)."""
    frontier, best = [], -1.0
    for row in sorted(rows, key=lambda r: (r[latency_key], -r[recall_key])):
        if row[recall_key] > best:
            frontier.append(row)
            best = row[recall_key]
    return frontier


def needs_sweep(settings: ScannConfig, num_items: int) -> bool:
    """Whether `choose` measures anything for these settings and catalogue size."""
    given = (settings.num_leaves and settings.num_leaves_to_search and settings.reorder
             and settings.dimensions_per_block)
    return not given and not (settings.num_leaves == 0 and num_items < EXACT_BELOW)


def _grid(settings: ScannConfig, num_items: int, k: int) -> tuple[list, list, list, list]:
    root = num_items ** 0.5
    leaves = ([settings.num_leaves] if settings.num_leaves else
              sorted({max(2, min(num_items, round(f * root))) for f in LEAVES_FACTORS}))
    blocks = ([settings.dimensions_per_block] if settings.dimensions_per_block
              else list(DIMENSIONS_PER_BLOCK))
    reorders = ([min(settings.reorder, num_items)] if settings.reorder else
                sorted({min(num_items, f * k) for f in REORDER_FACTORS}))
    searched = [settings.num_leaves_to_search] if settings.num_leaves_to_search else []
    return leaves, blocks, reorders, searched


def _build(items: np.ndarray, k: int, leaves: int, search: int, block: int, reorder: int):
    from scann.scann_ops.py import scann_ops_pybind

    return (scann_ops_pybind.builder(items, k, "dot_product")
            .tree(num_leaves=leaves, num_leaves_to_search=search,
                  training_sample_size=len(items))
            .score_ah(block)
            .reorder(reorder)
            .build())


def _call_ms(searcher, queries: np.ndarray, opts: dict, indices) -> list[float]:
    times = []
    for i in indices:
        start = time.perf_counter()
        searcher.search(queries[i % len(queries)], **opts)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _p50_ms(searcher, queries: np.ndarray, opts: dict, calls: int) -> float:
    _call_ms(searcher, queries, opts, range(WARMUP_CALLS))
    return float(np.median(_call_ms(searcher, queries, opts, range(calls))))


def _faster(a: tuple, b: tuple, queries: np.ndarray, calls: int) -> bool:
    """Whether (searcher, opts) `a` has a lower p50 than `b`, timed in
    alternating blocks so both see the same machine."""
    times = {0: [], 1: []}
    per_block = max(1, calls // RETIME_BLOCKS)
    for searcher, opts in (a, b):
        _call_ms(searcher, queries, opts, range(WARMUP_CALLS))
    for block in range(RETIME_BLOCKS):
        indices = range(block * per_block, (block + 1) * per_block)
        for side, (searcher, opts) in enumerate((a, b)):
            times[side] += _call_ms(searcher, queries, opts, indices)
    return float(np.median(times[0])) < float(np.median(times[1]))


def choose(items: np.ndarray, queries: np.ndarray, k: int, settings: ScannConfig,
           recall_k: int | None = None, target_recall: float | None = None,
           exact: np.ndarray | None = None, latency_calls: int = LATENCY_CALLS,
           past_target: int = 1, keep_searcher: bool = False, log=None) -> Choice:
    """ScaNN settings for `items` `[N, D]` searched for `k` neighbours.

    Args:
      items: float32 candidate embeddings.
      queries: float32 probe queries `[Q, D]` (the query tower's, in the export).
      k: neighbours the index returns (`final_num_neighbors`).
      settings: `model.export.scann`; fields at 0 are chosen here.
      recall_k: recall is measured on the first `recall_k` (default `k`) neighbours.
      target_recall: default `settings.target_recall`.
      exact: exact top-`recall_k` indices of `queries`, if already known.
      latency_calls: timed batch-1 searches per setting.
      past_target: leaves-searched values measured beyond the first that
        meets the target (per searcher and re-order value).
      keep_searcher: return the chosen setting's pybind searcher and options
        (a benchmark times it; the export builds its own TensorFlow index).
      log: called with each measured row (progress of long sweeps).
    """
    num_items = len(items)
    recall_k = recall_k or k
    target = settings.target_recall if target_recall is None else target_recall
    if not needs_sweep(settings, num_items):
        return Choice(resolve(settings, num_items, k), None)
    started = time.perf_counter()
    items = np.ascontiguousarray(items, np.float32)
    queries = np.ascontiguousarray(queries, np.float32)
    if exact is None:
        exact = exact_neighbours(items, queries, recall_k)
    key = f"recall@{recall_k}"
    leaves_grid, blocks, reorders, searched_given = _grid(settings, num_items, k)
    rows, best = [], None  # best: (row, searcher, opts) of the fastest passing so far
    if searched_given:
        leaves_grid = [leaves for leaves in leaves_grid if leaves >= searched_given[0]]
        if not leaves_grid:
            raise ValueError(f"model.export.scann.num_leaves_to_search={searched_given[0]}: "
                             f"expected at most num_leaves ({settings.num_leaves or 'derived'})")
    for leaves in leaves_grid:
        searched = searched_given or sorted({max(1, min(leaves, round(f * leaves)))
                                             for f in SEARCH_FRACTIONS})
        for block in blocks:
            searcher = _build(items, k, leaves, max(searched), block, max(reorders))
            built = []
            for reorder in reorders:
                passed = 0
                for search in searched:
                    opts = {"final_num_neighbors": k, "pre_reorder_num_neighbors": reorder,
                            "leaves_to_search": search}
                    found, _ = searcher.search_batched(queries, **opts)
                    row = {"num_leaves": leaves, "num_leaves_to_search": search,
                           "reorder": reorder, "dimensions_per_block": block,
                           key: round(recall(found, exact), 4),
                           "batch1_p50_ms": round(_p50_ms(searcher, queries, opts,
                                                          latency_calls), 4)}
                    rows.append(row)
                    built.append((row, opts))
                    if log:
                        log(row)
                    passed += row[key] >= target
                    if passed > past_target:
                        break
            passing = [(row, opts) for row, opts in built if row[key] >= target]
            if passing:
                row, opts = min(passing, key=lambda p: p[0]["batch1_p50_ms"])
                if best is None or _faster((searcher, opts), best[1:], queries, latency_calls):
                    best = (row, searcher, opts)
            del searcher
    meets = best is not None
    chosen = best[0] if meets else max(rows, key=lambda r: (r[key], -r["batch1_p50_ms"]))
    resolved = settings.replace(num_leaves=chosen["num_leaves"],
                                num_leaves_to_search=chosen["num_leaves_to_search"],
                                reorder=chosen["reorder"],
                                dimensions_per_block=chosen["dimensions_per_block"])
    report = {"target_recall": target, "meets_target": meets, "recall_at": recall_k,
              "probe_queries": len(queries), "latency": "batch-1 p50 ms, ScaNN pybind search",
              "chosen": chosen, "frontier": pareto_frontier(rows, key), "measured": rows,
              "sweep_s": round(time.perf_counter() - started, 2)}
    kept = best if keep_searcher and meets else (None, None, None)
    return Choice(resolve(resolved, num_items, k), report, kept[1], kept[2])
