"""The pipeline's Beam steps on Beam's portable runner, with the user code in
worker processes that a separate worker pool starts (as Flink and Dataflow
run it), give what the DirectRunner gives.

`pipeline.create_pipeline` is run by LocalDagRunner up to StatisticsGen and
VocabStatsGen (ClickExampleGen, StatisticsGen, VocabStatsGen: every Beam
step before training), once with `pipeline.beam_args` naming the portable
runner and an EXTERNAL environment served by
``python -m apache_beam.runners.worker.worker_pool_main``, once on the
DirectRunner. The DirectRunner run is in memory: the default multi-process
mode gives the same results (the pipeline tests run it) and would triple
this test's time on two cores.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline

from clicklog import synthetic
from models import vocab as vocab_lib
from pipeline import reports
from pipeline.config import load_config
from pipeline.pipeline import create_pipeline
from tests.components.click_example_gen.support import run_click_example_gen
from tests.components.support import tree_bytes
from tests.serving import support

BEAM_NODES = ["StatisticsGen", "VocabStatsGen"]  # and ClickExampleGen, upstream of both
WORKER_STARTED = "Starting worker with command"
SPLITS = ("train", "eval")


def portable_args(port: int) -> list[str]:
    return ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{port}"]


class WorkerPool:
    """``worker_pool_main`` in its own session; its stderr (and its workers')
    goes to `log_path`.

    The pool starts each SDK worker as ``python -c ...`` with the pool's
    environment: `python` must be this interpreter (PATH), and the workers
    need the repository on PYTHONPATH and TF_USE_LEGACY_KERAS like every
    process of the pipeline.
    """

    def __init__(self, log_path):
        self.port = support.free_port()
        self.log_path = log_path
        env = support.subprocess_env()
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                 f"--service_port={self.port}"],
                cwd=support.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self._wait_listening(timeout=60)

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker pool exited ({self.proc.returncode}):\n{self.log()}")
            try:
                socket.create_connection(("localhost", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"worker pool not listening on {self.port} after {timeout}s:\n"
                           f"{self.log()}")

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def workers_started(self) -> int:
        return self.log().count(WORKER_STARTED)

    def stop(self) -> None:
        """Ends the pool and the workers it started (its process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory):
    pool = WorkerPool(tmp_path_factory.mktemp("worker-pool") / "pool.log")
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture(scope="module")
def click_log(tmp_path_factory):
    """A small synthetic log (about 500 clicks) and its item catalogue (items.csv)."""
    root = tmp_path_factory.mktemp("portable-data")
    clicks = synthetic.write(synthetic.SyntheticConfig(
        num_users=60, num_items=40, num_categories=4, clicks_per_user=8, seed=1), str(root))
    return {"clicks": clicks, "catalog": str(root / "items.csv")}


def run_beam_steps(click_log, output, beam_args: list[str]) -> dict:
    """The pipeline's Beam steps with `beam_args`; -> their output artifacts."""
    config = load_config(None, [
        "pipeline.beam_args=[" + ",".join(beam_args) + "]",
        f"vocab.item_catalog.path={click_log['catalog']}",
        "vocab.item_catalog.features={category: string}"])
    assert list(config.pipeline.beam_args) == beam_args
    metadata = str(output / "metadata.sqlite")
    pipeline = create_pipeline(
        str(output / "tfx"), click_log["clicks"], str(output / "serving"), config,
        tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata))
    tfx.orchestration.LocalDagRunner().run(
        pipeline, run_options=tfx_pipeline.RunOptions(to_nodes=BEAM_NODES))
    store = reports._store(metadata)
    return {name: reports.node_output(store, node, type_name)
            for name, node, type_name in [
                ("examples", "ClickExampleGen", "Examples"),
                ("quarantine", "ClickExampleGen", "retrieval.QuarantinedClicks"),
                ("statistics", "StatisticsGen", "ExampleStatistics"),
                ("vocab", "VocabStatsGen", "retrieval.VocabStats"),
                ("trainer", "RetrievalTrainer", "Model")]}


@pytest.fixture(scope="module")
def runs(click_log, worker_pool, tmp_path_factory):
    started = worker_pool.workers_started()
    portable = run_beam_steps(click_log, tmp_path_factory.mktemp("portable"),
                              portable_args(worker_pool.port))
    portable["workers_started"] = worker_pool.workers_started() - started
    direct = run_beam_steps(click_log, tmp_path_factory.mktemp("direct"),
                            ["--direct_running_mode=in_memory"])
    return {"portable": portable, "direct": direct}


def _examples(artifact, split: str) -> list[bytes]:
    files = glob.glob(os.path.join(artifact.uri, f"Split-{split}", "*.gz"))
    return sorted(record.numpy() for record in
                  tf.data.TFRecordDataset(files, compression_type="GZIP"))


