"""tf.data input pipeline over ClickExampleGen's gzipped TFRecord examples."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402


def _expand(file_patterns: list[str] | str) -> list[str]:
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise ValueError(f"no example files match {patterns}")
    return files


def make_dataset(file_patterns: list[str] | str, batch_size: int, max_history: int,
                 shuffle: bool, seed: int = 0, drop_remainder: bool = False,
                 cache: bool = False,
                 extra_specs: list[tf.TensorSpec] | None = None,
                 min_timestamp: int | None = None,
                 impressed_negatives: int = 0) -> tf.data.Dataset:
    """Batches of parsed click examples.

    Args:
      file_patterns: glob(s) of gzipped TFRecord files of `tf.Example`s.
      batch_size: examples per batch.
      max_history: history items kept per example (most recent).
      shuffle: shuffle files and examples (training).
      seed: shuffle seed.
      drop_remainder: drop the last partial batch.
      cache: keep the decompressed serialized examples in memory after the
        first pass, so later epochs skip reading and gunzipping the files.
      extra_specs: the model's extra query inputs (signature specs beyond
        user_id and history, `models.towers.inputs.query_input_specs(config)[2:]`),
        parsed as well: lists as `[B, L]` strings padded with `""`.
      min_timestamp: keep only clicks at or after this time (unix s).
      impressed_negatives: if > 0, also `impressed_negatives`: each click's
        most recent impressed items, `[B, impressed_negatives]` strings padded
        with `""` (a click without the feature has none).

    Returns:
      A dataset of dicts: `user_id` string `[B]`, `item_id` string `[B]`,
      `timestamp` int64 `[B]`, `weight` float32 `[B]`, `history` string
      `[B, max_history]` (right-padded with `""`), and any extra query
      features (`features.query_input_specs`).
    """
    files = _expand(file_patterns)
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP",
                                      num_parallel_reads=tf.data.AUTOTUNE)
    if min_timestamp is not None:
        timestamp_spec = {features.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64)}
        dataset = dataset.filter(lambda record: tf.io.parse_single_example(
            record, timestamp_spec)[features.TIMESTAMP] >= min_timestamp)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(50_000, seed=seed, reshuffle_each_iteration=True)
    spec = features.example_parsing_spec()
    spec.update(features.extra_parsing_spec(extra_specs or []))
    if impressed_negatives:
        spec[features.IMPRESSED_NEGATIVES] = tf.io.VarLenFeature(tf.string)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        parsed[features.HISTORY] = features.recent_history(parsed[features.HISTORY], max_history)
        if impressed_negatives:
            parsed[features.IMPRESSED_NEGATIVES] = features.recent_history(
                parsed[features.IMPRESSED_NEGATIVES], impressed_negatives)
        return features.densify_lists(parsed)

    return (dataset.batch(batch_size, drop_remainder=drop_remainder)
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))
