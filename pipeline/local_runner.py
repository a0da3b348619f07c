"""Runs the pipeline locally: LocalDagRunner, SQLite MLMD, Beam DirectRunner.

Layout under the output directory:
  tfx/<pipeline>/...        artifacts
  tfx/metadata.sqlite       MLMD
  serving/<model_name>/<version>/               pushed ScaNN export
  serving/<model_name>_brute_force/<version>/   pushed brute-force export
  reports/                  ingestion.json, metrics.json (see pipeline/reports.py)
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx import v1 as tfx  # noqa: E402

from clicklog.errors import InputError  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.pipeline import create_pipeline, with_absolute_schema_path  # noqa: E402


def paths(output_dir: str) -> dict[str, str]:
    output_dir = os.path.abspath(output_dir)
    return {
        "pipeline_root": os.path.join(output_dir, "tfx"),
        "metadata": os.path.join(output_dir, "tfx", "metadata.sqlite"),
        "serving": os.path.join(output_dir, "serving"),
        "reports": os.path.join(output_dir, "reports"),
    }


def run(data_path: str, output_dir: str, config: PipelineConfig) -> dict[str, str]:
    """Runs the whole pipeline once; returns the paths used."""
    schema_path = with_absolute_schema_path(config).validation.schema_path
    if "://" not in schema_path and not os.path.isfile(schema_path):
        raise InputError(f"validation.schema_path={config.validation.schema_path!r}: no such "
                         f"file ({schema_path}); expected a schema text file (.pbtxt, see "
                         "docs/running.md: python -m pipeline.schema)")
    where = paths(output_dir)
    os.makedirs(where["pipeline_root"], exist_ok=True)
    pipeline = create_pipeline(
        pipeline_root=where["pipeline_root"],
        data_path=os.path.abspath(data_path),
        serving_base=where["serving"],
        config=config,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            where["metadata"]),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return where
