"""The command line shared by the page generators: results JSON in, markdown page out."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_page(page: Callable[[dict], str], results: str, output: str, description: str,
               argv: list[str] | None = None) -> int:
    """Parses `--results`/`--output` (defaulting to `results`/`output`) and
    writes `page(json of the results)` to the output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--results", default=results)
    parser.add_argument("--output", default=output)
    args = parser.parse_args(argv)
    with open(args.results) as f:
        text = page(json.load(f))
    with open(args.output, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(args.output, REPO)}")
    return 0
