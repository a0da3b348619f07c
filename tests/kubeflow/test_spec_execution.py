"""The compiled KFP v2 spec, executed: `kubeflow.local_launcher` plays the KFP
launcher (ExecutorInput from the spec, TFX's kubeflow_v2_run_executor as each
step's command) on the first pipeline run's clicks, with per-run pipeline
parameters set, and its outputs are compared with the LocalDagRunner run's
(`first_run`, tests/pipeline_runs.py).

"Same" as the local run: every component wrote the same outputs with the same
artifact types, the same example counts, byte-identical vocabulary files and
exported signatures with the same inputs and outputs (names, dtypes,
shapes). The weights and metrics are not compared: training differs by
design here (the spec run trains EPOCHS epochs, the local run 4) and the
Beam runner mode differs (in-memory here, for time).

The spec is compiled with the image root = this checkout, so the steps read
the curated schema from the repository rather than /pipeline (the image's
copy); the harness runs each step's `python -m tfx...` with this interpreter
and the checkout as working directory.
"""

from __future__ import annotations

import copy
import json
import os

import pytest
from ml_metadata.proto import metadata_store_pb2
from tensorflow.core.protobuf import saved_model_pb2

from kubeflow import local_launcher
from pipeline import cli, reports
from pipeline.kubeflow_runner import RUN_PARAMETERS
from tests.components.support import tree_bytes
from tests.pipeline.test_end_to_end import COMPONENTS
from tests.pipeline_runs import COMMON, GOOD
from tests.serving.support import REPO_ROOT

EPOCHS = 3  # the compiled default is GOOD's 4
MIN_LIFT = 1.01  # the compiled default is the config's 1.02
IN_MEMORY = ["--set", "pipeline.beam_args=[--direct_running_mode=in_memory]"]


