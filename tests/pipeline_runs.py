"""The first pipeline run, shared by tests/pipeline and tests/kubeflow (session
fixtures registered in tests/conftest.py, so the run happens once per session).

The data: a seeded synthetic log whose catalogue grows over time. `first_run`:
`retrieval-pipeline` with the default Beam runner and the default graph (the
final fit on every click included), a single-member model, on the clicks
before the log's 80% point in time (plus two malformed rows), with the
DeepFM ranker on: it is blessed and both exports are pushed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from clicklog import synthetic
from tests.serving import support

COMMON = ["--set", "evaluation.ks=[5,10,20]", "--set", "evaluation.blessing_k=20",
          "--set", "evaluation.ann_queries=100", "--set", "evaluation.ann_latency_calls=20",
          "--set", "model.towers.embedding_dim=32", "--set", "model.export.top_k=20",
          "--set", "model.ensemble.size=1"]
# A small ranker: the tests check that it is trained, evaluated and served.
GOOD = ["--set", "model.training.epochs=4", "--set", "ranking.enabled=true",
        "--set", "ranking.epochs=1", "--set", "ranking.embedding_dim=8",
        "--set", "ranking.hidden_units=[16]"]
IN_MEMORY = ["--set", "pipeline.beam_args=[--direct_running_mode=in_memory]"]


def run_cli(clicks: str, output, extra: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--data", clicks, "--output", str(output),
         *COMMON, *extra],
        cwd=support.REPO_ROOT, env=support.subprocess_env(), capture_output=True, text=True,
        timeout=1200)
    assert result.returncode == 0, result.stderr[-5000:]
    return result


@pytest.fixture(scope="session")
def log(tmp_path_factory):
    """{"all": the whole log, "first": its clicks before the cut-off, "cutoff"}."""
    root = tmp_path_factory.mktemp("pipeline-data")
    config = synthetic.SyntheticConfig(num_users=300, num_items=120, num_categories=6,
                                       clicks_per_user=16, seed=3)
    everything = synthetic.write(config, str(root / "all"))
    with open(everything) as f:
        header, *rows = f.read().splitlines()
    cutoff = config.start_timestamp + int(0.8 * config.days * 86400)
    first = root / "first.csv"
    # Two malformed rows ride along: the run must count them and go on.
    first.write_text("\n".join([header] + [r for r in rows if int(r.split(",")[2]) < cutoff]
                               + ["u1,,1600000000", "u2,i3,not-a-time"]) + "\n")
    return {"all": everything, "first": str(first), "cutoff": cutoff}


@pytest.fixture(scope="session")
def first_run(log, tmp_path_factory):
    output = tmp_path_factory.mktemp("pipeline") / "first"
    result = run_cli(log["first"], output, GOOD)
    return {"output": output, "stdout": result.stdout, "clicks": log["first"]}
