"""The export's history exclusion (`models.serving_export.mask_seen`) against
the definition it replaces: the `exclude_history` most recent non-padding items
from `features.recent_history`."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models import features
from models.serving_export import mask_seen


def _reference(ids, scores, history, exclude):
    excluded = features.recent_history(tf.constant(history), exclude).numpy()
    out = scores.copy()
    for row, kept in enumerate(excluded):
        seen = {item for item in kept.tolist() if item != b""}
        for col, item in enumerate(ids[row].tolist()):
            if item in seen:
                out[row, col] = -np.inf
    return out


@pytest.mark.parametrize("exclude", [0, 1, 3, 10])
def test_mask_seen_matches_recent_history_definition(exclude):
    rng = np.random.default_rng(exclude)
    vocab = np.array([f"i{n}".encode() for n in range(12)] + [b""] * 4, dtype=object)
    for _ in range(20):
        batch, length, fetch = rng.integers(1, 4), rng.integers(0, 9), 6
        history = vocab[rng.integers(0, len(vocab), (batch, length))]
        ids = vocab[rng.integers(0, 12, (batch, fetch))]
        scores = rng.random((batch, fetch)).astype(np.float32)
        got = mask_seen(tf.constant(ids, tf.string), tf.constant(scores),
                        tf.constant(history.reshape(batch, length), tf.string), exclude)
        np.testing.assert_array_equal(
            got.numpy(), _reference(ids, scores, history.reshape(batch, length), exclude))


def test_only_the_most_recent_items_are_masked():
    ids = tf.constant([[b"a", b"b", b"c", b"d"]])
    history = tf.constant([[b"a", b"", b"b", b"c", b""]])  # most recent last: c, b, a
    got = mask_seen(ids, tf.constant([[4.0, 3.0, 2.0, 1.0]]), history, 2).numpy()
    assert got.tolist() == [[4.0, -np.inf, -np.inf, 1.0]]
