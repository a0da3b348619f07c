"""IndexBuilder: trained towers -> the two serving exports (ScaNN, brute force).

Inputs: the Trainer's `Model` and, optionally, ChannelTrainer's
`retrieval.RecallChannels` fitted beside it: then both exports answer the
merged channels (models/channels/serving.py), with `channels` and
`related_items`; and, optionally, RankerTrainer's `retrieval.Ranker`
trained on the same towers: then both exports add the `reranked`
signature. Outputs: two `Model` artifacts whose
``Format-Serving`` directories the stock Pusher pushes: ``scann_model``
(embedded ScaNN index) and ``brute_force_model`` (pure TF ops, loads in stock
TF Serving). Top K, history exclusion and ScaNN settings come from the
model's own `model.export` section, the one source the evaluator reads too.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec

from components.artifacts import Ranker, RecallChannels
from components.index_builder.executor import Executor


class IndexBuilderSpec(ComponentSpec):
    PARAMETERS: dict = {}
    INPUTS = {"model": ChannelParameter(type=standard_artifacts.Model),
              "channels": ChannelParameter(type=RecallChannels, optional=True),
              "ranker": ChannelParameter(type=Ranker, optional=True)}
    OUTPUTS = {
        "scann_model": ChannelParameter(type=standard_artifacts.Model),
        "brute_force_model": ChannelParameter(type=standard_artifacts.Model),
    }


class IndexBuilder(base_component.BaseComponent):
    """Builds the ScaNN and brute-force serving exports of the trained towers."""

    SPEC_CLASS = IndexBuilderSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, channels: types.BaseChannel | None = None,
                 ranker: types.BaseChannel | None = None):
        super().__init__(spec=IndexBuilderSpec(
            model=model, channels=channels, ranker=ranker,
            scann_model=types.Channel(type=standard_artifacts.Model),
            brute_force_model=types.Channel(type=standard_artifacts.Model)))
