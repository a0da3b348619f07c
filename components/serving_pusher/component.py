"""ServingPusher: TFX's Pusher, pushing to ``<serving_base>/<model_dir>``.

The stock Pusher takes its destination as a `PushDestination` proto, which a
Kubeflow spec can only hold as a constant (or a whole-proto JSON parameter).
Here the serving base is a string exec property, so `serving_base` can be one
runtime parameter of the spec shared by both Pushers, each adding its own
model directory. Inputs, output and the blessing check are the stock
Pusher's; versions are unix-time directories, as the stock filesystem push.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.types.system_executions import Deploy

from components.serving_pusher.executor import Executor


class ServingPusherSpec(ComponentSpec):
    PARAMETERS = {
        "serving_base": ExecutionParameter(type=str),
        "model_dir": ExecutionParameter(type=str),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing,
                                           optional=True),
    }
    OUTPUTS = {"pushed_model": ChannelParameter(type=standard_artifacts.PushedModel)}
    TYPE_ANNOTATION = Deploy


class ServingPusher(base_component.BaseComponent):
    """Pushes a blessed model's ``Format-Serving`` export as a new version."""

    SPEC_CLASS = ServingPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, serving_base, model_dir: str,
                 model_blessing: types.BaseChannel | None = None):
        """Args:
          model: the export to push.
          serving_base: parent of the pushed model directories (a str, or a
            RuntimeParameter of the Kubeflow spec).
          model_dir: the model's directory under `serving_base`.
          model_blessing: pushed only when this blessing says blessed.
        """
        super().__init__(spec=ServingPusherSpec(
            model=model, model_blessing=model_blessing, serving_base=serving_base,
            model_dir=model_dir, pushed_model=types.Channel(type=standard_artifacts.PushedModel)))
