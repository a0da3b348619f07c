"""TFX Trainer entry point: `run_fn(fn_args)` trains and saves the towers.

This is the only place the model layer touches TFX, and only through
`fn_args`: `custom_config["hparams"]` (a plain dict of `HParams`) and
`custom_config["vocab_stats_uri"]` (set by the RetrievalTrainer executor from
its VocabStats input artifact).
"""

from __future__ import annotations

import logging
import os
import random

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import towers_export  # noqa: E402
from models.data import make_dataset  # noqa: E402
from models.hparams import HParams  # noqa: E402
from models.retrieval import RetrievalModel  # noqa: E402
from models.vocab import read_vocab  # noqa: E402

VOCAB_STATS_URI_KEY = "vocab_stats_uri"
HPARAMS_KEY = "hparams"


def set_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def train(train_files, vocab_dir: str, hparams: HParams, output_dir: str,
          log_dir: str | None = None) -> dict:
    """Trains the two-tower model and writes the towers SavedModel.

    Args:
      train_files: glob(s) of training example files.
      vocab_dir: a VocabStats directory.
      hparams: model and training hyperparameters.
      output_dir: where the towers SavedModel is written.
      log_dir: TensorBoard log directory, if any.

    Returns:
      The final epoch's training logs (loss).
    """
    set_seeds(hparams.seed)
    vocab = read_vocab(vocab_dir)
    dataset = make_dataset(train_files, hparams.batch_size, hparams.max_history,
                           shuffle=True, seed=hparams.seed)
    model = RetrievalModel(vocab, hparams)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=hparams.learning_rate))
    callbacks = [tf.keras.callbacks.TensorBoard(log_dir=log_dir)] if log_dir else []
    history = model.fit(dataset, epochs=hparams.epochs, callbacks=callbacks, verbose=2)
    towers_export.save_towers(output_dir, model.query_tower, model.candidate_tower, hparams,
                              vocab_dir)
    final = {name: float(values[-1]) for name, values in history.history.items()}
    logging.info("trained towers saved to %s; final %s", output_dir, final)
    return final


def run_fn(fn_args) -> None:
    """TFX Trainer `run_fn`."""
    config = fn_args.custom_config or {}
    if VOCAB_STATS_URI_KEY not in config:
        raise ValueError(f"custom_config lacks {VOCAB_STATS_URI_KEY!r}; run this module through "
                         "the RetrievalTrainer component, which sets it from its vocab_stats input")
    hparams = HParams.from_dict(config.get(HPARAMS_KEY))
    train(fn_args.train_files, config[VOCAB_STATS_URI_KEY], hparams,
          fn_args.serving_model_dir, log_dir=fn_args.model_run_dir)
