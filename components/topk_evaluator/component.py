"""TopKEvaluator: full-catalogue top-K metrics against baselines, the ANN
check and the blessing.

Inputs: `Examples` (the eval split), the Trainer's `Model`, optionally the
last blessed `Model` (a LatestBlessedModelStrategy resolver) and
IndexBuilder's two exports (the ANN check), ChannelTrainer's recall channels
(each ranked alone, merged, and merged without each one), and the `evaluation` settings
(config.py). Outputs: `ModelEvaluation` (``metrics.json``,
``evaluation.html``) and a `ModelBlessing` with the ``blessed`` custom
property and the ``BLESSED``/``NOT_BLESSED`` file, the way TFX's Evaluator
writes it, so the stock Pusher gates on it.
"""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from clicklog.config import parse
from components.artifacts import Ranker, RecallChannels
from components.topk_evaluator.config import EvaluationConfig
from components.topk_evaluator.executor import Executor


class TopKEvaluatorSpec(ComponentSpec):
    PARAMETERS = {
        "config": ExecutionParameter(type=str),
        # Override the config's blessing thresholds when set (Kubeflow runtime parameters).
        "min_lift": ExecutionParameter(type=float, optional=True),
        "min_recall": ExecutionParameter(type=float, optional=True),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
        # The last blessed towers (LatestBlessedModelStrategy resolver), if any.
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        # IndexBuilder's exports, for the ANN check.
        "scann_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        "brute_force_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        # ChannelTrainer's recall channels beside the towers, if any.
        "channels": ChannelParameter(type=RecallChannels, optional=True),
        # RankerTrainer's ranker, if any: its pair AUC / log loss and the
        # model's list re-ranked by it.
        "ranker": ChannelParameter(type=Ranker, optional=True),
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
                 config: EvaluationConfig | dict | None = None,
                 baseline_model: types.BaseChannel | None = None,
                 scann_model: types.BaseChannel | None = None,
                 brute_force_model: types.BaseChannel | None = None,
                 channels: types.BaseChannel | None = None,
                 ranker: types.BaseChannel | None = None,
                 min_lift=None, min_recall=None):
        """`min_lift`, `min_recall`: when set (a float or a Kubeflow
        RuntimeParameter), replace the config's thresholds at run time."""
        config = parse(EvaluationConfig, config)  # checked at pipeline build time
        super().__init__(spec=TopKEvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model,
            scann_model=scann_model, brute_force_model=brute_force_model, channels=channels,
            ranker=ranker,
            config=json.dumps(config.to_dict(), sort_keys=True),
            min_lift=min_lift, min_recall=min_recall,
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
