"""TFX Trainer entry point: `run_fn(fn_args)` trains and saves the towers.

This is the only place the model layer touches TFX, and only through
`fn_args`: `custom_config["model"]` (the `ModelConfig` as a plain dict),
`custom_config["vocab_stats_uri"]` (set by the RetrievalTrainer executor from
its VocabStats input artifact) and, for the final fit on every click,
`custom_config["chosen_model_uri"]`: the evaluated model whose settings (its
chosen trending-prior weight, its trained epochs) the fit repeats.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import shutil
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from clicklog.config import parse  # noqa: E402
from models import (  # noqa: E402
    ensemble,
    prior_calibration,
    teacher,
    towers_export,
    trending,
    warm_start,
)
from models import vocab as vocab_lib  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.data import make_dataset  # noqa: E402
from models.early_stopping import HitRateEarlyStopping  # noqa: E402
from models.retrieval import RetrievalModel  # noqa: E402
from models.towers.inputs import query_input_specs  # noqa: E402
from models.vocab import read_vocab  # noqa: E402

VOCAB_STATS_URI_KEY = "vocab_stats_uri"
MODEL_CONFIG_KEY = "model"
CHOSEN_MODEL_URI_KEY = "chosen_model_uri"
REPORT_FILE = "training_report.json"
# Eval clicks per batch of the training-time checks (early stopping, prior calibration).
EVAL_BATCH = 1024


def set_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


@functools.cache
def distribution_strategy(name: str, min_shard_bytes: int = 256 << 10
                          ) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by `model.training.distribution_strategy`.

    One instance per process: models trained one after the other (ensemble
    members, a second run in the same process) share it, because separately
    created mirrored strategies hand out the same collective instance keys
    and their all-reduces then collide ("Shape mismatch in the collective
    instance").
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        # Reads the cluster from TF_CONFIG, as on Kubeflow/Vertex training jobs.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "parameter_server":
        # Run by the coordinator (the chief); TF_CONFIG names the ps and worker tasks.
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        num_ps = len(resolver.cluster_spec().as_dict().get("ps", []))
        partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
            min_shard_bytes=min_shard_bytes, max_shards=max(num_ps, 1))
        return tf.distribute.experimental.ParameterServerStrategy(
            resolver, variable_partitioner=partitioner)
    return tf.distribute.get_strategy()


def strategy_of(config: ModelConfig) -> tf.distribute.Strategy:
    """`distribution_strategy` of `config.training`."""
    training = config.training
    if training.distribution_strategy == "parameter_server":
        return distribution_strategy(training.distribution_strategy, training.min_shard_bytes)
    return distribution_strategy(training.distribution_strategy)


def is_parameter_server(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the real export: the `chief` task, else
    worker 0 of a cluster without one; always true outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def input_options() -> tf.data.Options:
    """tf.data options of the training input.

    Across workers (MultiWorkerMirroredStrategy) the input is sharded by
    DATA: every worker reads every file and keeps its replicas' slices of
    each global batch, so the batches trained on are the one-process split of
    the same global batches, whatever the number of files (FILE sharding
    needs at least one file per worker and changes which clicks meet in a
    batch)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return options


def _build(model: RetrievalModel, vocab) -> None:
    """Creates the towers' variables (Keras builds them on first call)."""
    model.query_tower(model.query_tower.example_inputs())
    model.candidate_tower(tf.constant(vocab.item_ids[:1]))


def item_features(vocab_dir: str, config: ModelConfig) -> dict | None:
    """The catalogue tokens of every candidate (VocabStats `item_features.tsv`)
    when a tower reads them, else None."""
    if config.towers.item_side_features or config.history.item_side_features:
        return vocab_lib.read_item_features(vocab_dir)
    return None


