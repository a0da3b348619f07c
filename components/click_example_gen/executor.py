"""ClickExampleGen's executor: resolve the input files, run `IngestClicks`
(ingestion.py), write the report.

The ingestion report (per-file counters) is written as ``ingestion.json`` in
the quarantine artifact and as the ``ingestion_report`` custom property of
the examples artifact; a run whose counts do not reconcile, or with a file
that is mostly garbage, fails (report.py).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import apache_beam as beam
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifact_utils
from tfx.utils import io_utils

from clicklog.config import parse
from components import beam_runner
from components.click_example_gen import ingestion, inputs
from components.click_example_gen import report as report_lib
from components.click_example_gen.config import IngestionConfig

REPORT_FILE = "ingestion.json"
# The file shuffle's scratch directory inside the examples artifact, removed
# when the pipeline ends.
SHUFFLE_DIR = "_shuffle"
_COUNTERS_PREFIX = "counters"
_CUTOFF_PATH = ""  # counter rows of the split cut-offs carry no file


def build_pipeline(pipeline: beam.Pipeline, files: dict[str, inputs.InputFile],
                   config: IngestionConfig, split_dirs: dict[str, str],
                   quarantine_dir: str, counters_prefix: str, shuffle_dir: str | None = None,
                   num_shards: int = 0) -> None:
    """Adds reading, ingestion and writing of all outputs to `pipeline`.

    Args:
      split_dirs: {split name: directory} for every split of `config.splits`.
      shuffle_dir, num_shards: the file shuffle (see `ingestion.IngestClicks`).
    """
    records = pipeline | "ReadClickLogs" >> inputs.ReadClickRecords(
        files, config.csv_max_record_lines)
    outputs = records | "Ingest" >> ingestion.IngestClicks(files, config, shuffle_dir,
                                                           num_shards)
    for split in config.splits:
        _ = outputs[split] | f"Write{split}" >> beam.io.WriteToTFRecord(
            os.path.join(split_dirs[split], "data_tfrecord"), file_name_suffix=".gz")
    for part, rows in outputs["quarantine"].items():  # quarantined-{rows,users}-*.jsonl
        _ = (rows
             | f"QuarantineJson[{part}]" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
             | f"WriteQuarantine[{part}]" >> beam.io.WriteToText(
                 os.path.join(quarantine_dir, f"quarantined-{part}"), file_name_suffix=".jsonl"))
    cutoff_rows = outputs["cutoff"] | "CutoffRow" >> beam.Map(
        lambda c: ((_CUTOFF_PATH, "cutoff", ""), list(c)))
    _ = ((outputs["counters"], cutoff_rows) | "CountersAndCutoff" >> beam.Flatten()
         | "CountersJson" >> beam.Map(lambda kv: json.dumps([list(kv[0]), kv[1]]))
         | "WriteCounters" >> beam.io.WriteToText(counters_prefix, file_name_suffix=".jsonl"))


def read_report(counters_prefix: str, files, splits: list[str] | None = None) -> dict:
    import tensorflow as tf

    rows, cutoff = [], None
    for path in tf.io.gfile.glob(counters_prefix + "*.jsonl"):
        with tf.io.gfile.GFile(path) as f:
            for line in f:
                key, count = json.loads(line)
                if key[1] == "cutoff":
                    cutoff = count
                else:
                    rows.append((tuple(key), count))
    return report_lib.summarize_counters(rows, files, cutoff, splits)


def write_report_dir(report_dir: str, report: dict, quarantine_uri: str | None) -> None:
    """Writes ``ingestion.json`` to `report_dir`, and with `quarantine_uri`
    copies its quarantined rows to ``report_dir/quarantine/``: on a failed
    run TFX deletes the artifacts, so what the run set aside survives here."""
    fileio.makedirs(report_dir)
    io_utils.write_string_file(os.path.join(report_dir, REPORT_FILE),
                               json.dumps(report, indent=2, sort_keys=True, default=str))
    target = os.path.join(report_dir, "quarantine")
    if fileio.exists(target):  # a failed run's, now stale
        fileio.rmtree(target)
    if not quarantine_uri:
        return
    fileio.makedirs(target)
    for path in fileio.glob(os.path.join(quarantine_uri, "quarantined-*")):
        fileio.copy(path, os.path.join(target, os.path.basename(path)))


class Executor(base_beam_executor.BaseBeamExecutor):
    """Runs ingestion, writes the report, fails on unusable or mostly-garbage input.

    With the ``report_dir`` execution property, the report is also written
    there, and on failure (with the error and what was quarantined so far)
    before the error is raised.
    """

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        config = parse(IngestionConfig, json.loads(exec_properties["config"] or "{}"))
        report_dir = exec_properties.get("report_dir") or ""
        quarantine = artifact_utils.get_single_instance(output_dict["quarantine"])
        # What is known so far; `_ingest` replaces it with the counted report.
        self._report = {"input_base": exec_properties["input_base"],
                        "config": config.to_dict()}
        try:
            self._ingest(output_dict, exec_properties["input_base"], config, quarantine)
        except Exception as error:
            message = str(error).strip().splitlines()
            self._report.update(status="failed", error=message[-1] if message else repr(error))
            if report_dir:
                write_report_dir(report_dir, self._report, quarantine.uri)
            raise
        if report_dir:
            write_report_dir(report_dir, self._report, None)

    def _ingest(self, output_dict, input_base: str, config: IngestionConfig,
                quarantine: types.Artifact) -> None:
        files = inputs.resolve_input_files(input_base, config.input_format, config.schema,
                                           config.corrupt_files)
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        examples.split_names = standard_artifact_utils.encode_split_names(config.splits)
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        counters_prefix = os.path.join(quarantine.uri, "_counters", _COUNTERS_PREFIX)
        split_dirs = {split: os.path.join(examples.uri, f"Split-{split}")
                      for split in config.splits}
        num_shards = ingestion.shuffle_shards(
            config, files, beam_runner.is_local_runner(self._beam_pipeline_args))
        shuffle_dir = os.path.join(examples.uri, SHUFFLE_DIR)
        beam_runner.disable_time_based_flush()  # see components/beam_runner.py
        try:
            with self._make_beam_pipeline() as pipeline:
                build_pipeline(pipeline, files, config, split_dirs, quarantine.uri,
                               counters_prefix, shuffle_dir, num_shards)
        finally:
            if num_shards and fileio.exists(shuffle_dir):
                fileio.rmtree(shuffle_dir)
        inputs.check_unchanged(files)
        report = read_report(counters_prefix, files, config.splits)
        report["input_base"] = input_base
        report["split_by"] = config.split_by
        report["shuffle"] = {"mode": "files" if num_shards else "group_by_key",
                             "num_shards": num_shards}
        report["empty_files"] = sorted(p for p, spec in files.items() if spec.empty)
        report["quarantined_files"] = {p: spec.quarantined for p, spec in sorted(files.items())
                                       if spec.quarantined}
        report["config"] = config.to_dict()
        report["status"] = "ok"
        self._report = report
        io_utils.write_string_file(os.path.join(quarantine.uri, REPORT_FILE),
                                   json.dumps(report, indent=2, sort_keys=True))
        examples.set_string_custom_property("ingestion_report", json.dumps(report["totals"]))
        quarantine.set_string_custom_property("ingestion_report", json.dumps(
            {"files": report["files"], "totals": report["totals"],
             "quarantined_files": report["quarantined_files"]}, sort_keys=True))
        quarantine.set_int_custom_property(
            "quarantined", sum(report["totals"]["quarantined"].values()))
        logging.info("ClickExampleGen: %s", report_lib.summary_line(report))
        report_lib.check_report(report, config.max_bad_fraction, config.max_quarantine_fraction)
