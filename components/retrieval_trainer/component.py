"""RetrievalTrainer: the stock TFX Trainer spec plus a VocabStats input.

The stock Trainer has no slot for the vocabulary artifact; this component
keeps its spec, adds ``vocab_stats``, and trains with `run_fn` (default
`models.trainer.run_fn`) given the `ModelConfig` as ``custom_config["model"]``.
Inputs: `Examples` (train and eval splits), `retrieval.VocabStats`, optional
`Schema`, `base_model` (the last blessed model, for warm start) and
`data_validation` (the ValidationGate's verdict: the Trainer runs only after
the gate passed; the output Model records its URI, the drift reference of
later runs). Outputs:
`Model` (the towers SavedModel, models/towers_export.py) and `ModelRun`
(TensorBoard logs).

The final fit on every click is the same component with `chosen_model` (the
evaluated model: its chosen prior weight and trained epochs are repeated),
`train_splits=["train", "eval"]`: nothing is held out.
"""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from clicklog.config import parse
from components.artifacts import DataValidation, VocabStats
from components.retrieval_trainer.executor import Executor
from models.config import ModelConfig
from models.trainer import MODEL_CONFIG_KEY

DEFAULT_RUN_FN = "models.trainer.run_fn"


class RetrievalTrainerSpec(ComponentSpec):
    PARAMETERS = {
        "train_args": ExecutionParameter(type=trainer_pb2.TrainArgs),
        "eval_args": ExecutionParameter(type=trainer_pb2.EvalArgs),
        "run_fn": ExecutionParameter(type=str),
        "custom_config": ExecutionParameter(type=str, optional=True),
        # Overrides config.training.epochs when set (a Kubeflow runtime parameter).
        "epochs": ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "vocab_stats": ChannelParameter(type=VocabStats),
        "schema": ChannelParameter(type=standard_artifacts.Schema, optional=True),
        "base_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        # The final fit: the evaluated model whose settings it repeats.
        "chosen_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        # The ValidationGate's output: training waits for the gate to pass.
        "data_validation": ChannelParameter(type=DataValidation, optional=True),
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
                 config: ModelConfig | dict | None = None,
                 schema: types.BaseChannel | None = None,
                 base_model: types.BaseChannel | None = None,
                 chosen_model: types.BaseChannel | None = None,
                 data_validation: types.BaseChannel | None = None,
                 train_splits: tuple[str, ...] = ("train",),
                 run_fn: str = DEFAULT_RUN_FN, epochs=None):
        """Args:
          examples, vocab_stats: the click examples and their VocabStats.
          config: the `model` section.
          schema: the examples' schema.
          base_model: an earlier model to warm start from.
          chosen_model: the final fit's evaluated model (then nothing is held
            out: the eval split is not used).
          data_validation: the ValidationGate's verdict on the examples.
          train_splits: the example splits trained on.
          run_fn: the training function's module path.
          epochs: when set (an int or a Kubeflow RuntimeParameter), replaces
            `config.training.epochs` at run time.
        """
        config = parse(ModelConfig, config)  # checked at pipeline build time
        super().__init__(spec=RetrievalTrainerSpec(
            examples=examples, vocab_stats=vocab_stats, schema=schema, base_model=base_model,
            chosen_model=chosen_model, data_validation=data_validation,
            train_args=trainer_pb2.TrainArgs(splits=list(train_splits)),
            # With a chosen model run_fn holds nothing out and ignores it.
            eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
            run_fn=run_fn, epochs=epochs,
            custom_config=json.dumps({MODEL_CONFIG_KEY: config.to_dict()}, sort_keys=True),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun)))