@pytest.fixture(scope="module")
def compiled(first_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("kfp")
    job = root / "pipeline.json"
    assert cli.main(["--kubeflow", "--data", first_run["clicks"], "--output", str(job),
                     "--pipeline_root", str(root / "root"), "--image_root", str(REPO_ROOT),
                     *COMMON, *GOOD, *IN_MEMORY]) == 0
    return {"job": job, "root": root / "root"}


@pytest.fixture(scope="module")
def spec_run(compiled):
    serving = compiled["root"].parent / "serving-param"
    lines = []
    launcher = local_launcher.Launcher(
        str(compiled["job"]), parameters={"epochs": str(EPOCHS), "min_lift": str(MIN_LIFT),
                                          "serving_base": str(serving)},
        run_id="run-1", echo=lines.append)
    # Two at a time: each step is mostly its process importing TFX, one core each.
    runs = launcher.run(parallelism=2)
    return {"runs": runs, "launcher": launcher, "serving": serving, "lines": lines,
            "job": json.loads(compiled["job"].read_text())}


def _uri(run, task, key):
    [artifact] = run["runs"][task].outputs[key]
    return artifact.uri


def test_runtime_settings_are_pipeline_parameters_of_the_spec(compiled, first_run):
    job = json.loads(compiled["job"].read_text())
    spec = job["pipelineSpec"]
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == set(RUN_PARAMETERS)
    defaults = {k: next(iter(v.values())) for k, v in job["runtimeConfig"]["parameters"].items()}
    assert defaults == {"data_root": first_run["clicks"], "epochs": "4", "min_lift": 1.02,
                        "min_recall": 0.0,
                        "serving_base": str(compiled["root"]) + "/serving"}
    tasks = spec["root"]["dag"]["tasks"]
    consumers = {(task, key): source["componentInputParameter"]
                 for task, body in tasks.items()
                 for key, source in body.get("inputs", {}).get("parameters", {}).items()
                 if "componentInputParameter" in source}
    assert consumers == {
        ("ClickExampleGen", "input_base"): "data_root",
        ("RetrievalTrainer", "epochs"): "epochs", ("FinalTrainer", "epochs"): "epochs",
        ("TopKEvaluator", "min_lift"): "min_lift", ("TopKEvaluator", "min_recall"): "min_recall",
        ("Pusher", "serving_base"): "serving_base",
        ("BruteForcePusher", "serving_base"): "serving_base"}


def test_every_task_ran_and_the_model_is_blessed_and_pushed(spec_run):
    tasks = set(spec_run["job"]["pipelineSpec"]["root"]["dag"]["tasks"])
    assert set(spec_run["runs"]) == tasks
    assert set(COMPONENTS) <= tasks
    for name in COMPONENTS:  # every step wrote its executor output
        assert os.path.exists(os.path.join(spec_run["launcher"].run_root, name,
                                           local_launcher.OUTPUT_FILE)), name
    # A first run under this root: nothing blessed before, so the resolvers give nothing.
    assert spec_run["runs"]["LatestBlessedModelResolver-model-resolver"].outputs == {"model": []}
    [blessing] = spec_run["runs"]["TopKEvaluator"].outputs["blessing"]
    assert blessing.metadata["blessed"] == 1
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    for task, name in (("Pusher", "retrieval"), ("BruteForcePusher", "retrieval_brute_force")):
        [pushed] = spec_run["runs"][task].outputs["pushed_model"]
        assert pushed.metadata["pushed"] == 1
        # Pushed to the serving_base the run set, not the compiled default.
        destination = pushed.metadata["pushed_destination"]
        assert os.path.dirname(destination) == str(spec_run["serving"] / name)
        assert os.path.exists(os.path.join(destination, "saved_model.pb"))
    assert not os.path.exists(os.path.join(spec_run["launcher"].pipeline_root, "serving"))


def test_per_run_parameters_took_effect(spec_run, first_run):
    towers = os.path.join(_uri(spec_run, "RetrievalTrainer", "model"), "Format-Serving")
    with open(os.path.join(towers, "towers.json")) as f:
        assert json.load(f)["trained_epochs"] == EPOCHS
    with open(os.path.join(_uri(spec_run, "TopKEvaluator", "evaluation"), "metrics.json")) as f:
        assert json.load(f)["config"]["min_lift"] == MIN_LIFT


def _local_outputs(output) -> dict[str, dict[str, str]]:
    """{node: {output key: artifact type}} of the local run's MLMD."""
    store = reports._store(str(output / "tfx" / "metadata.sqlite"))
    result = {}
    for context in store.get_contexts_by_type("node"):
        node = context.name.rsplit(".", 1)[-1]
        [execution] = store.get_executions_by_context(context.id)
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type == metadata_store_pb2.Event.OUTPUT]
        artifacts = store.get_artifacts_by_id([e.artifact_id for e in events])
        types = store.get_artifact_types_by_id([a.type_id for a in artifacts])
        keys = [e.path.steps[0].key for e in events]
        result[node] = dict(zip(keys, [t.name for t in types], strict=True))
    return result


def _title(artifact) -> str:
    title = local_launcher._schema_title(artifact.type)
    return title[len("tfx."):] if title.startswith("tfx.") else title


def test_same_artifacts_as_the_local_run(spec_run, first_run):
    local = _local_outputs(first_run["output"])
    for node in COMPONENTS:
        outputs = spec_run["runs"][node].outputs
        assert {k: _title(a) for k, [a] in outputs.items()} == local[node], node


def test_same_examples_and_vocabularies_as_the_local_run(spec_run, first_run):
    with open(first_run["output"] / "reports" / "ingestion.json") as f:
        local_totals = json.load(f)["totals"]
    [quarantine] = spec_run["runs"]["ClickExampleGen"].outputs["quarantine"]
    assert json.loads(quarantine.metadata["ingestion_report"])["totals"] == local_totals
    store = reports._store(str(first_run["output"] / "tfx" / "metadata.sqlite"))
    for node in ("VocabStatsGen", "VocabStatsGenAllClicks"):
        local_dir = reports.node_output(store, node, "retrieval.VocabStats").uri
        spec_dir = _uri(spec_run, node, "vocab_stats")
        assert tree_bytes(local_dir) == tree_bytes(spec_dir), node




def _signatures(version_dir) -> dict:
    model = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        model.ParseFromString(f.read())
    [graph] = model.meta_graphs

    def tensors(infos):
        return {k: (v.dtype, [d.size for d in v.tensor_shape.dim]) for k, v in infos.items()}

    return {name: (tensors(sig.inputs), tensors(sig.outputs), sig.method_name)
            for name, sig in graph.signature_def.items()}


