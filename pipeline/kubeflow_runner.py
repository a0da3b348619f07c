"""Compiles the pipeline to a Kubeflow Pipelines v2 spec (`KubeflowV2DagRunner`).

The same `create_pipeline` as the local run; only the runner, the image and
the paths differ. Beam steps take their runner from
``pipeline.beam_args`` in the config (e.g. ``--runner=DataflowRunner
--project=... --region=... --temp_location=gs://...``). Files are read
inside the step image: a path setting naming a file of this repository
(the curated schema under configs/ by default, which kubeflow/Dockerfile
copies to IMAGE_ROOT) becomes the same file under IMAGE_ROOT; a URL
(``gs://...``) or a path outside the repository is used as given.
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


def _in_image(path: str) -> str:
    """A local path inside this repository -> the same file in the step image."""
    if "://" in path:
        return path
    relative = os.path.relpath(os.path.abspath(path), REPO_ROOT)
    if relative == ".." or relative.startswith(".." + os.sep):
        return path
    return posixpath.join(IMAGE_ROOT, *relative.split(os.sep))


def with_image_paths(config: PipelineConfig) -> PipelineConfig:
    """Path settings as the step image sees them (module docstring)."""
    return map_paths(with_absolute_schema_path(config), _in_image)


def compile_pipeline(output_file: str, data_path: str, pipeline_root: str, image: str,
                     config: PipelineConfig, serving_base: str) -> str:
    """Writes the KFP v2 pipeline job JSON to `output_file`; returns its path."""
    pipeline = create_pipeline(pipeline_root=pipeline_root, data_path=data_path,
                               serving_base=serving_base, config=with_image_paths(config),
                               metadata_connection_config=None,
                               reports_dir=pipeline_root.rstrip("/") + "/reports")
    output_file = os.path.abspath(output_file)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(output_file),
        output_filename=os.path.basename(output_file))
    runner.run(pipeline)
    return output_file