def since_timestamp(config: ModelConfig, base_model_dir: str | None) -> int | None:
    """The first click timestamp trained on (`training.since`, or just after
    the base model's newest training click with `training.since_base_model`),
    or None for every click."""
    training = config.training
    if training.since_base_model and base_model_dir:
        stats = read_vocab(os.path.join(base_model_dir, towers_export.VOCAB_DIR)).stats
        newest = stats.get("max_timestamp")
        if newest is None:
            raise ValueError(f"model.training.since_base_model: the base model {base_model_dir!r} "
                             "records no newest training click (vocab stats.json max_timestamp)")
        return int(newest) + 1
    return training.since


def train(train_files, vocab_dir: str, config: ModelConfig, output_dir: str,
          log_dir: str | None = None, eval_files=None,
          base_model_dir: str | None = None,
          served_prior_weight: float | None = None) -> dict:
    """Trains the two-tower model and writes the towers SavedModel.

    With `model.ensemble.size` K > 1, K members are trained one after the
    other with seeds seed, seed + 1, ... (each with its own early stopping,
    TensorBoard run `member-k` and warm start) and exported as one pair of
    towers scoring the mean of their scores (models/ensemble.py).

    Args:
      train_files: glob(s) of training example files.
      vocab_dir: a VocabStats directory.
      config: the model's configuration.
      output_dir: where the towers SavedModel is written.
      log_dir: TensorBoard log directory, if any.
      eval_files: glob(s) of eval example files, for early stopping and the
        trending prior's calibration.
      base_model_dir: towers of an earlier model to warm start from (and, with
        `training.since_base_model`, whose newest training click bounds the
        clicks trained on).
      served_prior_weight: the trending prior's weight to export, fixed (the
        final fit repeats the weight chosen for the evaluated model); None:
        learned and/or chosen on `eval_files` as configured.

    Returns:
      The final epoch's training logs (loss, and val_hit_rate@K with early
      stopping), plus `epochs_trained` and the warm-start report if any; with
      an ensemble, member 0's, and every member's under `members`.
    """
    # First: a multi-worker strategy configures the runtime, before any op runs.
    strategy = strategy_of(config)
    vocab = read_vocab(vocab_dir)
    since = since_timestamp(config, base_model_dir)
    extra = query_input_specs(config)[2:]  # recency, user/context features
    # Eval batches carry enough history for the query tower and the exclusion.
    eval_history = max(config.history.max_history, config.export.exclude_history, 1)

    def eval_dataset():
        return make_dataset(eval_files, EVAL_BATCH, eval_history, shuffle=False,
                            extra_specs=extra)

    # The prior's click counts do not depend on the seed: read once, for all members.
    counted = trending.count_table(train_files, vocab) if config.prior.in_training else None
    models, finals = [], []
    for member in range(config.ensemble.size):
        member_config = config.with_changes(
            training={"seed": ensemble.member_seed(config.training.seed, member)})
        member_log_dir = log_dir
        if log_dir and config.ensemble.size > 1:
            member_log_dir = os.path.join(log_dir, f"member-{member}")
        model, final = _train_member(train_files, vocab_dir, vocab, member_config,
                                     member_log_dir, eval_files, eval_dataset,
                                     base_model_dir, member, counted, since)
        models.append(model)
        finals.append(final)
    trained = ensemble.Ensemble(models)
    report: dict = {}
    prior = config.prior
    learned = [model.trending_prior for model in models if model.trending_prior is not None]
    if learned:
        # Learned in the logits (scores / temperature): w = temperature * beta
        # (the members' mean), one more candidate of the grid's choice below,
        # or the weight itself.
        weight = round(max(config.loss.temperature * float(
            np.mean([layer.beta.numpy() for layer in learned])), 0.0), 4)
        report["trending_prior_learned_weight"] = weight
        prior = prior.replace(weight=weight, grid=tuple(sorted(set(prior.grid) | {weight}))
                              if prior.grid else ())
    config = config.replace(prior=prior)
    if served_prior_weight is not None:
        report["trending_prior"] = {"weight": served_prior_weight,
                                    "reason": "fixed: the weight chosen for the evaluated model"}
        config = config.with_changes(prior={"weight": served_prior_weight, "grid": []})
    elif prior.grid and eval_files:
        weight, report["trending_prior"] = prior_calibration.choose_weight(
            trained, eval_dataset(), vocab, config)
        # The saved configuration records the weight the export applies.
        config = config.with_changes(prior={"weight": weight})
    elif prior.grid:
        report["trending_prior"] = {"weight": prior.weight,
                                    "reason": "no eval examples: the fixed weight is kept"}
    trained_epochs = max(logs.get("best_epoch", logs["epochs_trained"]) for logs in finals)
    # Every worker saves (saving must not be entered by some workers only);
    # only the chief's copy is kept.
    chief = is_chief(strategy)
    if not chief:
        final_dir, output_dir = output_dir, tempfile.mkdtemp(prefix="towers-worker-")
    towers_export.save_towers(output_dir, trained.query_tower, trained.candidate_tower, config,
                              vocab_dir, trained_epochs)
    for member, model in enumerate(models):
        warm_start.save(os.path.join(output_dir, warm_start.weights_file(member)), model)
    final = dict(finals[0])
    if len(finals) > 1:
        final["members"] = finals
    final.update(report)
    if since is not None:
        final["since_timestamp"] = since
    with tf.io.gfile.GFile(os.path.join(output_dir, REPORT_FILE), "w") as f:
        f.write(json.dumps(final, indent=2, sort_keys=True, default=float))
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # A last all-reduce: no worker exits before the chief has written its
        # export (an exited worker is a failed task to the coordination service).
        strategy.reduce(tf.distribute.ReduceOp.SUM,
                        strategy.run(lambda: tf.constant(1.0)), axis=None)
    if not chief:
        shutil.rmtree(output_dir, ignore_errors=True)
        logging.info("not the chief: the towers are saved by the chief to %s", final_dir)
        return final
    logging.info("trained towers saved to %s; final %s", output_dir, final)
    return final