def test_same_exported_signatures_as_the_local_run(spec_run, first_run):
    for task, name in (("Pusher", "retrieval"), ("BruteForcePusher", "retrieval_brute_force")):
        [pushed] = spec_run["runs"][task].outputs["pushed_model"]
        local_base = first_run["output"] / "serving" / name
        [version] = [v for v in os.listdir(local_base) if v.isdigit()]
        assert _signatures(pushed.metadata["pushed_destination"]) == \
            _signatures(local_base / version), name


# --- failure modes (fast: no pipeline step runs) ------------------------------------------------

def _one_task_job(tmp_path, command: list[str], parameters: dict | None = None):
    """A pipeline job with one container task `Step` running `command`."""
    job = {"pipelineSpec": {
        "pipelineInfo": {"name": "one"}, "schemaVersion": "2.0.0",
        "root": {"dag": {"tasks": {"Step": {"componentRef": {"name": "Step"},
                                            "taskInfo": {"name": "Step"}}}},
                 "inputDefinitions": {"parameters": {
                     name: {"type": "STRING"} for name in parameters or {}}}},
        "components": {"Step": {"executorLabel": "Step_executor"}},
        "deploymentSpec": {"executors": {"Step_executor": {"container": {
            "image": "unused", "command": command[:1], "args": command[1:]}}}}},
        "runtimeConfig": {"gcsOutputDirectory": str(tmp_path / "root"),
                          "parameters": {k: {"stringValue": v}
                                         for k, v in (parameters or {}).items()}}}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    return path


def test_a_failing_step_names_the_task_its_command_and_stderr(tmp_path):
    job = _one_task_job(tmp_path, ["python", "-c",
                                   "import sys; print('boom: ' + sys.argv[1], file=sys.stderr); "
                                   "sys.exit(3)", "{{$}}"])
    with pytest.raises(local_launcher.LauncherError) as error:
        local_launcher.Launcher(str(job), run_id="r", echo=lambda line: None).run()
    message = str(error.value)
    assert message.startswith("task Step failed (exit code 3)")
    assert "-c import sys" in message  # the command
    assert "boom: {" in message  # its stderr, with {{$}} replaced by the ExecutorInput JSON
    assert "executor_output.json" in message  # the ExecutorInput's output file


def test_unknown_or_missing_pipeline_parameters_are_errors(tmp_path, capsys):
    job = _one_task_job(tmp_path, ["python", "-c", "pass"], parameters={"data_root": "x"})
    assert local_launcher.main([str(job), "--param", "epochs=2"]) == 1
    assert "--param epochs: not a pipeline parameter of the spec (declared: data_root)" in \
        capsys.readouterr().err
    spec = json.loads(job.read_text())
    spec["runtimeConfig"]["parameters"] = {}
    job.write_text(json.dumps(spec))
    assert local_launcher.main([str(job)]) == 1
    assert "pipeline parameters without a value: data_root" in capsys.readouterr().err


def test_a_corrupt_executor_class_path_fails_its_task(compiled, tmp_path):
    """The compiled spec cut down to ImportSchemaGen, its executor class path broken."""
    job = json.loads(compiled["job"].read_text())
    spec = copy.deepcopy(job["pipelineSpec"])
    spec["root"]["dag"]["tasks"] = {"ImportSchemaGen": spec["root"]["dag"]["tasks"][
        "ImportSchemaGen"]}
    executor = spec["deploymentSpec"]["executors"]["ImportSchemaGen_executor"]["container"]
    executor["args"][executor["args"].index("--executor_class_path") + 1] = \
        "tfx.components.schema_gen.import_schema_gen.executor.NoSuchExecutor"
    job["pipelineSpec"] = spec
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(job))
    with pytest.raises(local_launcher.LauncherError) as error:
        local_launcher.Launcher(str(path), pipeline_root=str(tmp_path / "root"), run_id="r",
                                echo=lambda line: None).run()
    message = str(error.value)
    assert message.startswith("task ImportSchemaGen failed")
    assert "Could not import tfx.components.schema_gen.import_schema_gen.executor." \
           "NoSuchExecutor" in message
