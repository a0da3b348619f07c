"""The ingestion report: per-file counters -> report dict, and its checks.

Report layout (``ingestion.json``): {"files": {path: {"rows_read",
"accepted", "accepted_by_split": {split: n}, "impressions": {event type: n},
"quarantined": {reason: n}}}, "totals": {same keys}, "splits", "split_by",
"eval_start_timestamp", "test_start_timestamp"}. `accepted` counts clicks
(examples), `impressions` the accepted impression rows
(ingestion.impression_event_types). ``rows_read == accepted +
sum(impressions) + sum(quarantined)`` holds per file; `check_report` fails the
run if it does not.
"""

from __future__ import annotations

from collections.abc import Iterable

from clicklog.errors import InputError
from components.click_example_gen import cleaning

# Drops the configuration asks for (ingestion.min/max_timestamp,
# ingestion.event_types): not counted against max_quarantine_fraction.
FILTER_REASONS = (cleaning.OUTSIDE_TIME_WINDOW, cleaning.UNKNOWN_EVENT_TYPE)

COUNTER_ROWS_READ = "rows_read"
COUNTER_ACCEPTED = "accepted"
COUNTER_QUARANTINED = "quarantined"
COUNTER_IMPRESSIONS = "impressions"


def _empty_entry(splits: list[str]) -> dict:
    return {"rows_read": 0, "accepted": 0, "accepted_by_split": {s: 0 for s in splits},
            "impressions": {}, "quarantined": {}}


def summarize_counters(rows: Iterable[tuple[tuple[str, str, str], int]],
                       files: Iterable[str], cutoff, splits: list[str] | None = None) -> dict:
    """Counter rows ((path, counter, reason), count) -> the ingestion report.

    Args:
      rows: one row per file, counter and reason.
      files: every input file (files with no rows still get an entry).
      cutoff: (eval_start, test_start) timestamps, a bare eval_start, or None.
      splits: split names (default train, eval).
    """
    splits = list(splits or ["train", "eval"])
    per_file = {path: _empty_entry(splits) for path in files}
    for (path, counter, reason), count in rows:
        entry = per_file.setdefault(path, _empty_entry(splits))
        if counter == COUNTER_ROWS_READ:
            entry["rows_read"] += count
        elif counter == COUNTER_ACCEPTED:
            entry["accepted"] += count
            entry["accepted_by_split"][reason] = entry["accepted_by_split"].get(reason, 0) + count
        elif counter == COUNTER_IMPRESSIONS:
            entry["impressions"][reason] = entry["impressions"].get(reason, 0) + count
        else:
            entry["quarantined"][reason] = entry["quarantined"].get(reason, 0) + count
    totals = _empty_entry(splits)
    for entry in per_file.values():
        totals["rows_read"] += entry["rows_read"]
        totals["accepted"] += entry["accepted"]
        for split, count in entry["accepted_by_split"].items():
            totals["accepted_by_split"][split] = totals["accepted_by_split"].get(split, 0) + count
        for reason, count in entry["quarantined"].items():
            totals["quarantined"][reason] = totals["quarantined"].get(reason, 0) + count
        for event_type, count in entry["impressions"].items():
            totals["impressions"][event_type] = totals["impressions"].get(event_type, 0) + count
    eval_start, test_start = cutoff if isinstance(cutoff, (list, tuple)) else (cutoff, None)
    return {"files": per_file, "totals": totals, "splits": splits,
            "eval_start_timestamp": eval_start, "test_start_timestamp": test_start}


def check_report(report: dict, max_bad_fraction: float,
                 max_quarantine_fraction: float = 1.0) -> None:
    """Raises if counts do not reconcile, a file is mostly garbage, too many
    rows in all were quarantined, or a split is empty."""
    for path, entry in report["files"].items():
        bad = sum(entry["quarantined"].values())
        shown = sum(entry.get("impressions", {}).values())
        if entry["rows_read"] != entry["accepted"] + shown + bad:
            raise RuntimeError(f"click log {path!r}: counts do not reconcile: rows_read="
                               f"{entry['rows_read']} != accepted={entry['accepted']} + "
                               f"impressions={shown} + quarantined={bad}")
        if entry["rows_read"] and bad / entry["rows_read"] > max_bad_fraction:
            raise InputError(
                f"click log {path!r}: {bad} of {entry['rows_read']} rows quarantined "
                f"({bad / entry['rows_read']:.0%}) > max_bad_fraction "
                f"{max_bad_fraction:.0%}; reasons {entry['quarantined']}")
    totals = report["totals"]
    unwanted = {reason: n for reason, n in totals["quarantined"].items()
                if reason not in FILTER_REASONS}
    share = sum(unwanted.values()) / totals["rows_read"] if totals["rows_read"] else 0.0
    if share > max_quarantine_fraction:
        raise InputError(
            f"click logs: {sum(unwanted.values()):,} of {totals['rows_read']:,} rows quarantined "
            f"({share:.1%}) > ingestion.max_quarantine_fraction={max_quarantine_fraction:g}; "
            f"reasons {unwanted} (the rows and their reasons are in the quarantine)")
    if not sum(entry["rows_read"] for entry in report["files"].values()):
        raise InputError(f"click logs {sorted(report['files'])}: no rows in any file (empty or "
                         "header-only); expected at least one click")
    for split in report.get("splits") or ["train", "eval"]:
        if totals["accepted_by_split"].get(split, 0) == 0:
            raise InputError(
                f"click logs {sorted(report['files'])}: the {split} split is empty "
                f"(accepted by split {totals['accepted_by_split']}, split_by "
                f"{report.get('split_by', 'time')}, eval starts at "
                f"{report['eval_start_timestamp']}, test starts at "
                f"{report.get('test_start_timestamp')}); expected clicks in every split")


def summary_line(report: dict) -> str:
    """One human-readable line of totals."""
    totals = report["totals"]
    by_split = ", ".join(f"{s} {n}" for s, n in totals["accepted_by_split"].items())
    shown = (f"{sum(totals['impressions'].values())} impressions {totals['impressions']}, "
             if totals.get("impressions") else "")
    return (f"{totals['rows_read']} rows read from {len(report['files'])} file(s), "
            f"{totals['accepted']} accepted ({by_split}), {shown}quarantined "
            f"{sum(totals['quarantined'].values())} {totals['quarantined']}")


def file_lines(report: dict, limit: int = 10) -> list[str]:
    """Short lines for the files worth a look: quarantined rows or no rows at all."""
    lines = []
    for path, entry in sorted(report["files"].items()):
        bad = sum(entry["quarantined"].values())
        if bad:
            lines.append(f"{path}: {entry['rows_read']} read, {bad} quarantined "
                         f"{entry['quarantined']}")
        elif not entry["rows_read"]:
            lines.append(f"{path}: no rows (empty or header-only)")
    if len(lines) > limit:
        lines = lines[:limit] + [f"... {len(lines) - limit} more file(s) in the report"]
    return lines
