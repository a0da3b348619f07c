"""Letter-trigram word hashing (DSSM, Huang et al. 2013).

Each word is marked `#word#` and cut into its letter trigrams (`good` ->
`#go`, `goo`, `ood`, `od#`); a text is the bag of its words' trigrams, each
hashed with `tf.strings.to_hash_bucket_fast` into a fixed number of buckets.
Spelling variants of a word (`drama`, `dramas`, `dramatic`) share most of
their trigrams, where word hashing gives them unrelated buckets.

The same TensorFlow ops hash catalogue titles ahead of time (a ragged table
per vocabulary row, so the served candidate tower still takes only ids) and
query text inside the graph, so training and serving hash alike.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

WORD_MARK = "#"
# Runs of anything but letters and digits separate words, as the catalogue's
# `text` type splits them (clicklog/catalog.py).
_NOT_ALPHANUMERIC = r"[^\pL\pN]+"


def words(text: tf.Tensor) -> tf.RaggedTensor:
    """Strings `[B]` -> words `[B, None]`: lower-cased, split on every run of
    characters other than letters and digits (`"The Conjuring (2013)"` ->
    `["the", "conjuring", "2013"]`)."""
    lowered = tf.strings.lower(text, encoding="utf-8")
    return tf.strings.split(tf.strings.regex_replace(lowered, _NOT_ALPHANUMERIC, " "))


def letter_trigrams(word_values: tf.Tensor) -> tf.RaggedTensor:
    """Words `[N]` -> `[N, None]` letter trigrams of each `#word#`."""
    marked = tf.strings.join([WORD_MARK, word_values, WORD_MARK])
    return tf.strings.ngrams(tf.strings.unicode_split(marked, "UTF-8"), 3, separator="")


def trigram_ids(word_lists: tf.RaggedTensor, buckets: int) -> tf.RaggedTensor:
    """Words `[B, None]` -> int64 `[B, None]`: each row's bag of letter-trigram
    ids in `[0, buckets)` (every word's trigrams, in order); a row without
    words has none."""
    per_word = letter_trigrams(word_lists.flat_values)
    ids = tf.strings.to_hash_bucket_fast(per_word.flat_values, buckets)
    # Row r holds the trigrams of its words: word splits mapped through trigram splits.
    return tf.RaggedTensor.from_row_splits(ids, tf.gather(per_word.row_splits,
                                                          word_lists.row_splits))


def trigram_table(token_lists: list[list[str]], buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's words as letter-trigram ids, as a ragged table.

    Returns `(values, row_splits)` of an int64 RaggedTensor `[N + 1, None]`:
    row 0 (the OOV bucket) is empty and row i + 1 holds item i's trigram
    ids (as `tokens.hashed_token_table` does for whole words).
    """
    lengths = [0] + [len(tokens) for tokens in token_lists]
    flat = tf.constant([token for tokens in token_lists for token in tokens], tf.string)
    ids = trigram_ids(tf.RaggedTensor.from_row_lengths(flat, tf.constant(lengths, tf.int64)),
                      buckets)
    return ids.flat_values.numpy().astype(np.int64), ids.row_splits.numpy().astype(np.int64)
