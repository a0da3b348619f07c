"""ValidationGate's executor: read ExampleValidator's anomalies, compare the
statistics with the last blessed run's (drift) and train with eval (skew),
check timestamps against the run's start, and fail on any blocking anomaly
(anomalies.py); otherwise write the `DataValidation` artifact."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from tfx import types
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from clicklog.config import parse
from components.artifacts import DATA_VALIDATION_PROPERTY, optional_single
from components.validation_gate import anomalies as anomalies_lib
from components.validation_gate.config import ValidationConfig

REPORT_FILE = "validation.json"
STATISTICS_DIR = "statistics"
ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's file in each Split-<name>
TRAIN, EVAL = "train", "eval"


def _optional_single(input_dict: dict, key: str) -> types.Artifact | None:
    return optional_single(input_dict, key, "ValidationGate")


def _statistics(uri: str, splits: list[str]) -> dict:
    artifact = standard_artifacts.ExampleStatistics()
    artifact.uri = uri
    artifact.split_names = artifact_utils.encode_split_names(splits)
    return {split: stats_artifact_utils.load_statistics(artifact, split).proto()
            for split in splits}


def _read_anomalies(anomalies: types.Artifact) -> dict:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    out = {}
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        proto = anomalies_pb2.Anomalies()
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), ANOMALIES_FILE)
        proto.ParseFromString(io_utils.read_bytes_file(path))
        out[split] = proto
    return out


def previous_statistics(baseline: types.Artifact | None) -> tuple[str | None, dict]:
    """(DataValidation URI, {split: statistics}) of the run that trained
    `baseline`, or (None, {}) without one (a first run, or a model trained
    before its Trainer recorded it)."""
    if baseline is None or not baseline.has_custom_property(DATA_VALIDATION_PROPERTY):
        return None, {}
    uri = baseline.get_string_custom_property(DATA_VALIDATION_PROPERTY)
    with fileio.open(os.path.join(uri, REPORT_FILE)) as f:
        splits = json.load(f)["splits"]
    return uri, _statistics(os.path.join(uri, STATISTICS_DIR), splits)


def _copy_statistics(statistics: types.Artifact, splits: list[str], target: str) -> None:
    for split in splits:
        source = artifact_utils.get_split_uri([statistics], split)
        destination = os.path.join(target, f"Split-{split}")
        fileio.makedirs(destination)
        for name in fileio.listdir(source):
            fileio.copy(os.path.join(source, name), os.path.join(destination, name), True)


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        import tensorflow_data_validation as tfdv

        run_time = time.time()
        config = parse(ValidationConfig, json.loads(exec_properties["config"]))
        schema_path = exec_properties["schema_path"]
        statistics = artifact_utils.get_single_instance(input_dict["statistics"])
        splits = artifact_utils.decode_split_names(statistics.split_names)
        current = _statistics(statistics.uri, splits)
        schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
            artifact_utils.get_single_uri(input_dict["schema"])))
        previous_uri, previous = previous_statistics(
            _optional_single(input_dict, "baseline_model"))
        if config.drift and not previous:
            logging.info("ValidationGate: no statistics of a last blessed run; drift not checked")

        found: list[anomalies_lib.Anomaly] = []
        for split, proto in _read_anomalies(
                artifact_utils.get_single_instance(input_dict["anomalies"])).items():
            found += anomalies_lib.from_proto(proto, split)
        for split in splits:
            found += anomalies_lib.future_clicks(current[split], split, run_time, config)
            if split in previous:
                found += anomalies_lib.comparisons(tfdv.validate_statistics, schema,
                                                   anomalies_lib.DRIFT, config.drift,
                                                   current[split], previous[split], split)
        if TRAIN in current and EVAL in current:
            found += anomalies_lib.comparisons(tfdv.validate_statistics, schema,
                                               anomalies_lib.SKEW, config.skew, current[TRAIN],
                                               current[EVAL], f"{TRAIN} vs {EVAL}")
        verdict = anomalies_lib.partition(found, config)
        for anomaly in verdict.allowed:
            logging.warning("ValidationGate: allowed by validation.allow_anomalies: %s",
                            anomalies_lib.line(anomaly, config))
        for anomaly in verdict.warned:
            logging.warning("ValidationGate: warn-only kind (validation.warn_only): %s",
                            anomalies_lib.line(anomaly, config))
        if verdict.blocking:
            raise anomalies_lib.DataValidationError(verdict.blocking, config, schema_path)

        output = artifact_utils.get_single_instance(output_dict["validation"])
        _copy_statistics(statistics, splits, os.path.join(output.uri, STATISTICS_DIR))
        report = dict(verdict.to_dict(), splits=splits, schema_path=schema_path,
                      run_time=run_time, previous_statistics=previous_uri,
                      config=config.to_dict())
        io_utils.write_string_file(os.path.join(output.uri, REPORT_FILE),
                                   json.dumps(report, indent=2, sort_keys=True))
        output.set_string_custom_property(
            "allowed_anomalies", json.dumps([a.allowance for a in verdict.allowed]))
        output.set_string_custom_property(
            "warned_anomalies", json.dumps([a.allowance for a in verdict.warned]))
        output.set_string_custom_property("schema_path", schema_path)
        if previous_uri:
            output.set_string_custom_property("previous_statistics", previous_uri)
