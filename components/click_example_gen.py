"""ClickExampleGen: click logs -> train/eval click examples + quarantine.

A Beam component: the executor resolves paths and runs `IngestClicks`
(components/ingestion.py); the ingestion report (per-file counters) is written
as ``ingestion.json`` in the quarantine artifact and as the
``ingestion_report`` custom property of the examples artifact.
"""

from __future__ import annotations

import json
import os
from typing import Any

import apache_beam as beam
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import io_utils

from clicklog import formats
from components import ingestion
from components.artifacts import QuarantinedClicks

REPORT_FILE = "ingestion.json"
_COUNTERS_PREFIX = "counters"


def resolve_input_files(input_base: str, input_format: str) -> dict[str, ingestion.InputFile]:
    """Expands a file, glob or directory and reads CSV headers.

    Raises:
      ValueError: nothing matches, or a file's format or header is unusable.
    """
    import tensorflow as tf

    if tf.io.gfile.isdir(input_base):
        paths = [os.path.join(input_base, name) for name in tf.io.gfile.listdir(input_base)]
        paths = [p for p in paths if not tf.io.gfile.isdir(p)]
    else:
        paths = tf.io.gfile.glob(input_base)
    if not paths:
        raise ValueError(f"click log input {input_base!r}: no file matches; expected a file, "
                         "a glob or a directory of click logs")
    files = {}
    for path in sorted(paths):
        fmt = formats.detect_format(path) if input_format == "auto" else input_format
        columns = None
        if fmt == "csv":
            with tf.io.gfile.GFile(path, "rb") as f:
                header = f.readline().decode("utf-8", "replace").rstrip("\r\n")
            if not header.strip():
                raise ValueError(f"click log {path!r}: empty file; expected a CSV header naming "
                                 f"{list(formats.REQUIRED_COLUMNS)}")
            columns = tuple(formats.parse_header(header, path))
        files[path] = ingestion.InputFile(path, fmt, columns)
    return files


def build_pipeline(pipeline: beam.Pipeline, files: dict[str, ingestion.InputFile],
                   config: ingestion.IngestionConfig, train_dir: str, eval_dir: str,
                   quarantine_dir: str, counters_prefix: str) -> None:
    """Adds reading, ingestion and writing of all outputs to `pipeline`."""
    reads = []
    for number, (path, spec) in enumerate(sorted(files.items())):
        reads.append(
            pipeline
            | f"Read[{number}]" >> beam.io.ReadFromText(
                path, skip_header_lines=1 if spec.fmt == "csv" else 0,
                coder=beam.coders.BytesCoder(), strip_trailing_newlines=True)
            | f"Tag[{number}]" >> beam.Map(lambda line, p=path: (p, line)))
    lines = reads | "AllLines" >> beam.Flatten()
    outputs = lines | "Ingest" >> ingestion.IngestClicks(files, config)
    for split, directory in ((ingestion.TRAIN, train_dir), (ingestion.EVAL, eval_dir)):
        _ = outputs[split] | f"Write{split}" >> beam.io.WriteToTFRecord(
            os.path.join(directory, "data_tfrecord"), file_name_suffix=".gz")
    _ = (outputs["quarantine"]
         | "QuarantineJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
         | "WriteQuarantine" >> beam.io.WriteToText(
             os.path.join(quarantine_dir, "quarantined"), file_name_suffix=".jsonl"))
    _ = (outputs["counters"]
         | "CountersJson" >> beam.Map(lambda kv: json.dumps([list(kv[0]), kv[1]]))
         | "WriteCounters" >> beam.io.WriteToText(counters_prefix, file_name_suffix=".jsonl"))
    _ = (outputs["cutoff"]
         | "CutoffJson" >> beam.Map(lambda c: json.dumps([["", "cutoff", ""], c]))
         | "WriteCutoff" >> beam.io.WriteToText(counters_prefix + "-cutoff",
                                               file_name_suffix=".jsonl"))


def read_report(counters_prefix: str, files) -> dict:
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
    return ingestion.summarize_counters(rows, files, cutoff)


class Executor(base_beam_executor.BaseBeamExecutor):
    """Runs ingestion, writes the report, fails on mostly-garbage input."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        config = ingestion.IngestionConfig.from_dict(json.loads(exec_properties["config"] or "{}"))
        files = resolve_input_files(exec_properties["input_base"], config.input_format)
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        quarantine = artifact_utils.get_single_instance(output_dict["quarantine"])
        splits = [ingestion.TRAIN, ingestion.EVAL]
        examples.split_names = standard_artifact_utils.encode_split_names(splits)
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        counters_prefix = os.path.join(quarantine.uri, "_counters", _COUNTERS_PREFIX)
        with self._make_beam_pipeline() as pipeline:
            build_pipeline(pipeline, files, config,
                           os.path.join(examples.uri, "Split-train"),
                           os.path.join(examples.uri, "Split-eval"),
                           quarantine.uri, counters_prefix)
        report = read_report(counters_prefix, files)
        report["config"] = json.loads(json.dumps(config.__dict__))
        io_utils.write_string_file(os.path.join(quarantine.uri, REPORT_FILE),
                                   json.dumps(report, indent=2, sort_keys=True))
        examples.set_string_custom_property("ingestion_report", json.dumps(report["totals"]))
        quarantine.set_int_custom_property(
            "quarantined", sum(report["totals"]["quarantined"].values()))
        ingestion.check_report(report, config)


class ClickExampleGenSpec(ComponentSpec):
    PARAMETERS = {
        "input_base": ExecutionParameter(type=str),
        "config": ExecutionParameter(type=str),
    }
    INPUTS: dict = {}
    OUTPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "quarantine": ChannelParameter(type=QuarantinedClicks),
    }


class ClickExampleGen(base_beam_component.BaseBeamComponent):
    """Click logs (CSV / JSONL / MovieTweetings .dat) -> click examples."""

    SPEC_CLASS = ClickExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, input_base: str, config: dict | None = None):
        """Args:
          input_base: a click-log file, glob or directory.
          config: `IngestionConfig` fields as a dict.
        """
        ingestion.IngestionConfig.from_dict(config)  # fail at pipeline build time
        super().__init__(spec=ClickExampleGenSpec(
            input_base=input_base, config=json.dumps(config or {}, sort_keys=True),
            examples=types.Channel(type=standard_artifacts.Examples),
            quarantine=types.Channel(type=QuarantinedClicks)))
