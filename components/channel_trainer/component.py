"""ChannelTrainer: the recall channels beside the trained towers, and their merge.

Inputs: `Examples` (the clicks of `train_splits` fit the channels; without
`chosen_channels` the eval split's clicks choose the merge), the Trainer's
`Model` (the two-tower channel, and the catalogue every channel ranks), the
`VocabStats` the towers were trained on (optional: its catalog features feed
the content channel and item2vec's same-category negatives) and, for the
final fit, `chosen_channels`: the evaluated run's channels, whose
merge settings are reused (nothing is held out to choose them again).
The merge maximises the hit rate at `k`, the evaluator's `blessing_k`.
Output: `retrieval.RecallChannels` (models/channels/store.py). Settings: the
`recall` section (docs/channels.md).
"""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from clicklog.config import parse
from components.artifacts import RecallChannels, VocabStats
from components.channel_trainer.executor import Executor
from models.channels.config import RecallConfig


class ChannelTrainerSpec(ComponentSpec):
    PARAMETERS = {
        "config": ExecutionParameter(type=str),
        "train_splits": ExecutionParameter(type=str),
        # The merge maximises hit rate@k (the evaluator's blessing_k).
        "k": ExecutionParameter(type=int),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "vocab_stats": ChannelParameter(type=VocabStats, optional=True),
        "chosen_channels": ChannelParameter(type=RecallChannels, optional=True),
    }
    OUTPUTS = {"channels": ChannelParameter(type=RecallChannels)}


class ChannelTrainer(base_component.BaseComponent):
    """Fits the recall channels on the clicks and merges them with the towers."""

    SPEC_CLASS = ChannelTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 config: RecallConfig | dict | None = None,
                 chosen_channels: types.BaseChannel | None = None,
                 vocab_stats: types.BaseChannel | None = None,
                 train_splits: tuple[str, ...] = ("train",), k: int = 100):
        config = parse(RecallConfig, config)  # checked at pipeline build time
        super().__init__(spec=ChannelTrainerSpec(
            examples=examples, model=model, chosen_channels=chosen_channels,
            vocab_stats=vocab_stats,
            config=json.dumps(config.to_dict(), sort_keys=True),
            train_splits=json.dumps(list(train_splits)), k=k,
            channels=types.Channel(type=RecallChannels)))
