"""TopKEvaluator: full-catalog hit rate@K vs baselines, and a standard blessing.

Writes a ModelEvaluation (``metrics.json``) and a ModelBlessing with the
``blessed`` custom property and the ``BLESSED``/``NOT_BLESSED`` file, the way
TFX's Evaluator does, so the stock Pusher gates on it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import io_utils, path_utils

from components import evaluation

METRICS_FILE = "metrics.json"
BLESSED_FILE = "BLESSED"
NOT_BLESSED_FILE = "NOT_BLESSED"


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        config = evaluation.EvaluationConfig.from_dict(json.loads(exec_properties["config"]))
        model = artifact_utils.get_single_instance(input_dict["model"])
        eval_uri = standard_artifact_utils.get_split_uri(input_dict["examples"], "eval")
        result = evaluation.evaluate(path_utils.serving_model_path(model.uri),
                                     os.path.join(eval_uri, "*"), config)
        blessed, reasons = evaluation.decide_blessing(result, config)
        result.update(blessed=blessed, reasons=reasons,
                      config=json.loads(exec_properties["config"]), model_uri=model.uri)
        report = artifact_utils.get_single_instance(output_dict["evaluation"])
        io_utils.write_string_file(os.path.join(report.uri, METRICS_FILE),
                                   json.dumps(result, indent=2, sort_keys=True))
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        io_utils.write_string_file(
            os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "")
        blessing.set_int_custom_property("blessed", 1 if blessed else 0)
        blessing.set_string_custom_property("current_model", model.uri)
        blessing.set_int_custom_property("current_model_id", model.id)
        blessing.set_string_custom_property("reasons", json.dumps(reasons))
        key = f"hit_rate@{config.blessing_k}"
        blessing.set_float_custom_property(key, result["metrics"][evaluation.MODEL][key])


class TopKEvaluatorSpec(ComponentSpec):
    PARAMETERS = {"config": ExecutionParameter(type=str)}
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
        # The last blessed towers (LatestBlessedModelStrategy resolver), if any.
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        # IndexBuilder's exports, for the ANN check.
        "scann_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        "brute_force_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class TopKEvaluator(base_component.BaseComponent):
    """Evaluates the Trainer's towers on the eval split and blesses or not."""

    SPEC_CLASS = TopKEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 config: dict | None = None, baseline_model: types.BaseChannel | None = None,
                 scann_model: types.BaseChannel | None = None,
                 brute_force_model: types.BaseChannel | None = None):
        config_dict = dataclasses_to_dict(evaluation.EvaluationConfig.from_dict(config))
        super().__init__(spec=TopKEvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model,
            scann_model=scann_model, brute_force_model=brute_force_model,
            config=json.dumps(config_dict, sort_keys=True),
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))


def dataclasses_to_dict(value) -> dict:
    import dataclasses

    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(value).items()}
