"""ValidationGate: blocking anomalies stop the run before training.

Inputs: `ExampleStatistics` (StatisticsGen), the curated `Schema`
(ImportSchemaGen), `ExampleAnomalies` (ExampleValidator's check of the
statistics against that schema), optionally the last blessed `Model`
(LatestBlessedModelStrategy resolver: its Trainer's `DataValidation` holds
the statistics drift is measured against), and the `validation` settings
(config.py). Output: `retrieval.DataValidation`, which the Trainers take as
an input, so a failed gate leaves nothing to train or push. The gate fails
with `anomalies.DataValidationError`, one line per blocking anomaly naming
the feature, the anomaly kind and the config key that relaxes it.
"""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from clicklog.config import parse
from components.artifacts import DataValidation
from components.validation_gate.config import ValidationConfig
from components.validation_gate.executor import Executor


class ValidationGateSpec(ComponentSpec):
    PARAMETERS = {
        "config": ExecutionParameter(type=str),
        # Named in the error message (the file ImportSchemaGen imported).
        "schema_path": ExecutionParameter(type=str),
    }
    INPUTS = {
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {"validation": ChannelParameter(type=DataValidation)}


class ValidationGate(base_component.BaseComponent):
    """Fails the run on blocking anomalies; otherwise records the verdict."""

    SPEC_CLASS = ValidationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, statistics: types.BaseChannel, schema: types.BaseChannel,
                 anomalies: types.BaseChannel, schema_path: str,
                 config: ValidationConfig | dict | None = None,
                 baseline_model: types.BaseChannel | None = None):
        config = parse(ValidationConfig, config)  # checked at pipeline build time
        super().__init__(spec=ValidationGateSpec(
            statistics=statistics, schema=schema, anomalies=anomalies,
            baseline_model=baseline_model, schema_path=schema_path,
            config=json.dumps(config.to_dict(), sort_keys=True),
            validation=types.Channel(type=DataValidation)))
