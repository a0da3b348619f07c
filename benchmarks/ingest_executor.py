"""One ingestion component's executor on given data, for `benchmarks.ingest`.

    python -m benchmarks.ingest_executor '{"component": "ClickExampleGen", "data": ...,
        "work": ..., "max_clicks_per_user": 5000, "beam_args": [...]}'

Prints ``RESULT {"seconds": ..., "report": ...}`` on success.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx.dsl.components.base import base_beam_executor  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from components.artifacts import QuarantinedClicks, VocabStats  # noqa: E402
from components.click_example_gen.executor import Executor as ClickExampleGenExecutor  # noqa: E402
from components.vocab_stats_gen.executor import Executor as VocabStatsGenExecutor  # noqa: E402


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=args["beam_args"])
    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(args["work"], "examples")
    started = time.time()
    if args["component"] == "ClickExampleGen":
        quarantine = QuarantinedClicks()
        quarantine.uri = os.path.join(args["work"], "quarantine")
        ClickExampleGenExecutor(context).Do(
            {}, {"examples": [examples], "quarantine": [quarantine]},
            {"input_base": args["data"], "config": json.dumps(
                {"max_bad_fraction": 0.5, "max_clicks_per_user": args["max_clicks_per_user"]})})
        with open(os.path.join(quarantine.uri, "ingestion.json")) as f:
            report = json.load(f)["totals"]
    else:
        examples.split_names = '["train", "eval"]'
        output = VocabStats()
        output.uri = os.path.join(args["work"], "vocab")
        VocabStatsGenExecutor(context).Do({"examples": [examples]}, {"vocab_stats": [output]},
                                          {"config": "{}"})
        with open(os.path.join(output.uri, "stats.json")) as f:
            stats = json.load(f)
        report = {k: stats[k] for k in ("num_clicks", "num_items", "num_users")}
    print("RESULT " + json.dumps({"seconds": time.time() - started, "report": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
