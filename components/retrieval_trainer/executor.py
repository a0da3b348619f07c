"""RetrievalTrainer's executor: the stock TFX `GenericExecutor`, which also
hands `run_fn` the VocabStats input's URI as ``custom_config["vocab_stats_uri"]``
and, for the final fit, the chosen (evaluated) model's towers directory as
``custom_config["chosen_model_uri"]``. No Channel ever enters custom_config.
The ``epochs`` exec property, when set, replaces the config's
``training.epochs`` (a per-run parameter of the Kubeflow spec).
The output Model records the URI of the ValidationGate verdict it was
trained after (custom property ``data_validation``): a later run's gate
measures drift against the statistics kept there."""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.artifacts import DATA_VALIDATION_PROPERTY
from models.trainer import CHOSEN_MODEL_URI_KEY, MODEL_CONFIG_KEY, VOCAB_STATS_URI_KEY


class Executor(trainer_executor.GenericExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        if input_dict.get("data_validation"):
            model = artifact_utils.get_single_instance(output_dict["model"])
            verdict = artifact_utils.get_single_uri(input_dict["data_validation"])
            model.set_string_custom_property(DATA_VALIDATION_PROPERTY, verdict)

    def _GetFnArgs(self, input_dict: dict[str, list[types.Artifact]],
                   output_dict: dict[str, list[types.Artifact]],
                   exec_properties: dict[str, Any]):
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        fn_args.custom_config = dict(fn_args.custom_config or {})
        if exec_properties.get("epochs") is not None:  # a KFP number may arrive as a float
            model = dict(fn_args.custom_config[MODEL_CONFIG_KEY])
            model["training"] = dict(model["training"], epochs=int(exec_properties["epochs"]))
            fn_args.custom_config[MODEL_CONFIG_KEY] = model
        fn_args.custom_config[VOCAB_STATS_URI_KEY] = artifact_utils.get_single_uri(
            input_dict["vocab_stats"])
        if input_dict.get("chosen_model"):
            fn_args.custom_config[CHOSEN_MODEL_URI_KEY] = path_utils.serving_model_path(
                artifact_utils.get_single_uri(input_dict["chosen_model"]))
        return fn_args
