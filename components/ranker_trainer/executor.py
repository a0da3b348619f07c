"""RankerTrainer's executor: build the training pairs, train, save."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from clicklog.config import parse
from components.artifacts import optional_single

# Clicks read at once while pairs are built.
PAIR_BATCH = 512


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        from models.channels import store
        from models.channels.clicks import Catalogue, read_clicks
        from models.ranking.config import RankingConfig
        from models.ranking.ranker import ItemClock, Ranker
        from models.ranking.training import PairBuilder, fit, request_batches
        from models.towers_export import Towers
        from models.vocab import read_item_features

        config = parse(RankingConfig, json.loads(exec_properties["config"]))
        splits = json.loads(exec_properties["train_splits"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        towers_dir = path_utils.serving_model_path(
            artifact_utils.get_single_uri(input_dict["model"]))
        towers = Towers(towers_dir)
        vocab_stats = artifact_utils.get_single_instance(input_dict["vocab_stats"])
        channels = optional_single(input_dict, "channels", "RankerTrainer")
        recall = (store.load(channels.uri, towers_dir) if channels is not None
                  else store.towers_only(towers))
        vocab = towers.vocab
        started = time.time()
        files = [os.path.join(examples.uri, f"Split-{s}", "*") for s in splits]
        clock = ItemClock.from_clicks(read_clicks(files, Catalogue(vocab.item_ids)),
                                      config.trending_days)
        ranker = Ranker.build(config, vocab.item_ids, clock, vocab.user_ids,
                              read_item_features(vocab_stats.uri))
        builder = PairBuilder(ranker, recall, vocab.item_counts, config, config.seed, clock)
        pairs = builder.pairs(request_batches(files, PAIR_BATCH, towers, config))
        report = {"train": fit(ranker, pairs, config),
                  "skipped_clicks": builder.skipped,
                  "negatives_from": "merged recall channels " + ",".join(recall.channels)}
        report["seconds"] = round(time.time() - started, 1)
        ranker.report = report
        output = artifact_utils.get_single_instance(output_dict["ranker"])
        ranker.save(output.uri)
        output.set_int_custom_property("train_rows", report["train"]["rows"])
