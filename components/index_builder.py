"""IndexBuilder: trained towers -> the two serving exports (ScaNN, brute force).

Outputs two Model artifacts whose ``Format-Serving`` directories the stock
Pusher pushes: ``scann_model`` (embedded ScaNN index) and ``brute_force_model``
(pure TF ops, loads in stock TF Serving).
"""

from __future__ import annotations

import json
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import path_utils


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        from models import serving_export

        config = json.loads(exec_properties.get("config") or "{}")
        scann_settings = parse_scann_settings(config)
        towers_dir = path_utils.serving_model_path(
            artifact_utils.get_single_uri(input_dict["model"]))
        for key, kind in (("scann_model", "scann"), ("brute_force_model", "brute_force")):
            artifact = artifact_utils.get_single_instance(output_dict[key])
            metadata = serving_export.export(
                towers_dir, path_utils.serving_model_dir(artifact.uri), kind,
                top_k=config.get("top_k"), exclude_history=config.get("exclude_history"),
                scann_settings=scann_settings)
            artifact.set_string_custom_property("export", kind)
            artifact.set_int_custom_property("num_candidates", metadata["num_candidates"])
            recall_key = f"ann_recall@{metadata['top_k']}"
            artifact.set_float_custom_property(recall_key.replace("@", "_at_"),
                                               metadata[recall_key])


EXPORT_KEYS = ("top_k", "exclude_history")


def parse_scann_settings(config: dict):
    """The `index` config minus the export keys, as ScannSettings (validated)."""
    import dataclasses

    from models import config_dict
    from models.scann_index import ScannSettings

    known = set(EXPORT_KEYS) | {f.name for f in dataclasses.fields(ScannSettings)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"index: unknown key(s) {unknown}; expected some of {sorted(known)}")
    return config_dict.from_dict(
        ScannSettings, {k: v for k, v in config.items() if k not in EXPORT_KEYS}, "index")


class IndexBuilderSpec(ComponentSpec):
    PARAMETERS = {"config": ExecutionParameter(type=str, optional=True)}
    INPUTS = {"model": ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {
        "scann_model": ChannelParameter(type=standard_artifacts.Model),
        "brute_force_model": ChannelParameter(type=standard_artifacts.Model),
    }


class IndexBuilder(base_component.BaseComponent):
    SPEC_CLASS = IndexBuilderSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, config: dict | None = None):
        parse_scann_settings(config or {})  # fail at pipeline build time
        super().__init__(spec=IndexBuilderSpec(
            model=model, config=json.dumps(config or {}, sort_keys=True),
            scann_model=types.Channel(type=standard_artifacts.Model),
            brute_force_model=types.Channel(type=standard_artifacts.Model)))
