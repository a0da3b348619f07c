"""Runs the pipeline locally: LocalDagRunner, SQLite MLMD, Beam DirectRunner.

Layout under the output directory:
  tfx/<pipeline>/...        artifacts
  tfx/metadata.sqlite       MLMD
  serving/<model_name>/<version>/               pushed ScaNN export
  serving/<model_name>_brute_force/<version>/   pushed brute-force export
  reports/                  ingestion.json, metrics.json (see pipeline/reports.py);
                            after a failed ingestion also quarantine/
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx import v1 as tfx  # noqa: E402

from clicklog.errors import InputError  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402


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
    from components.click_example_gen.inputs import input_fingerprint
    from pipeline.preflight import schema_problem

    problem = schema_problem(config)
    if problem:
        raise InputError(problem)
    where = paths(output_dir)
    os.makedirs(where["pipeline_root"], exist_ok=True)
    catalog = config.vocab.item_catalog
    fingerprint = input_fingerprint([os.path.abspath(data_path)]
                                    + ([catalog.path] if catalog is not None else []))
    pipeline = create_pipeline(
        pipeline_root=where["pipeline_root"],
        data_path=os.path.abspath(data_path),
        serving_base=where["serving"],
        config=config,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            where["metadata"]),
        reports_dir=where["reports"],
        input_fingerprint=fingerprint,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return where
