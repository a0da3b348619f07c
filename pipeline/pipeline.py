"""`create_pipeline`: the TFX graph of the retrieval pipeline.

ClickExampleGen -> StatisticsGen -> ExampleValidator (against ImportSchemaGen's
                   |               curated schema) -> ValidationGate
                   +-> SchemaGen (inferred, for inspection only)       |
                -> VocabStatsGen -> RetrievalTrainer <------------------+
                                    -> IndexBuilder -> TopKEvaluator
                                    -> ChannelTrainer ------^
                                    -> RankerTrainer -------^ (ranking.enabled)
                     LatestBlessedModelResolver ------------------------^
                     (and -> ValidationGate: drift against the statistics
                     the last blessed model was trained after)
With `pipeline.final_fit` (the default):
                -> VocabStatsGenAllClicks -> FinalTrainer -> FinalIndexBuilder
                                                  -> FinalChannelTrainer
                                                  -> FinalRankerTrainer
                                     -> Pusher (scann), Pusher (brute_force)
The evaluated model is trained on the train split and judged on the eval
split; ChannelTrainer fits the other recall channels of `recall.channels`
beside the towers and chooses their merge on the eval split, and the
evaluator ranks each channel, the merge and the merge without each channel
on the same clicks. With `ranking.enabled`, RankerTrainer trains the
DeepFM ranker on the train split against negatives from the merged list,
and the evaluator reports its AUC and log loss and the model's list
re-ranked by it; FinalRankerTrainer repeats it on every click, and both
exports gain its `reranked` signature. The final fit repeats its settings
(the trending prior's chosen weight, its trained epochs) on every click of
the run, with vocabularies, popularity and the recent window counted over
every click, and is the model pushed. Both Pushers gate on TopKEvaluator's
blessing of the evaluated model; the evaluator compares it with the last
blessed one and checks the ScaNN export against exact. Both Trainers take
the ValidationGate's output, so a blocking anomaly in the click examples
stops the run before training.
Runners (local_runner, kubeflow_runner) supply paths, the metadata backend
and Beam args.
"""

from __future__ import annotations

import os

from tfx import v1 as tfx

from clicklog.config import resolve_paths
from components.channel_trainer.component import ChannelTrainer
from components.click_example_gen.component import ClickExampleGen
from components.index_builder.component import IndexBuilder
from components.ranker_trainer.component import RankerTrainer
from components.retrieval_trainer.component import RetrievalTrainer
from components.serving_pusher.component import ServingPusher
from components.topk_evaluator.component import TopKEvaluator
from components.validation_gate.component import ValidationGate
from components.vocab_stats_gen.component import VocabStatsGen
from pipeline.config import PipelineConfig

BRUTE_FORCE_SUFFIX = "_brute_force"
# The curated schema of the click-example layout, used when the config names
# none (validation.schema_path: null); found from the code, not the cwd.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SCHEMA = os.path.join(REPO_ROOT, "configs", "schema", "clicks.pbtxt")


def uses_channels(config: PipelineConfig) -> bool:
    """Whether `recall.channels` names a channel beside the two-tower model."""
    return any(name != "two_tower" for name in config.recall.channels)


def model_dirs(model_name: str) -> dict[str, str]:
    """The pushed models' directories under the serving base, by export kind."""
    return {"scann": model_name, "brute_force": model_name + BRUTE_FORCE_SUFFIX}


def serving_dirs(serving_base: str, model_name: str) -> dict[str, str]:
    """Push destinations: ``<base>/<name>`` (ScaNN) and ``<base>/<name>_brute_force``."""
    return {kind: os.path.join(serving_base, name)
            for kind, name in model_dirs(model_name).items()}


def with_absolute_schema_path(config: PipelineConfig) -> PipelineConfig:
    """`config` whose `validation.schema_path` (and every other path setting)
    is absolute: the repository's DEFAULT_SCHEMA when null, a relative path
    read from the working directory (as ``--data``); URLs (``gs://...``) are
    left alone."""
    if config.validation.schema_path is None:
        config = config.replace(validation=config.validation.replace(schema_path=DEFAULT_SCHEMA))
    return resolve_paths(config, os.getcwd())


