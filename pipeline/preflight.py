"""Checks a local run's inputs and outputs before any component runs.

`problems` reads every click-log file as ClickExampleGen will (headers,
compressed streams, Parquet row groups, TFRecord checksums; see
components/click_example_gen/inputs.py), matches the item catalog and reads
its headers, checks the curated schema file exists and that the output
directory can be written, so that a
wrong path or a damaged file is reported in the first seconds of a run rather
than minutes into it. Each problem is one line naming the input, the bad
value and what was expected.
"""

from __future__ import annotations

import os
import tempfile

from pipeline.config import PipelineConfig


def _output_problem(output_dir: str) -> str | None:
    output_dir = os.path.abspath(output_dir)
    parent = output_dir
    while not os.path.exists(parent):  # the nearest existing ancestor must be writable
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return (f"--output {output_dir!r}: {parent!r} is a file; expected a directory "
                "(or a path that can be created)")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        return (f"--output {output_dir!r}: cannot write in {parent!r} ({error.strerror}); "
                "expected a writable directory")
    return None


def schema_problem(config: PipelineConfig) -> str | None:
    """The curated schema file (`validation.schema_path`) must exist."""
    from pipeline.pipeline import with_absolute_schema_path

    path = with_absolute_schema_path(config).validation.schema_path
    if "://" in path or os.path.isfile(path):
        return None
    return (f"validation.schema_path={config.validation.schema_path!r}: no such file "
            f"({path}); expected a schema text file (.pbtxt, see docs/running.md: "
            "python -m pipeline.schema)")


def problems(data_path: str, output_dir: str, config: PipelineConfig) -> list[str]:
    """One line per unusable input or output; [] when the run can start."""
    from components.click_example_gen import inputs
    from components.vocab_stats_gen import item_catalog

    found = []
    ingestion = config.ingestion
    try:
        inputs.resolve_input_files(os.path.abspath(data_path), ingestion.input_format,
                                   ingestion.schema, ingestion.corrupt_files)
    except ValueError as error:
        found.append(str(error))
    if config.vocab.item_catalog is not None:
        try:
            item_catalog.resolve_catalog_files(config.vocab.item_catalog)
        except ValueError as error:
            found.append(str(error))
    schema = schema_problem(config)
    if schema:
        found.append(schema)
    output = _output_problem(output_dir)
    if output:
        found.append(output)
    return found
