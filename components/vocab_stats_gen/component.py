"""VocabStatsGen: vocabularies and item statistics of the training clicks.

A Beam component. Input: `Examples` (the train split; the other splits for
per-split totals) and the `vocab` settings (config.py), with an optional item
catalog joined by item id. Output: `retrieval.VocabStats` (items.tsv,
users.tsv, item_stats.tsv, stats.json, features/, item_features.tsv; files
described in `models/vocab.py`), with rejected catalog rows under
``catalog_quarantine/``.
"""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from clicklog.config import parse
from components.artifacts import VocabStats
from components.vocab_stats_gen.config import VocabConfig
from components.vocab_stats_gen.executor import Executor


class VocabStatsGenSpec(ComponentSpec):
    PARAMETERS = {"config": ExecutionParameter(type=str)}
    INPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {"vocab_stats": ChannelParameter(type=VocabStats)}


class VocabStatsGen(base_beam_component.BaseBeamComponent):
    """Counts items and users of the train split with Beam."""

    SPEC_CLASS = VocabStatsGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, examples: types.BaseChannel, config: VocabConfig | dict | None = None):
        config = parse(VocabConfig, config)  # checked at pipeline build time
        super().__init__(spec=VocabStatsGenSpec(
            examples=examples, config=json.dumps(config.to_dict(), sort_keys=True),
            vocab_stats=types.Channel(type=VocabStats)))
