"""Compiles the pipeline to a Kubeflow Pipelines v2 spec (`KubeflowV2DagRunner`).

The same `create_pipeline` as the local run; only the runner, the image and
the paths differ. Beam steps take their runner from
``pipeline.beam_args`` in the config (e.g. ``--runner=DataflowRunner
--project=... --region=... --temp_location=gs://...``). Files are read
inside the step image: a path setting naming a file of this repository
(the curated schema under configs/ by default, which kubeflow/Dockerfile
copies to IMAGE_ROOT) becomes the same file under IMAGE_ROOT; a URL
(``gs://...``) or a path outside the repository is used as given.

What a user sets per run is a pipeline parameter of the spec (RUN_PARAMETERS:
the click data, the serving base, the training epochs and the blessing
thresholds), with the compiled values as defaults in
``runtimeConfig.parameters``; the rest of the config is fixed at compile time.
``kubeflow.local_launcher`` runs a compiled spec on this machine: compile it
with ``image_root`` = the repository so the steps read this checkout's files.
"""

from __future__ import annotations

import os
import posixpath

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx import v1 as tfx  # noqa: E402

from clicklog.config import map_paths  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.pipeline import REPO_ROOT, create_pipeline, with_absolute_schema_path  # noqa: E402

IMAGE_ROOT = "/pipeline"  # WORKDIR of kubeflow/Dockerfile: the repository's files

# Pipeline parameters of the spec: name -> (type, create_pipeline argument).
RUN_PARAMETERS = {
    "data_root": (str, "data_path"),        # click-log file, glob or directory
    "serving_base": (str, "serving_base"),  # parent of the pushed model directories
    "epochs": (int, "epochs"),              # model.training.epochs
    "min_lift": (float, "min_lift"),        # evaluation.min_lift
    "min_recall": (float, "min_recall"),    # evaluation.min_recall
}


def _in_image(path: str, image_root: str = IMAGE_ROOT) -> str:
    """A local path inside this repository -> the same file in the step image."""
    if "://" in path:
        return path
    relative = os.path.relpath(os.path.abspath(path), REPO_ROOT)
    if relative == ".." or relative.startswith(".." + os.sep):
        return path
    return posixpath.join(image_root, *relative.split(os.sep))


def with_image_paths(config: PipelineConfig, image_root: str = IMAGE_ROOT) -> PipelineConfig:
    """Path settings as the step image sees them (module docstring)."""
    return map_paths(with_absolute_schema_path(config),
                     lambda path: _in_image(path, image_root))


def run_parameter_defaults(config: PipelineConfig, data_path: str,
                           serving_base: str) -> dict:
    """The compiled values of RUN_PARAMETERS: the defaults of a run."""
    return {"data_root": data_path, "serving_base": serving_base,
            "epochs": config.model.training.epochs,
            "min_lift": float(config.evaluation.min_lift),
            "min_recall": float(config.evaluation.min_recall)}


def compile_pipeline(output_file: str, data_path: str, pipeline_root: str, image: str,
                     config: PipelineConfig, serving_base: str,
                     image_root: str = IMAGE_ROOT) -> str:
    """Writes the KFP v2 pipeline job JSON to `output_file`; returns its path.

    `image_root`: where the step image holds this repository (kubeflow/Dockerfile);
    the repository itself (REPO_ROOT) for a local run of the spec."""
    defaults = run_parameter_defaults(config, data_path, serving_base)
    parameters = {name: tfx.dsl.experimental.RuntimeParameter(name=name, ptype=ptype)
                  for name, (ptype, _) in RUN_PARAMETERS.items()}
    pipeline = create_pipeline(pipeline_root=pipeline_root,
                               config=with_image_paths(config, image_root),
                               metadata_connection_config=None,
                               reports_dir=pipeline_root.rstrip("/") + "/reports",
                               **{argument: parameters[name]
                                  for name, (_, argument) in RUN_PARAMETERS.items()})
    output_file = os.path.abspath(output_file)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(output_file),
        output_filename=os.path.basename(output_file))
    runner.run(pipeline, parameter_values=defaults)
    return output_file
