"""IndexBuilder's executor: the towers' two serving exports
(`models.serving_export`), with the towers' own `model.export` settings, of
the merged recall channels when they are an input."""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.artifacts import optional_single

EXPORTS = (("scann_model", "scann"), ("brute_force_model", "brute_force"))


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        from models import serving_export

        towers_dir = path_utils.serving_model_path(
            artifact_utils.get_single_uri(input_dict["model"]))
        channels = optional_single(input_dict, "channels", "IndexBuilder")
        ranker = optional_single(input_dict, "ranker", "IndexBuilder")
        for key, kind in EXPORTS:
            artifact = artifact_utils.get_single_instance(output_dict[key])
            metadata = serving_export.export(towers_dir, path_utils.serving_model_dir(artifact.uri),
                                             kind, channels.uri if channels else None,
                                             ranker.uri if ranker else None)
            artifact.set_string_custom_property("export", kind)
            artifact.set_int_custom_property("num_candidates", metadata["num_candidates"])
            if metadata["channels"]:
                artifact.set_string_custom_property("channels", ",".join(metadata["channels"]))
            if metadata["ranker"]:
                artifact.set_int_custom_property("rerank_depth",
                                                 metadata["ranker"]["rerank_depth"])
            recall_key = f"ann_recall@{metadata['top_k']}"
            artifact.set_float_custom_property(recall_key.replace("@", "_at_"),
                                               metadata[recall_key])
