"""`python -m pipeline.schema`: infer a schema from a good run of a click log.

Runs the pipeline's ClickExampleGen -> StatisticsGen -> SchemaGen on the log
with the config (LocalDagRunner, SQLite MLMD and artifacts in a scratch
directory) and writes the inferred schema as text. The result is the
starting point of a curated schema: tighten it by hand (required features,
value domains, list lengths; see configs/schema/movietweetings.pbtxt) and name
it in the config as ``validation.schema_path``; the pipeline imports it with
ImportSchemaGen and ExampleValidator checks every run against it.

    python -m pipeline.schema --data data/movietweetings-100k/ratings.dat \\
        --config configs/movietweetings.yaml --output /tmp/movietweetings.inferred.pbtxt
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

SCHEMA_FILE = "schema.pbtxt"


def infer_schema(data_path: str, output_file: str, config, work_dir: str) -> str:
    """Runs the pipeline (`create_pipeline`) up to SchemaGen on `data_path`
    under `work_dir`; copies the inferred schema to `output_file` and returns
    its path."""
    from tfx import v1 as tfx
    from tfx.orchestration import pipeline as tfx_pipeline

    from pipeline import reports
    from pipeline.pipeline import create_pipeline

    metadata = os.path.join(work_dir, "metadata.sqlite")
    pipeline = create_pipeline(
        os.path.join(work_dir, "tfx"), os.path.abspath(data_path),
        os.path.join(work_dir, "serving"), config,
        tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata))
    tfx.orchestration.LocalDagRunner().run(
        pipeline, run_options=tfx_pipeline.RunOptions(to_nodes=["SchemaGen"]))
    schema = reports.node_output(reports._store(metadata), "SchemaGen", "Schema")
    output_file = os.path.abspath(output_file)
    os.makedirs(os.path.dirname(output_file), exist_ok=True)
    shutil.copy(os.path.join(schema.uri, SCHEMA_FILE), output_file)
    return output_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.schema",
        description="Infer the schema of a click log's examples (the starting point of a "
                    "curated schema, validation.schema_path).")
    parser.add_argument("--data", required=True, help="click-log file, glob or directory")
    parser.add_argument("--output", required=True, help="schema text file (.pbtxt) to write")
    parser.add_argument("--config", help="YAML config file (its ingestion section is used)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value; repeatable")
    args = parser.parse_args(argv)
    from clicklog.errors import InputError
    from pipeline.config import load_config

    try:
        config = load_config(args.config, args.set)
    except ValueError as error:
        print(f"pipeline.schema: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="schema-inference-") as work_dir:
        try:
            path = infer_schema(args.data, args.output, config, work_dir)
        except InputError as error:
            print(f"pipeline.schema: {error}", file=sys.stderr)
            return 2
    print(f"pipeline.schema: wrote the inferred schema {path}; tighten it by hand before "
          "naming it in validation.schema_path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
