"""Compiles the pipeline to a Kubeflow Pipelines v2 spec (`KubeflowV2DagRunner`).

The same `create_pipeline` as the local run; only the runner, the image and
the paths differ. Beam steps take their runner from
``pipeline.beam_args`` in the config (e.g. ``--runner=DataflowRunner
--project=... --region=... --temp_location=gs://...``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx import v1 as tfx  # noqa: E402

from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402


def compile_pipeline(output_file: str, data_path: str, pipeline_root: str, image: str,
                     config: PipelineConfig, serving_base: str) -> str:
    """Writes the KFP v2 pipeline job JSON to `output_file`; returns its path."""
    pipeline = create_pipeline(pipeline_root=pipeline_root, data_path=data_path,
                               serving_base=serving_base, config=config,
                               metadata_connection_config=None,
                               reports_dir=pipeline_root.rstrip("/") + "/reports")
    output_file = os.path.abspath(output_file)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(output_file),
        output_filename=os.path.basename(output_file))
    runner.run(pipeline)
    return output_file
