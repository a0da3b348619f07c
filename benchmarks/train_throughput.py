"""Training throughput of the default model: the pipeline's input path vs in-memory tensors.

Both runs train the same default model (`ModelConfig()`: one ensemble member, with
the catalogue features and the trending prior, as the Trainer builds it; the
members train one after the other, each at this rate) on the same
MovieTweetings training split, produced by the real pipeline (see
`benchmarks.quality`):

  * `tfrecord_input`: `models.data.make_dataset` over ClickExampleGen's gzipped
    TFRecords (read, cache of the serialized records, shuffle, batch, parse,
    history cut, prefetch), exactly as the Trainer;
  * `in_memory`: the same examples parsed once into tensors, then
    `from_tensor_slices` -> shuffle -> batch -> prefetch.

Steady state: the first epoch (tracing, warm-up) is dropped; examples/second
is the mean over the remaining epochs.

    .venv/bin/python -m benchmarks.train_throughput [--epochs 4] [--work_dir DIR]

Writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from benchmarks import quality  # noqa: E402
from models import features, trending  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.data import make_dataset  # noqa: E402
from models.retrieval import RetrievalModel  # noqa: E402
from models.trainer import item_features, set_seeds  # noqa: E402
from models.vocab import read_vocab  # noqa: E402

REPO = quality.REPO


class EpochTimer(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def in_memory_dataset(pattern: str, config: ModelConfig) -> tuple[tf.data.Dataset, int]:
    batches = list(make_dataset(pattern, 8192, config.history.max_history, shuffle=False))
    tensors = {key: tf.concat([b[key] for b in batches], axis=0) for key in batches[0]}
    count = int(tensors[features.ITEM_ID].shape[0])
    dataset = (tf.data.Dataset.from_tensor_slices(tensors)
               .shuffle(50_000, seed=config.training.seed, reshuffle_each_iteration=True)
               .batch(config.training.batch_size).prefetch(tf.data.AUTOTUNE))
    return dataset, count


def fit(dataset: tf.data.Dataset, paths: dict, vocab, config: ModelConfig,
        epochs: int) -> list[float]:
    """Epoch times of one model (one ensemble member) built as the Trainer builds it."""
    set_seeds(config.training.seed)
    prior = (trending.build(vocab, trending.count_table(paths["train"], vocab))
             if config.prior.in_training else None)
    model = RetrievalModel(vocab, config, item_features=item_features(paths["vocab"], config),
                           trending_prior=prior)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(
        learning_rate=config.training.learning_rate))
    timer = EpochTimer()
    with contextlib.redirect_stdout(io.StringIO()):
        model.fit(dataset, epochs=epochs, callbacks=[timer], verbose=0)
    return timer.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--work_dir", help="reuse pipeline outputs (as benchmarks.quality)")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results",
                                                         "train_throughput.json"))
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs {args.epochs}: expected >= 2 (the first epoch is warm-up)")
    config = ModelConfig()
    with (contextlib.nullcontext(args.work_dir) if args.work_dir
          else tempfile.TemporaryDirectory()) as root:
        paths = quality.run_pipeline("movietweetings", quality.DATASETS["movietweetings"],
                                     os.path.join(root, "movietweetings"))
        vocab = read_vocab(paths["vocab"])
        memory, count = in_memory_dataset(paths["train"], config)
        training = config.training
        runs = {
            "tfrecord_input": make_dataset(paths["train"], training.batch_size,
                                           config.history.max_history, shuffle=True,
                                           seed=training.seed, cache=training.cache_examples),
            "in_memory": memory,
        }
        result = {"command": "python -m benchmarks.train_throughput " + " ".join(
                      argv or sys.argv[1:]),
                  "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                              "load_average_start": os.getloadavg()},
                  "train_examples": count, "batch_size": training.batch_size,
                  # Members of the default ensemble train one after the other,
                  # each at the rate measured here for one member.
                  "ensemble_size": config.ensemble.size,
                  "epochs": args.epochs, "runs": {}}
        for name, dataset in runs.items():
            seconds = fit(dataset, paths, vocab, config, args.epochs)
            steady = seconds[1:]
            result["runs"][name] = {
                "epoch_seconds": [round(s, 2) for s in seconds],
                "steady_examples_per_s": round(count * len(steady) / sum(steady), 1)}
            print(f"{name:>15}: {result['runs'][name]}", flush=True)
    result["machine"]["load_average_end"] = os.getloadavg()
    result["ratio_tfrecord_over_in_memory"] = round(
        result["runs"]["tfrecord_input"]["steady_examples_per_s"]
        / result["runs"]["in_memory"]["steady_examples_per_s"], 3)
    print(f"input path / in-memory throughput: {result['ratio_tfrecord_over_in_memory']}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
