"""ServingPusher's executor: the stock Pusher's, with the filesystem
destination ``<serving_base>/<model_dir>`` built from the exec properties."""

from __future__ import annotations

import os
from typing import Any

from google.protobuf import json_format
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import standard_component_specs


def push_destination(serving_base: str, model_dir: str) -> pusher_pb2.PushDestination:
    return pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=os.path.join(serving_base, model_dir)))


class Executor(pusher_executor.Executor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        destination = push_destination(exec_properties["serving_base"],
                                       exec_properties["model_dir"])
        exec_properties = dict(exec_properties)
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY] = \
            json_format.MessageToJson(destination)
        super().Do(input_dict, output_dict, exec_properties)
