"""Two pipeline runs shared by the pipeline tests (session fixtures).

`first_run`: `retrieval-pipeline` on seeded synthetic clicks (plus two
malformed rows) with the default Beam runner and a single-member model: it is
blessed and both exports are pushed. `second_run`: a copy of that output
directory (MLMD included) with a deliberately bad model trained into it, so
the latest-blessed resolver hands the evaluator the first run's towers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from clicklog import synthetic
from tests.serving import support

COMMON = ["--set", "evaluation.ks=[5,10,20]", "--set", "evaluation.blessing_k=20",
          "--set", "evaluation.ann_queries=100", "--set", "evaluation.ann_latency_calls=20",
          "--set", "model.towers.embedding_dim=32", "--set", "model.export.top_k=20",
          "--set", "model.ensemble.size=1"]
GOOD = ["--set", "model.training.epochs=4"]
# Random towers: no learning, no popularity input, no trending prior (served
# or in training: recent popularity alone would make a reasonable model).
BAD = ["--set", "model.training.epochs=1", "--set", "model.training.learning_rate=1.0e-9",
       "--set", "model.towers.popularity=false", "--set", "model.prior.grid=[]",
       "--set", "model.prior.in_training=false",
       "--set", "pipeline.beam_args=[--direct_running_mode=in_memory]"]


def run_cli(clicks: str, output, extra: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--data", clicks, "--output", str(output),
         *COMMON, *extra],
        cwd=support.REPO_ROOT, env=support.subprocess_env(), capture_output=True, text=True,
        timeout=1200)
    assert result.returncode == 0, result.stderr[-5000:]
    return result


@pytest.fixture(scope="session")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    clicks = synthetic.write(synthetic.SyntheticConfig(
        num_users=300, num_items=120, num_categories=6, clicks_per_user=16, seed=3),
        str(root / "data"))
    # Two malformed rows ride along: the run must count them and go on.
    with open(clicks, "a") as f:
        f.write("u1,,1600000000\nu2,i3,not-a-time\n")
    output = root / "first"
    result = run_cli(clicks, output, GOOD)
    return {"output": output, "stdout": result.stdout, "clicks": clicks}


@pytest.fixture(scope="session")
def second_run(first_run, tmp_path_factory):
    output = tmp_path_factory.mktemp("second") / "out"
    shutil.copytree(first_run["output"], output)
    result = run_cli(first_run["clicks"], output, BAD)
    return {"output": output, "stdout": result.stdout, "clicks": first_run["clicks"]}