def create_pipeline(
    pipeline_root: str,
    data_path: str,
    serving_base: str,
    config: PipelineConfig,
    metadata_connection_config=None,
    reports_dir: str = "",
    input_fingerprint: str = "",
    epochs=None,
    min_lift=None,
    min_recall=None,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline.

    Args:
      pipeline_root: root of the artifact store.
      data_path: click-log file, glob or directory.
      serving_base: parent of the pushed model directories.
      config: the checked configuration (pipeline/config.py).
      metadata_connection_config: MLMD connection (None for Kubeflow).
      reports_dir: where ClickExampleGen also writes its report, and on a
        failed run the report with the error and the quarantined rows.
      input_fingerprint: names the input files' versions (`input_fingerprint`),
        so that with `pipeline.enable_cache` changed inputs are read again.
      epochs, min_lift, min_recall: when set, replace the config's
        `model.training.epochs` and `evaluation.min_lift`/`min_recall` at run
        time; the Kubeflow spec passes its runtime parameters here (as it
        does for `data_path` and `serving_base`), the local run leaves them
        None and the config decides.
    """
    config = with_absolute_schema_path(config)
    example_gen = ClickExampleGen(input_base=data_path, config=config.ingestion,
                                  report_dir=reports_dir, input_fingerprint=input_fingerprint)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    # The schema the run is checked against is the curated one in the repo;
    # SchemaGen's inferred schema is kept only to compare with it.
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
    import_schema = tfx.components.ImportSchemaGen(schema_file=config.validation.schema_path)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=import_schema.outputs["schema"])
    vocab_stats_gen = VocabStatsGen(examples=example_gen.outputs["examples"],
                                    config=config.vocab)
    # The "last blessed model": towers an earlier run blessed. The Trainer warm
    # starts from it (model.training.warm_start) and the evaluator compares against it.
    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("LatestBlessedModelResolver")
    # The gate compares with the last blessed run's statistics only when drift
    # thresholds are set, and the trainers read the last blessed model only to
    # warm start from it (or to train on the clicks after its window):
    # otherwise it is not their input, so a cached rerun is not redone
    # because a model was blessed in between.
    gate = ValidationGate(statistics=statistics_gen.outputs["statistics"],
                          schema=import_schema.outputs["schema"],
                          anomalies=example_validator.outputs["anomalies"],
                          schema_path=config.validation.schema_path, config=config.validation,
                          baseline_model=(latest_blessed.outputs["model"]
                                          if config.validation.drift else None))
    training = config.model.training
    base_model = (latest_blessed.outputs["model"]
                  if training.warm_start or training.since_base_model else None)
    trainer = RetrievalTrainer(examples=example_gen.outputs["examples"],
                               vocab_stats=vocab_stats_gen.outputs["vocab_stats"],
                               schema=import_schema.outputs["schema"], config=config.model,
                               base_model=base_model,
                               data_validation=gate.outputs["validation"], epochs=epochs)
    channel_trainer = (ChannelTrainer(examples=example_gen.outputs["examples"],
                                      model=trainer.outputs["model"], config=config.recall,
                                      vocab_stats=vocab_stats_gen.outputs["vocab_stats"],
                                      k=config.evaluation.blessing_k)
                       if uses_channels(config) else None)
    ranker_trainer = (RankerTrainer(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        vocab_stats=vocab_stats_gen.outputs["vocab_stats"], config=config.ranking,
        channels=channel_trainer.outputs["channels"] if channel_trainer else None)
        if config.ranking.enabled else None)
    index_builder = IndexBuilder(
        model=trainer.outputs["model"],
        channels=channel_trainer.outputs["channels"] if channel_trainer else None,
        ranker=ranker_trainer.outputs["ranker"] if ranker_trainer else None)
    evaluator = TopKEvaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        config=config.evaluation, baseline_model=latest_blessed.outputs["model"],
        scann_model=index_builder.outputs["scann_model"],
        brute_force_model=index_builder.outputs["brute_force_model"],
        channels=channel_trainer.outputs["channels"] if channel_trainer else None,
        ranker=ranker_trainer.outputs["ranker"] if ranker_trainer else None,
        min_lift=min_lift, min_recall=min_recall)
    components = [example_gen, statistics_gen, schema_gen, import_schema, example_validator,
                  gate, vocab_stats_gen, trainer, index_builder, latest_blessed, evaluator]
    components += [c for c in (channel_trainer, ranker_trainer) if c is not None]
    pushed = index_builder
    if config.pipeline.final_fit:
        vocab_all = VocabStatsGen(examples=example_gen.outputs["examples"],
                                  config=config.vocab.replace(count_splits=("train", "eval"))
                                  ).with_id("VocabStatsGenAllClicks")
        final_trainer = RetrievalTrainer(
            examples=example_gen.outputs["examples"], vocab_stats=vocab_all.outputs["vocab_stats"],
            schema=import_schema.outputs["schema"], config=config.model,
            base_model=base_model, chosen_model=trainer.outputs["model"],
            data_validation=gate.outputs["validation"],
            train_splits=("train", "eval"), epochs=epochs).with_id("FinalTrainer")
        final_channels = None
        if channel_trainer:
            final_channels = ChannelTrainer(
                examples=example_gen.outputs["examples"], model=final_trainer.outputs["model"],
                config=config.recall, chosen_channels=channel_trainer.outputs["channels"],
                vocab_stats=vocab_all.outputs["vocab_stats"],
                train_splits=("train", "eval"),
                k=config.evaluation.blessing_k).with_id("FinalChannelTrainer")
            components.append(final_channels)
        final_ranker = None
        if ranker_trainer:
            final_ranker = RankerTrainer(
                examples=example_gen.outputs["examples"], model=final_trainer.outputs["model"],
                vocab_stats=vocab_all.outputs["vocab_stats"], config=config.ranking,
                channels=final_channels.outputs["channels"] if final_channels else None,
                train_splits=("train", "eval")).with_id("FinalRankerTrainer")
            components.append(final_ranker)
        pushed = IndexBuilder(
            model=final_trainer.outputs["model"],
            channels=final_channels.outputs["channels"] if final_channels else None,
            ranker=final_ranker.outputs["ranker"] if final_ranker else None,
        ).with_id("FinalIndexBuilder")
        components += [vocab_all, final_trainer, pushed]
    # serving_base is a path here, a runtime parameter in the Kubeflow spec.
    directories = model_dirs(config.pipeline.model_name)
    pusher = ServingPusher(model=pushed.outputs["scann_model"],
                           model_blessing=evaluator.outputs["blessing"],
                           serving_base=serving_base,
                           model_dir=directories["scann"]).with_id("Pusher")
    brute_force_pusher = ServingPusher(
        model=pushed.outputs["brute_force_model"], model_blessing=evaluator.outputs["blessing"],
        serving_base=serving_base,
        model_dir=directories["brute_force"]).with_id("BruteForcePusher")
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline.name,
        pipeline_root=pipeline_root,
        components=components + [pusher, brute_force_pusher],
        enable_cache=config.pipeline.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.pipeline.beam_args),
    )
