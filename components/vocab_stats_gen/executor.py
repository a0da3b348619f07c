"""VocabStatsGen's executor: read the splits (and the item catalog), run
`ComputeVocabStats` (vocab_stats.py), record the counts on the artifact and
fail when the catalog is mostly garbage (item_catalog.py)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import apache_beam as beam
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from clicklog.config import parse
from components import beam_runner
from components.vocab_stats_gen import item_catalog
from components.vocab_stats_gen.config import VocabConfig
from components.vocab_stats_gen.vocab_stats import ComputeVocabStats
from models import vocab as vocab_lib

CATALOG_QUARANTINE_DIR = "catalog_quarantine"


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        config = parse(VocabConfig, json.loads(exec_properties["config"] or "{}"))
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        splits = artifact_utils.decode_split_names(examples.split_names)
        missing = [name for name in config.count_splits if name not in splits]
        if missing:
            raise ValueError(f"VocabStatsGen: examples {examples.uri!r} have splits {splits}; "
                             f"expected the counted split(s) {list(config.count_splits)} "
                             "(vocab.count_splits)")
        output = artifact_utils.get_single_instance(output_dict["vocab_stats"])
        catalog_config = config.item_catalog
        # Before any Beam work: a missing catalog or a bad header fails naming the file.
        catalog_files = (item_catalog.resolve_catalog_files(catalog_config)
                         if catalog_config is not None else None)
        beam_runner.disable_time_based_flush()  # see components/beam_runner.py
        with self._make_beam_pipeline() as pipeline:
            read = {split: pipeline | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
                        _split_pattern(examples, split))
                    for split in splits}
            # The counted splits once more, for the recent-window counts: see
            # the `train_again` argument of ComputeVocabStats (without it the
            # local runner holds every counted click in memory).
            again = [pipeline | f"ReadAgain[{split}]" >> beam.io.ReadFromTFRecord(
                _split_pattern(examples, split)) for split in config.count_splits]
            catalog = None
            if catalog_files is not None:
                catalog = pipeline | "ReadCatalog" >> item_catalog.ReadItemCatalog(
                    catalog_files, catalog_config)
                _ = (catalog["quarantine"]
                     | "CatalogQuarantineJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
                     | "WriteCatalogQuarantine" >> beam.io.WriteToText(
                         os.path.join(output.uri, CATALOG_QUARANTINE_DIR, "quarantined"),
                         file_name_suffix=".jsonl"))
            counted = [read[split] for split in config.count_splits]
            if len(counted) == 1:  # its summary comes from the counted input
                read.pop(config.count_splits[0])
            else:
                counted = [counted | "Counted" >> beam.Flatten()]
                again = [again | "CountedAgain" >> beam.Flatten()]
            _ = counted[0] | "VocabStats" >> ComputeVocabStats(
                output.uri, config, read, catalog, train_again=again[0])
        stats = vocab_lib.read_vocab(output.uri).stats
        if catalog_config is not None:
            report = stats["catalog"]
            output.set_string_custom_property("catalog_report", json.dumps(report,
                                                                           sort_keys=True))
            logging.info("VocabStatsGen: item catalog %s", json.dumps(report, sort_keys=True))
            item_catalog.check_catalog_report(report, catalog_config)
        for key in ("num_items", "num_users", "num_clicks"):
            output.set_int_custom_property(key, int(stats[key]))
        output.set_string_custom_property("split_stats", json.dumps(stats["splits"],
                                                                    sort_keys=True))


def _split_pattern(examples: types.Artifact, split: str) -> str:
    """File pattern of one split of an Examples artifact."""
    return os.path.join(artifact_utils.get_split_uri([examples], split), "*")
