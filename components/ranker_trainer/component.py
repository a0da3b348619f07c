"""RankerTrainer: the DeepFM ranking model, trained on the clicks against
sampled and retrieved negatives.

Inputs: `Examples` (the clicks of `train_splits` train the ranker, and
give each training pair the items' popularity at its click; the
TopKEvaluator measures it on the eval split), the Trainer's `Model` (the
catalogue, and the two-tower channel when there are no recall channels),
the `VocabStats` the towers were trained on (the catalog's item tokens)
and, optionally, ChannelTrainer's `RecallChannels`: retrieved negatives
come from their merged list (the two-tower list without them).
Output: `retrieval.Ranker` (models/ranking/ranker.py). Settings: the
`ranking` section (docs/ranking.md).
"""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from clicklog.config import parse
from components.artifacts import Ranker, RecallChannels, VocabStats
from components.ranker_trainer.executor import Executor
from models.ranking.config import RankingConfig


class RankerTrainerSpec(ComponentSpec):
    PARAMETERS = {
        "config": ExecutionParameter(type=str),
        "train_splits": ExecutionParameter(type=str),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "vocab_stats": ChannelParameter(type=VocabStats),
        "channels": ChannelParameter(type=RecallChannels, optional=True),
    }
    OUTPUTS = {"ranker": ChannelParameter(type=Ranker)}


class RankerTrainer(base_component.BaseComponent):
    """Trains the DeepFM ranker on the clicks."""

    SPEC_CLASS = RankerTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 vocab_stats: types.BaseChannel, config: RankingConfig | dict | None = None,
                 channels: types.BaseChannel | None = None,
                 train_splits: tuple[str, ...] = ("train",)):
        config = parse(RankingConfig, config)  # checked at pipeline build time
        super().__init__(spec=RankerTrainerSpec(
            examples=examples, model=model, vocab_stats=vocab_stats, channels=channels,
            config=json.dumps(config.to_dict(), sort_keys=True),
            train_splits=json.dumps(list(train_splits)), ranker=types.Channel(type=Ranker)))