def _train_member(train_files, vocab_dir: str, vocab, config: ModelConfig, log_dir,
                  eval_files, eval_dataset, base_model_dir, member: int, counted,
                  since: int | None):
    """Trains one model (one ensemble member); returns it and its final logs.

    `counted`: `trending.count_table`'s result with `model.prior.in_training`,
    else None. `since`: train only on clicks at or after this time."""
    training = config.training
    set_seeds(training.seed)
    extra = query_input_specs(config)[2:]

    def training_dataset(input_context=None):
        dataset = make_dataset(train_files, training.batch_size, config.history.max_history,
                               shuffle=True, seed=training.seed,
                               cache=training.cache_examples, extra_specs=extra,
                               min_timestamp=since,
                               impressed_negatives=config.negatives.impressions)
        if input_context is None:
            return dataset.with_options(input_options())
        # Parameter servers: each worker's own pipeline, repeated (an epoch is
        # `steps_per_epoch` steps drawn from all workers), a share of the batches each.
        return dataset.shard(input_context.num_input_pipelines,
                             input_context.input_pipeline_id).repeat()

    dataset = training_dataset()
    strategy = strategy_of(config)
    with strategy.scope():
        prior = trending.build(vocab, counted) if counted is not None else None
        model = RetrievalModel(vocab, config, item_features=item_features(vocab_dir, config),
                               trending_prior=prior)
        _build(model, vocab)
        model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=training.learning_rate))
    report: dict = {}
    if base_model_dir and training.warm_start:
        old_vocab = read_vocab(os.path.join(base_model_dir, towers_export.VOCAB_DIR))
        report["warm_start"] = warm_start.restore(model, base_model_dir, old_vocab, vocab,
                                                  member=member)
    callbacks = [tf.keras.callbacks.TensorBoard(log_dir=log_dir)] if log_dir else []
    if model.guidance is not None:  # teacher-guided: guidance on after the pre-training
        callbacks.append(teacher.GuidanceSchedule(model.guidance,
                                                  config.teacher.pretrain_epochs))
    stopper = None
    if training.early_stopping_patience:
        if not eval_files:
            raise ValueError("model.training.early_stopping_patience > 0 needs eval examples; "
                             "the Trainer passes its eval split")
        batches = -(-training.early_stopping_examples // EVAL_BATCH)
        stopper = HitRateEarlyStopping(
            eval_dataset().take(batches), vocab.item_ids, training.early_stopping_k,
            training.early_stopping_patience, config.export.exclude_history,
            config.history.max_history)
        callbacks.insert(0, stopper)
    if since is not None and not any(True for _ in dataset.take(1)):
        raise ValueError(f"model.training.since: no training click at or after unix time "
                         f"{since}; expected at least one (the clicks since the base model, "
                         "or since the given time)")
    if is_parameter_server(strategy):
        # Model.fit through the strategy's cluster coordinator: each worker
        # builds its own input; steps are dispatched to whichever worker is free.
        steps = training.steps_per_epoch or int(dataset.reduce(0, lambda count, _: count + 1))
        history = model.fit(tf.keras.utils.experimental.DatasetCreator(training_dataset),
                            epochs=training.epochs, steps_per_epoch=steps,
                            callbacks=callbacks, verbose=2)
    else:
        history = model.fit(dataset, epochs=training.epochs, callbacks=callbacks, verbose=2)
    final = {name: float(values[-1]) for name, values in history.history.items()}
    final["epochs_trained"] = len(history.history.get("loss", []))
    if stopper is not None:
        final["best_epoch"] = stopper.best_epoch + 1
        final[stopper.metric] = stopper.best
        final[f"{stopper.metric}_by_epoch"] = stopper.history
    if model.guidance is not None and eval_files:
        final["teacher_auc"] = teacher.teacher_auc(model, eval_dataset(), vocab.item_ids,
                                                   config.history.max_history)
    if is_parameter_server(strategy):
        # Where each table's shards live (the variable partitioner's split).
        final["variable_shards"] = {
            name: [shard.device for shard in getattr(table, "variables", [table])]
            for name, table in warm_start.id_variables(model).items()}
    final.update(report)
    return model, final


def run_fn(fn_args) -> None:
    """TFX Trainer `run_fn`."""
    custom = fn_args.custom_config or {}
    if VOCAB_STATS_URI_KEY not in custom:
        raise ValueError(f"custom_config lacks {VOCAB_STATS_URI_KEY!r}; run this module through "
                         "the RetrievalTrainer component, which sets it from its vocab_stats input")
    config = parse(ModelConfig, custom.get(MODEL_CONFIG_KEY))
    # The Trainer's optional base_model input (the last blessed model, from a
    # LatestBlessedModelStrategy resolver): its Format-Serving path.
    base_model = getattr(fn_args, "base_model", None)
    served_weight, eval_files = None, fn_args.eval_files
    if custom.get(CHOSEN_MODEL_URI_KEY):
        config, served_weight = final_fit_config(custom[CHOSEN_MODEL_URI_KEY], config)
        eval_files = None  # every click is trained on: nothing is held out
    train(fn_args.train_files, custom[VOCAB_STATS_URI_KEY], config,
          fn_args.serving_model_dir, log_dir=fn_args.model_run_dir,
          eval_files=eval_files, base_model_dir=base_model,
          served_prior_weight=served_weight)


def final_fit_config(chosen_towers_dir: str, config: ModelConfig) -> tuple[ModelConfig, float]:
    """The settings of the final fit on every click: `config` with the
    evaluated model's trained epochs and no early stopping (nothing is held
    out), and the prior weight chosen for it."""
    chosen = towers_export.Towers.read_config(chosen_towers_dir)
    epochs = int(towers_export.read_contract(chosen_towers_dir).get(
        "trained_epochs", config.training.epochs))
    config = config.with_changes(training={"epochs": epochs, "early_stopping_patience": 0})
    if config.teacher.enabled and config.teacher.pretrain_epochs >= epochs:
        config = config.with_changes(teacher={"pretrain_epochs": epochs - 1})
    return config, chosen.prior.weight
