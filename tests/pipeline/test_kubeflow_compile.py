"""The pipeline compiles to a KFP v2 spec that parses with the kfp-pipeline-spec protos."""

import json

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

import retrieval
from pipeline import cli
from tests.pipeline.test_end_to_end import COMPONENTS


def test_compile_writes_parsable_pipeline_spec(tmp_path, capsys):
    output = tmp_path / "pipeline.json"
    code = cli.main(["--kubeflow", "--data", "gs://bucket/clicks/*.csv", "--output", str(output),
                     "--pipeline_root", "gs://bucket/root", "--image", "registry/retrieval:1",
                     "--set", "pipeline.beam_args=[--runner=DataflowRunner]",
                     "--set", "ranking.enabled=true"])
    assert code == 0
    assert str(output) in capsys.readouterr().out
    job = json.loads(output.read_text())
    spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec(),
                                 ignore_unknown_fields=False)
    tasks = set(spec.root.dag.tasks)
    assert set(COMPONENTS) <= tasks
    # The latest-blessed-model resolver compiles to resolver tasks of its own.
    assert {t for t in tasks - set(COMPONENTS)} == {
        "LatestBlessedModelResolver-model-blessing-resolver",
        "LatestBlessedModelResolver-model-resolver"}
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"].values()
    images = {e["container"]["image"] for e in executors if "container" in e}
    assert images == {"registry/retrieval:1"}
    assert "--runner=DataflowRunner" in json.dumps(job["pipelineSpec"]["deploymentSpec"])
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"
    # Custom artifact types compile to `retrieval.<Name>` schema titles, which
    # the step image imports from the `retrieval` package.
    titles = {artifact["artifactType"]["instanceSchema"].split("\n")[0].removeprefix("title: ")
              for component in job["pipelineSpec"]["components"].values()
              for artifact in component.get("outputDefinitions", {}).get("artifacts", {}).values()}
    custom = {title for title in titles if title.startswith("retrieval.")}
    assert "retrieval.Ranker" in custom
    assert custom <= {f"retrieval.{name}" for name in retrieval.__all__}
    # The curated schema is read inside the step image (kubeflow/Dockerfile copies configs/).
    schema_file = job["pipelineSpec"]["root"]["dag"]["tasks"]["ImportSchemaGen"]["inputs"][
        "parameters"]["schema_file"]["runtimeValue"]["constantValue"]["stringValue"]
    assert schema_file == "/pipeline/configs/schema/clicks.pbtxt"


def test_compiled_daily_run_warm_starts_both_trainers_from_the_last_blessed_model(tmp_path):
    output = tmp_path / "daily.json"
    assert cli.main(["--kubeflow", "--data", "gs://bucket/clicks/*.csv", "--output",
                     str(output), "--pipeline_root", "gs://bucket/root", "--since", "base"]) == 0
    job = json.loads(output.read_text())
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    for trainer in ("RetrievalTrainer", "FinalTrainer"):
        inputs = tasks[trainer]["inputs"]
        assert inputs["artifacts"]["base_model"]["taskOutputArtifact"]["producerTask"] == \
            "LatestBlessedModelResolver-model-resolver", trainer
        custom = json.dumps(inputs["parameters"]["custom_config"])
        assert '\\"since_base_model\\": true' in custom and '\\"warm_start\\": true' in custom


def test_a_config_files_schema_is_the_same_file_in_the_step_image(tmp_path, monkeypatch):
    """The config's paths are read from its directory on this machine; the
    spec names the copy in the image, not this machine's path."""
    from tests.serving.support import REPO_ROOT

    monkeypatch.chdir(tmp_path)
    output = tmp_path / "mt.json"
    assert cli.main(["--kubeflow", "--data", "gs://bucket/ratings.dat", "--output", str(output),
                     "--config", str(REPO_ROOT / "configs" / "movietweetings.yaml")]) == 0
    job = json.loads(output.read_text())
    schema_file = job["pipelineSpec"]["root"]["dag"]["tasks"]["ImportSchemaGen"]["inputs"][
        "parameters"]["schema_file"]["runtimeValue"]["constantValue"]["stringValue"]
    assert schema_file == "/pipeline/configs/schema/movietweetings.pbtxt"
    assert str(REPO_ROOT) not in output.read_text()
