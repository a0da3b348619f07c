"""Names and parsing spec of the tf.Example features ClickExampleGen writes.

One click per example: who clicked (`user_id`), what (`item_id`), when
(`timestamp`, unix seconds), with which weight, and `history`: the user's
previous item ids strictly before `timestamp`, most recent last.

The query tower's inputs are `user_id` and `history`, plus, when the model is
configured for them (`models/towers/inputs`), `seconds_since_previous_click`
and declared user/context features. Those extra inputs are read from the same
examples in training and are extra named inputs of every serving signature.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
WEIGHT = "weight"
HISTORY = "history"
# Eval/test examples: the user's history when their split began (frozen protocol).
HISTORY_AT_CUTOFF = "history_at_cutoff"
SECONDS_SINCE_PREVIOUS_CLICK = "seconds_since_previous_click"
# YouTube's example age: set from `timestamp` in training, a serving input
# (negative: the model's configured serving age) everywhere else.
EXAMPLE_AGE = "example_age_seconds"
# Items the user was shown before the click and did not click (training
# negatives, `model.negatives.impressions`; oldest first, absent without
# impression events).
IMPRESSED_NEGATIVES = "impressed_negatives"
PADDING = ""
# ClickExampleGen writes -1 for a user's first click (no previous click).
NO_PREVIOUS_CLICK = -1
# An example age below 0 (a missing one) is the model's configured serving age.
SERVING_AGE = -1
# Scalar query inputs whose missing value is not 0.
_MISSING = {SECONDS_SINCE_PREVIOUS_CLICK: NO_PREVIOUS_CLICK, EXAMPLE_AGE: SERVING_AGE}


def _missing_value(spec: tf.TensorSpec):
    """What a scalar query input takes when absent: `""`, 0, -1 ("no
    previous click") for the recency input, -1 ("the serving age") for the
    example age."""
    if spec.dtype == tf.string:
        return PADDING
    return _MISSING.get(spec.name, 0)


def default_query_inputs(specs: list[tf.TensorSpec], rows: int = 1) -> dict:
    """`rows` rows of every query input in `specs` with neutral values: empty
    strings and histories, zeros, "no previous click" for the recency and
    the serving age for the example age."""
    return {spec.name: tf.fill([rows] + [1] * (spec.shape.rank - 1),
                               tf.constant(_missing_value(spec), spec.dtype))
            for spec in specs}


def example_parsing_spec() -> dict:
    """The `tf.io.parse_example` spec of a click example (the model's extra
    query features: `extra_parsing_spec`)."""
    return {
        USER_ID: tf.io.FixedLenFeature([], tf.string),
        ITEM_ID: tf.io.FixedLenFeature([], tf.string),
        TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
        WEIGHT: tf.io.FixedLenFeature([], tf.float32, default_value=1.0),
        HISTORY: tf.io.VarLenFeature(tf.string),
    }


def extra_parsing_spec(specs: list[tf.TensorSpec]) -> dict:
    """Parsing spec of extra query inputs given as signature specs: `[B, L]`
    strings are lists (missing: empty); a missing scalar takes `""`, 0, 0.0
    or, for the recency input, -1 ("no previous click")."""
    return {spec.name: tf.io.VarLenFeature(spec.dtype) if spec.shape.rank == 2
            else tf.io.FixedLenFeature([], spec.dtype, default_value=_missing_value(spec))
            for spec in specs}


def query_inputs_from_examples(examples: tf.Tensor, example_spec: dict,
                               query_specs: list[tf.TensorSpec]) -> list[tf.Tensor]:
    """The query inputs of `query_specs`, in order, parsed from serialized
    `tf.Example`s with `example_spec` (the `serve_tf_examples` signatures)."""
    parsed = tf.io.parse_example(examples, example_spec)
    parsed[HISTORY] = tf.sparse.to_dense(parsed[HISTORY], default_value=PADDING)
    parsed = densify_lists(parsed)
    return [parsed[spec.name] for spec in query_specs]


def densify_lists(parsed: dict) -> dict:
    """Turns the parsed `string_list` features (SparseTensors, not `history`)
    into `[B, L]` dense strings padded with `""`, as the signatures take them."""
    for name, value in parsed.items():
        if name != HISTORY and isinstance(value, tf.SparseTensor):
            parsed[name] = tf.sparse.to_dense(value, default_value=PADDING)
    return parsed


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
