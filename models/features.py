"""Names and parsing spec of the tf.Example features ClickExampleGen writes.

One click per example: who clicked (`user_id`), what (`item_id`), when
(`timestamp`, unix seconds), with which weight, and `history`: the user's
previous item ids strictly before `timestamp`, most recent last.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
WEIGHT = "weight"
HISTORY = "history"
PADDING = ""


def example_parsing_spec() -> dict:
    """The `tf.io.parse_example` spec of a click example."""
    return {
        USER_ID: tf.io.FixedLenFeature([], tf.string),
        ITEM_ID: tf.io.FixedLenFeature([], tf.string),
        TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
        WEIGHT: tf.io.FixedLenFeature([], tf.float32, default_value=1.0),
        HISTORY: tf.io.VarLenFeature(tf.string),
    }


def recent_history(history, max_history: int) -> tf.Tensor:
    """Keeps the `max_history` most recent non-padding items of each row.

    Args:
      history: string `[B, L]` dense tensor (`""` as padding anywhere) or a
        `[B, None]` RaggedTensor / SparseTensor, most recent item last.
      max_history: how many items to keep.

    Returns:
      string `[B, max_history]`, items left-aligned in time order (most recent
      last among the real items), padded with `""` on the right.
    """
    if isinstance(history, tf.SparseTensor):
        history = tf.RaggedTensor.from_sparse(history)
    elif not isinstance(history, tf.RaggedTensor):
        history = tf.convert_to_tensor(history, tf.string)
        history = tf.ragged.boolean_mask(history, tf.not_equal(history, PADDING))
    else:
        history = tf.ragged.boolean_mask(history, tf.not_equal(history, PADDING))
    lengths = history.row_lengths()
    starts = history.row_starts()
    # Flat indices of each row's last `max_history` values.
    offsets = tf.ragged.range(tf.maximum(lengths - max_history, 0), lengths) + tf.expand_dims(
        starts, 1)
    kept = tf.gather(history.values, offsets)
    return kept.to_tensor(default_value=PADDING, shape=[None, max_history])
