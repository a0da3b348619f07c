"""RetrievalTrainer: the stock TFX Trainer plus a VocabStats input.

The stock Trainer has no slot for our vocabulary artifact; this component
keeps its spec, adds ``vocab_stats``, and its executor (the stock
`GenericExecutor`) passes the resolved URI to `run_fn` as
``custom_config["vocab_stats_uri"]``. No Channel ever enters custom_config.
"""

from __future__ import annotations

import json
from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import VocabStats
from models.trainer import HPARAMS_KEY, VOCAB_STATS_URI_KEY

DEFAULT_RUN_FN = "models.trainer.run_fn"


class Executor(trainer_executor.GenericExecutor):
    def _GetFnArgs(self, input_dict: dict[str, list[types.Artifact]],
                   output_dict: dict[str, list[types.Artifact]],
                   exec_properties: dict[str, Any]):
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        fn_args.custom_config = dict(fn_args.custom_config or {})
        fn_args.custom_config[VOCAB_STATS_URI_KEY] = artifact_utils.get_single_uri(
            input_dict["vocab_stats"])
        return fn_args


class RetrievalTrainerSpec(ComponentSpec):
    PARAMETERS = {
        "train_args": ExecutionParameter(type=trainer_pb2.TrainArgs),
        "eval_args": ExecutionParameter(type=trainer_pb2.EvalArgs),
        "run_fn": ExecutionParameter(type=str),
        "custom_config": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "vocab_stats": ChannelParameter(type=VocabStats),
        "schema": ChannelParameter(type=standard_artifacts.Schema, optional=True),
        "base_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_run": ChannelParameter(type=standard_artifacts.ModelRun),
    }


class RetrievalTrainer(base_component.BaseComponent):
    """Trains the two-tower model with `run_fn` (default `models.trainer.run_fn`)."""

    SPEC_CLASS = RetrievalTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, vocab_stats: types.BaseChannel,
                 hparams: dict | None = None, schema: types.BaseChannel | None = None,
                 base_model: types.BaseChannel | None = None,
                 run_fn: str = DEFAULT_RUN_FN):
        from models.hparams import HParams

        hparams_dict = HParams.from_dict(hparams).to_dict()  # fail at pipeline build time
        super().__init__(spec=RetrievalTrainerSpec(
            examples=examples, vocab_stats=vocab_stats, schema=schema, base_model=base_model,
            train_args=trainer_pb2.TrainArgs(splits=["train"]),
            eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
            run_fn=run_fn,
            custom_config=json.dumps({HPARAMS_KEY: hparams_dict}, sort_keys=True),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun)))
