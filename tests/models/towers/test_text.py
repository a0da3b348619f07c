"""Letter-trigram word hashing: the words, their trigrams, the per-item tables."""

import numpy as np
import pytest
import tensorflow as tf

from clicklog.catalog import tokenize_text
from models.towers.text import letter_trigrams, trigram_ids, trigram_table, words


def test_a_word_is_marked_and_cut_into_letter_trigrams():
    got = letter_trigrams(tf.constant(["good", "a"])).to_list()
    assert got == [[b"#go", b"goo", b"ood", b"od#"], [b"#a#"]]


@pytest.mark.parametrize("text", ["The Conjuring (2013)", "  Amélie: x-Men_2!", "", "---"])
def test_query_text_splits_into_the_words_the_catalogue_makes_of_titles(text):
    # Titles are split in Python when the catalogue is read (clicklog/catalog.py),
    # query text in the graph: both must give the same words.
    got = [w.decode() for w in words(tf.constant([text])).to_list()[0]]
    assert got == list(tokenize_text(text))


def test_trigram_ids_bag_every_word_of_a_row():
    ids = trigram_ids(tf.ragged.constant([["good", "a"], []]), buckets=97).to_list()
    expected = tf.strings.to_hash_bucket_fast(["#go", "goo", "ood", "od#", "#a#"], 97)
    assert ids == [expected.numpy().tolist(), []]


def test_trigram_table_rows_follow_the_vocabulary_with_an_empty_oov_row():
    values, splits = trigram_table([["good"], [], ["goods"]], buckets=1000)
    assert splits.tolist() == [0, 0, 4, 4, 9]
    good, goods = values[:4].tolist(), values[4:].tolist()
    # A spelling variant shares most trigrams (#go goo ood), where whole-word
    # hashing would share nothing.
    assert len(set(good) & set(goods)) >= 3
    assert trigram_table([[], []], buckets=5)[1].tolist() == [0, 0, 0, 0]


def test_trigram_hashing_is_the_same_in_a_saved_graph(tmp_path):
    """The item tables are hashed eagerly in Python, query text inside the
    served graph: the same text must give the same ids in both."""
    class Hasher(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, text):
            return trigram_ids(words(text), 4096).to_tensor(-1)

    tf.saved_model.save(Hasher(), str(tmp_path / "hasher"))
    served = tf.saved_model.load(str(tmp_path / "hasher"))(tf.constant(["Good Will Hunting"]))
    values, _ = trigram_table([["good", "will", "hunting"]], 4096)
    np.testing.assert_array_equal(served.numpy()[0], values)
