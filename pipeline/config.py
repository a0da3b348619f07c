"""Pipeline configuration: one YAML file plus ``--set key=value`` overrides.

The whole configuration is one tree of checked sections (`clicklog.config`):

  pipeline    -> PipelineSettings (name, model_name, beam_args)
  ingestion   -> components/click_example_gen/config.py: IngestionConfig
  vocab       -> components/vocab_stats_gen/config.py: VocabConfig
  model       -> models/config.py: ModelConfig (towers, history, negatives,
                 loss, prior, ensemble, teacher, training, export)
  recall      -> models/channels/config.py: RecallConfig (channels beside
                 the two-tower model, their merge)
  ranking     -> models/ranking/config.py: RankingConfig (the DeepFM ranker)
  evaluation  -> components/topk_evaluator/config.py: EvaluationConfig
  validation  -> components/validation_gate/config.py: ValidationConfig

`load_config` reads the YAML, applies the overrides and checks every value
before any component is built, so a typo or a bad value fails at once with
one line naming the key, the value and what is allowed. A relative path in
the file is read from the file's directory, one given with ``--set`` from
the working directory. Nested keys take a
longer path: ``--set model.towers.embedding_dim=32``,
``--set vocab.item_catalog.path=movies.dat`` (``--set vocab.item_catalog=null``
turns the catalog off).
"""

from __future__ import annotations

import copy
import dataclasses
import os

import yaml

from clicklog.config import (
    Config,
    ConfigError,
    parse,
    resolve_paths,
    resolve_raw_paths,
    section,
    setting,
)
from components.click_example_gen.config import IngestionConfig
from components.topk_evaluator.config import EvaluationConfig
from components.validation_gate.config import ValidationConfig
from components.vocab_stats_gen.config import VocabConfig
from models.channels.config import RecallConfig
from models.config import ModelConfig
from models.ranking.config import RankingConfig


@dataclasses.dataclass(frozen=True)
class PipelineSettings(Config):
    """Names and the Beam arguments of every Beam component."""

    KEY = "pipeline"
    name: str = "retrieval"  # pipeline name in MLMD
    model_name: str = "retrieval"  # push directory: serving/<model_name>
    # DirectRunner in multi-processing mode; Dataflow/Flink/Spark args scale out.
    beam_args: tuple[str, ...] = setting(
        ("--direct_running_mode=multi_processing", "--direct_num_workers=0"))
    # After the evaluated model is blessed, train once more with its settings
    # on every click (train and eval splits, vocabularies and statistics
    # counted over both) and push that model instead.
    final_fit: bool = True
    # Reuse a component's outputs when its inputs and settings are unchanged
    # (TFX caching): a rerun on identical inputs retrains nothing and pushes
    # no second version. Off by default: the cache key holds the input
    # files' sizes and modification times and every setting, but not the
    # code of this repository, so after changing the code a cached run
    # would serve results of the old code.
    enable_cache: bool = False

    def check(self) -> None:
        for name in ("name", "model_name"):
            if not getattr(self, name) or "/" in getattr(self, name):
                raise self.error(name, "a non-empty name without '/'")


@dataclasses.dataclass(frozen=True)
class PipelineConfig(Config):
    """Every section of a pipeline run (see the module docstring)."""

    pipeline: PipelineSettings = section(PipelineSettings)
    ingestion: IngestionConfig = section(IngestionConfig)
    vocab: VocabConfig = section(VocabConfig)
    model: ModelConfig = section(ModelConfig)
    recall: RecallConfig = section(RecallConfig)
    ranking: RankingConfig = section(RankingConfig)
    evaluation: EvaluationConfig = section(EvaluationConfig)
    validation: ValidationConfig = section(ValidationConfig)

    def check(self) -> None:
        # The Trainer reads query features from the click examples
        # ClickExampleGen writes: they must be declared there, with that type.
        schema = self.ingestion.schema
        declared = dict(schema.user_features + schema.context_features)
        for name, kind in self.model.towers.query_features:
            if name not in declared:
                raise ConfigError(f"model.towers.query_features.{name}", kind,
                                  f"a user or context feature declared in ingestion.schema "
                                  f"(declared: {sorted(declared)}); item features belong to "
                                  "the candidate tower")
            # A `text` query feature is a declared `string` read as words.
            if declared[name] != kind and not (kind == "text" and declared[name] == "string"):
                raise ConfigError(f"model.towers.query_features.{name}", kind,
                                  f"{declared[name]!r}, the type ingestion.schema declares"
                                  + (" (or 'text' for a string read as words)"
                                     if declared[name] == "string" else ""))
        # Impressed negatives come from the impression rows ClickExampleGen reads.
        if self.model.negatives.impressions and not self.ingestion.with_impressions:
            raise ConfigError("model.negatives.impressions", self.model.negatives.impressions,
                              "0 unless ingestion.impression_event_types names the event "
                              "types of impression rows or ingestion.schema.impressed_items "
                              "a column of shown items (the clicks have no impressed "
                              "negatives otherwise)")


SECTIONS = tuple(f.name for f in dataclasses.fields(PipelineConfig))


def _parse_value(text: str):
    """`--set` values are YAML scalars/lists: 10, 0.5, true, [10, 50], text."""
    return yaml.safe_load(text)


def apply_override(config: dict, assignment: str) -> None:
    """Applies one ``section.key[.subkey...]=value`` override in place.

    Raises:
      ValueError: naming the assignment and the expected form.
    """
    if "=" not in assignment:
        raise ValueError(f"--set {assignment!r}: expected section.key=value, "
                         "e.g. model.training.epochs=3")
    path, value = assignment.split("=", 1)
    parts = path.strip().split(".")
    if len(parts) < 2 or parts[0] not in SECTIONS or not all(parts[1:]):
        raise ValueError(f"--set {assignment!r}: expected section.key=value with section one "
                         f"of {list(SECTIONS)}")
    target = config.setdefault(parts[0], {})
    for depth, key in enumerate(parts[1:-1], 2):
        if target.get(key) is None:
            target[key] = {}
        if not isinstance(target[key], dict):
            raise ValueError(f"--set {assignment!r}: {'.'.join(parts[:depth])} is "
                             f"{target[key]!r}, not a mapping; expected a mapping to set "
                             f"{parts[depth]!r} in")
        target = target[key]
    target[parts[-1]] = _parse_value(value)


def load_config(path: str | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """Reads the YAML file (if any), applies the overrides, checks everything.

    Raises:
      ValueError (`ConfigError` for a bad value): one line naming the problem.
    """
    values: dict = {}
    if path:
        if not os.path.exists(path):
            raise ValueError(f"--config {path!r}: no such file")
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"--config {path!r}: expected a mapping of sections, got "
                             f"{type(loaded).__name__}")
        unknown = sorted(set(loaded) - set(SECTIONS))
        if unknown:
            raise ValueError(f"--config {path!r}: unknown section(s) {unknown}; expected some "
                             f"of {list(SECTIONS)}")
        values = resolve_raw_paths(PipelineConfig, copy.deepcopy(loaded),
                                   os.path.dirname(os.path.abspath(path)))
    for assignment in overrides or []:
        apply_override(values, assignment)
    # Paths given with --set (and any left relative) are read from the working directory.
    return resolve_paths(parse(PipelineConfig, values), os.getcwd())