def _ingestion_report(artifact) -> dict:
    with open(os.path.join(artifact.uri, "ingestion.json")) as f:
        return json.load(f)


def _statistics(artifact, split: str) -> dict:
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    with open(os.path.join(artifact.uri, f"Split-{split}", "FeatureStats.pb"), "rb") as f:
        stats.ParseFromString(f.read())
    (dataset,) = stats.datasets
    return json_format.MessageToDict(dataset)


def assert_close(portable, direct, where="statistics"):
    """Equal, floats up to summation order (TFDV adds per bundle)."""
    if isinstance(direct, dict):
        assert sorted(portable) == sorted(direct), where
        for key in direct:
            assert_close(portable[key], direct[key], f"{where}.{key}")
    elif isinstance(direct, list):
        assert len(portable) == len(direct), where
        for i, (p, d) in enumerate(zip(portable, direct, strict=True)):
            assert_close(p, d, f"{where}[{i}]")
    elif isinstance(direct, float):
        assert portable == pytest.approx(direct, rel=1e-9), where
    else:
        assert portable == direct, where


def test_the_beam_steps_ran_in_the_worker_pools_processes(runs, worker_pool):
    # One SDK worker process per Beam job (ClickExampleGen, StatisticsGen,
    # VocabStatsGen), each started by the pool; the DirectRunner run started none.
    assert runs["portable"]["workers_started"] == 3, worker_pool.log()[-3000:]
    assert worker_pool.workers_started() == 3
    # ClickExampleGen saw a non-local runner: it grouped clicks by user with
    # the runner's GroupByKey, not through local shard files.
    shuffles = {run: _ingestion_report(runs[run]["quarantine"])["shuffle"]["mode"]
                for run in runs}
    assert shuffles == {"portable": "group_by_key", "direct": "files"}
    # Only the Beam steps ran.
    assert runs["portable"]["trainer"] is None and runs["direct"]["trainer"] is None


def test_examples_are_those_of_the_direct_runner(runs):
    portable, direct = runs["portable"], runs["direct"]
    counts = {}
    for split in SPLITS:
        examples = _examples(portable["examples"], split)
        assert examples == _examples(direct["examples"], split), split
        counts[split] = len(examples)
    assert counts["train"] > 300 and counts["eval"] > 30, counts
    reports_ = {run: _ingestion_report(runs[run]["quarantine"]) for run in runs}
    assert reports_["portable"]["totals"] == reports_["direct"]["totals"]
    assert reports_["portable"]["totals"]["accepted_by_split"] == counts
    assert reports_["portable"]["files"] == reports_["direct"]["files"]


def test_statistics_agree_with_the_direct_runner(runs):
    for split in SPLITS:
        portable = _statistics(runs["portable"]["statistics"], split)
        direct = _statistics(runs["direct"]["statistics"], split)
        assert int(portable["numExamples"]) == len(
            _examples(runs["portable"]["examples"], split)), split
        assert_close(portable, direct, f"statistics[{split}]")


def test_vocabularies_and_frequency_stats_are_those_of_the_direct_runner(runs):
    portable_dir, direct_dir = runs["portable"]["vocab"].uri, runs["direct"]["vocab"].uri
    portable, direct = vocab_lib.read_vocab(portable_dir), vocab_lib.read_vocab(direct_dir)
    assert len(portable.item_ids) > 30 and len(portable.user_ids) > 40
    assert sum(portable.item_counts) == len(_examples(runs["portable"]["examples"], "train"))
    assert (portable.item_ids, portable.item_counts, portable.item_recent_counts) == (
        direct.item_ids, direct.item_counts, direct.item_recent_counts)
    assert portable.item_sampling_probability == direct.item_sampling_probability
    assert (portable.user_ids, portable.user_counts) == (direct.user_ids, direct.user_counts)
    assert vocab_lib.read_item_stats(portable_dir) == vocab_lib.read_item_stats(direct_dir)
    assert portable.stats == direct.stats
    assert portable.stats["catalog"]["catalog_items_with_clicks"] > 30
    # Every file of the artifact, byte for byte (item_features.tsv, features/, ...).
    files = tree_bytes(portable_dir)
    assert vocab_lib.ITEM_FEATURES_FILE in files
    assert files == tree_bytes(direct_dir)


# The job fails in the embedded job service's thread, which re-raises it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_without_the_worker_pool_the_portable_run_fails(click_log, tmp_path):
    # Nothing listens on the port: the job cannot start its workers, and says where it tried.
    port = support.free_port()
    with pytest.raises(RuntimeError, match=rf"(?s)failed in state FAILED.*:{port}: "
                                           "Failed to connect"):
        run_click_example_gen(tmp_path, click_log["clicks"],
                              beam_pipeline_args=portable_args(port))
