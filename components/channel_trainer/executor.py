"""ChannelTrainer's executor: fit the channels, choose (or reuse) the merge, save."""

from __future__ import annotations

import json
import os
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from clicklog.config import parse
from components.artifacts import optional_single

# Eval clicks read at once while the merge is chosen.
TUNE_BATCH = 256


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        from components.topk_evaluator.evaluation import eval_batches, history_read_length
        from models.channels import store
        from models.channels.clicks import Catalogue, read_clicks
        from models.channels.config import RecallConfig
        from models.channels.recall import Recall
        from models.channels.two_tower import TwoTowerChannel
        from models.towers_export import Towers
        from models.vocab import read_item_features

        config = parse(RecallConfig, json.loads(exec_properties["config"]))
        chosen = optional_single(input_dict, "chosen_channels", "ChannelTrainer")
        meta = store.read_meta(chosen.uri) if chosen is not None else None
        lam = ((meta or {}).get("fit", {}).get("item_cf") or {}).get("lambda")
        if lam is not None:  # the final fit keeps the evaluated run's EASE lambda
            config = config.replace(item_cf=config.item_cf.replace(ease_lambdas=(lam,)))
        splits = json.loads(exec_properties["train_splits"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        towers_dir = path_utils.serving_model_path(
            artifact_utils.get_single_uri(input_dict["model"]))
        towers = Towers(towers_dir)
        catalogue = Catalogue(towers.vocab.item_ids)
        clicks = read_clicks([os.path.join(examples.uri, f"Split-{s}", "*") for s in splits],
                             catalogue)
        two_tower = (TwoTowerChannel(towers, catalogue.item_ids)
                     if "two_tower" in config.channels else None)
        vocab_stats = optional_single(input_dict, "vocab_stats", "ChannelTrainer")
        item_features = read_item_features(vocab_stats.uri) if vocab_stats is not None else None
        listed = len(next(iter(item_features.values()))) if item_features else len(catalogue)
        if listed != len(catalogue):
            raise ValueError(f"ChannelTrainer: the VocabStats in {vocab_stats.uri} list {listed} "
                             f"candidates, the towers {len(catalogue)}: pass the VocabStats the "
                             "towers were trained on")
        recall = Recall.fit(clicks, catalogue, config, two_tower, item_features)
        if meta is not None:
            store.restore_merge(recall, meta)
        else:
            read_length = history_read_length(towers, config.merge.short_history_max)
            recall.tune(eval_batches(os.path.join(examples.uri, "Split-eval", "*"), TUNE_BATCH,
                                     read_length, list(towers.query_specs[2:]), "fresh"),
                        int(exec_properties["k"]))
        output = artifact_utils.get_single_instance(output_dict["channels"])
        store.save(recall, output.uri)
        output.set_string_custom_property("channels", ",".join(recall.channels))
        output.set_int_custom_property("train_clicks", int(len(clicks.items)))
