"""Compiles the pipeline to a Kubeflow Pipelines v2 spec (`KubeflowV2DagRunner`).

The same `create_pipeline` as the local run; only the runner, the image and
the paths differ. Beam steps take their runner from
``pipeline.beam_args`` in the config (e.g. ``--runner=DataflowRunner
--project=... --region=... --temp_location=gs://...``). The curated schema
is read inside the step image: a null or relative `validation.schema_path`
names a file of the image (kubeflow/Dockerfile copies configs/ to
IMAGE_ROOT); a URL (``gs://...``) or an absolute path is used as given.
"""

from __future__ import annotations

import os
import posixpath

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx import v1 as tfx  # noqa: E402

from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402

IMAGE_ROOT = "/pipeline"  # WORKDIR of kubeflow/Dockerfile: the repository's files
IMAGE_DEFAULT_SCHEMA = posixpath.join(IMAGE_ROOT, "configs", "schema", "clicks.pbtxt")


def with_image_schema_path(config: PipelineConfig) -> PipelineConfig:
    """`validation.schema_path` as the step image sees it (module docstring)."""
    path = config.validation.schema_path
    if path is None:
        path = IMAGE_DEFAULT_SCHEMA
    elif "://" not in path and not posixpath.isabs(path):
        path = posixpath.join(IMAGE_ROOT, path)
    return config.replace(validation=config.validation.replace(schema_path=path))


def compile_pipeline(output_file: str, data_path: str, pipeline_root: str, image: str,
                     config: PipelineConfig, serving_base: str) -> str:
    """Writes the KFP v2 pipeline job JSON to `output_file`; returns its path."""
    pipeline = create_pipeline(pipeline_root=pipeline_root, data_path=data_path,
                               serving_base=serving_base, config=with_image_schema_path(config),
                               metadata_connection_config=None,
                               reports_dir=pipeline_root.rstrip("/") + "/reports")
    output_file = os.path.abspath(output_file)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(output_file),
        output_filename=os.path.basename(output_file))
    runner.run(pipeline)
    return output_file
