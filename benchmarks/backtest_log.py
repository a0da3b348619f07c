"""The backtest's click logs: read in time order, and cut into a run's input.

`load_log` returns the log's clicks sorted by timestamp (ties keep the file's
order) with their raw lines; `write_input` writes the lines of the clicks
before a cut-off, in the log's own format, as the file a user would give
`retrieval-pipeline`.
"""

from __future__ import annotations

import os
from pathlib import Path

from clicklog import formats, synthetic

REPO = Path(__file__).resolve().parents[1]
MOVIETWEETINGS = REPO / "data" / "movietweetings-100k" / "ratings.dat"

# name -> where the log is, its format, and the pipeline config of its runs.
DATASETS = {
    "movietweetings": {"path": str(MOVIETWEETINGS), "format": "movietweetings",
                       "suffix": ".dat", "config": str(REPO / "configs" / "movietweetings.yaml")},
    # A catalogue that grows over time and a share of users who join late.
    "synthetic": {"synthetic": synthetic.SyntheticConfig(
        num_users=3000, num_items=1500, late_item_share=0.5, new_user_share=0.3, seed=7),
        "format": "csv", "suffix": ".csv"},
    # The same log with 70% of the newest 20% of its clicks moved to new
    # accounts: with `--cutoffs 0.8`, most clicks after the cut-off come from
    # users with no click before it.
    "synthetic_new_users": {"synthetic": synthetic.SyntheticConfig(
        num_users=3000, num_items=1500, late_item_share=0.5, new_user_share=0.3, seed=7,
        new_user_click_share=0.7, new_user_window=0.2),
        "format": "csv", "suffix": ".csv"},
}


def load_log(dataset: dict, root: Path) -> dict:
    """{"user", "item", "timestamp", "line"} lists in time order, and the header."""
    path = dataset.get("path")
    if dataset.get("synthetic") is not None:
        path = synthetic.write(dataset["synthetic"], str(root / "synthetic-log"))
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    header, columns = None, None
    if dataset["format"] == "csv":
        header, lines = lines[0], lines[1:]
        columns = formats.parse_header(header, path)
    rows = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        click = formats.parse_row(line, dataset["format"], columns)
        rows.append((click.timestamp, number, click.user_id, click.item_id, line))
    rows.sort()
    return {"timestamp": [r[0] for r in rows], "user": [r[2] for r in rows],
            "item": [r[3] for r in rows], "line": [r[4] for r in rows], "header": header}


def write_input(log: dict, cutoff: int, directory: Path, dataset: dict) -> str:
    """The log's lines of the clicks before `cutoff`, as one input file; returns its path."""
    os.makedirs(directory, exist_ok=True)
    path = directory / f"clicks{dataset['suffix']}"
    with open(path, "w", encoding="utf-8") as f:
        if log["header"] is not None:
            f.write(log["header"] + "\n")
        for timestamp, line in zip(log["timestamp"], log["line"], strict=True):
            if timestamp < cutoff:
                f.write(line + "\n")
    return str(path)
