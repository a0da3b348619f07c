import tensorflow as tf

from models import features


def test_recent_history_keeps_most_recent_and_drops_padding_anywhere():
    history = tf.constant([["a", "b", "c", ""], ["", "", "x", ""], ["", "", "", ""]])
    out = features.recent_history(history, 2).numpy().astype(str).tolist()
    assert out == [["b", "c"], ["x", ""], ["", ""]]


def test_recent_history_from_sparse_and_zero_width():
    sparse = tf.sparse.from_dense(tf.constant([["a", "b", "c"], ["z", "", ""]]))
    assert features.recent_history(sparse, 5).numpy().astype(str).tolist() == [
        ["a", "b", "c", "", ""], ["z", "", "", "", ""]]
    empty = tf.zeros([2, 0], tf.string)
    assert features.recent_history(empty, 1).numpy().astype(str).tolist() == [[""], [""]]
