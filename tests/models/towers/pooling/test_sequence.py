"""The self-attention (SASRec) pooling on random embeddings: shapes, empty
histories, order, padding, masked items, causality, dropout and graph mode."""

import numpy as np
import pytest
import tensorflow as tf

from models.towers.pooling.mean import MeanPooling
from models.towers.pooling.sequence import (
    SelfAttentionBlock,
    SequencePooling,
    positions_from_most_recent,
)
from tests.conftest import single_model_config

DIM = 4
ITEMS = tf.random.stateless_normal([6, DIM], seed=[1, 2])  # six items' embeddings


def _config(**history):
    return single_model_config(towers={"embedding_dim": DIM},
                               history={"pooling": "self_attention", "max_history": 8,
                                        "sequence_heads": 2, **history})


def _histories(rows: list[list[int]], length: int):
    """Embeddings `[B, length, D]` and mask of item-index rows, left-aligned;
    padding positions hold a (masked) embedding of their own."""
    padding = tf.fill([DIM], 9.0)
    embeddings = [[ITEMS[i] for i in row] + [padding] * (length - len(row)) for row in rows]
    mask = [[1.0] * len(row) + [0.0] * (length - len(row)) for row in rows]
    return tf.stack([tf.stack(row) for row in embeddings]), tf.constant(mask)[..., None]


def test_positions_count_real_items_back_from_the_most_recent():
    mask = tf.constant([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(positions_from_most_recent(mask).numpy(),
                                  [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("width,pooled", [(0, DIM), (6, 6)])
def test_shape_is_the_width_and_an_empty_history_pools_to_zeros(width, pooled):
    pooling = SequencePooling(_config(sequence_width=width))
    embeddings, mask = _histories([[0, 1, 2], [3], []], length=5)
    out = pooling(embeddings, mask).numpy()
    assert out.shape == (3, pooled)
    np.testing.assert_array_equal(out[2], np.zeros(pooled))
    assert np.all(np.abs(out[:2]).sum(axis=1) > 0)


def test_order_matters_unlike_the_mean():
    embeddings, mask = _histories([[0, 1, 2, 3], [3, 2, 1, 0]], length=6)
    sequence = SequencePooling(_config())(embeddings, mask).numpy()
    mean = MeanPooling(_config())(embeddings, mask).numpy()
    np.testing.assert_allclose(mean[0], mean[1], rtol=1e-6)
    assert np.abs(sequence[0] - sequence[1]).max() > 1e-2


def test_the_same_history_pools_alike_whatever_its_padding():
    pooling = SequencePooling(_config())
    short = pooling(*_histories([[0, 1, 2], [4]], length=3)).numpy()
    long = pooling(*_histories([[0, 1, 2], [4]], length=8)).numpy()
    np.testing.assert_allclose(short, long, rtol=1e-5, atol=1e-6)
    # Padding on the left or in the middle (only real items count) changes nothing.
    embeddings, _ = _histories([[5, 0, 5, 1, 2]], length=5)
    mask = tf.constant([[0.0, 1.0, 0.0, 1.0, 1.0]])[..., None]
    np.testing.assert_allclose(pooling(embeddings, mask).numpy()[0], short[0],
                               rtol=1e-5, atol=1e-6)


def test_only_the_real_items_count():
    pooling = SequencePooling(_config())
    embeddings, mask = _histories([[0, 1, 2]], length=6)
    first = pooling(embeddings, mask).numpy()
    changed = tf.tensor_scatter_nd_update(embeddings, [[0, 4]], [tf.fill([DIM], -3.0)])
    np.testing.assert_array_equal(pooling(changed, mask).numpy(), first)
    changed = tf.tensor_scatter_nd_update(embeddings, [[0, 0]], [ITEMS[5]])
    assert np.abs(pooling(changed, mask).numpy() - first).max() > 1e-3


def test_a_dropped_item_acts_as_if_absent():
    # Training-time history dropout zeroes the mask in the middle of a history.
    pooling = SequencePooling(_config(sequence_dropout=0.0))
    embeddings, _ = _histories([[0, 1, 2, 3]], length=4)
    dropped = pooling(embeddings, tf.constant([[1.0, 0.0, 1.0, 1.0]])[..., None],
                      training=True).numpy()
    without = pooling(*_histories([[0, 2, 3]], length=4), training=True).numpy()
    np.testing.assert_allclose(dropped, without, rtol=1e-5, atol=1e-6)


def test_attention_is_causal():
    block = SelfAttentionBlock(DIM, heads=2, dropout=0.0, seed=0)
    x = tf.random.stateless_normal([1, 4, DIM], seed=[3, 4])
    mask = tf.ones([1, 4, 1])
    allowed = tf.linalg.band_part(tf.ones([4, 4]), -1, 0)[None]
    first = block(x, allowed, mask).numpy()
    later = block(tf.concat([x[:, :2], -x[:, 2:]], axis=1), allowed, mask).numpy()
    np.testing.assert_allclose(later[:, :2], first[:, :2], rtol=1e-5, atol=1e-6)
    assert np.abs(later[:, 2:] - first[:, 2:]).max() > 1e-3


def test_dropout_is_training_only_and_graph_mode_takes_any_batch_and_length():
    pooling = SequencePooling(_config(sequence_dropout=0.5))
    embeddings, mask = _histories([[0, 1, 2, 3, 4]] * 16, length=8)
    served = pooling(embeddings, mask).numpy()
    np.testing.assert_allclose(served, np.repeat(served[:1], 16, axis=0), rtol=1e-6)
    trained = pooling(embeddings, mask, training=True).numpy()
    assert len(np.unique(trained.round(5), axis=0)) > 1
    graph = tf.function(pooling.call, input_signature=[
        tf.TensorSpec([None, None, DIM]), tf.TensorSpec([None, None, 1])])
    np.testing.assert_allclose(graph(embeddings[:3], mask[:3]).numpy(), served[:3], rtol=1e-5)
    short = _histories([[0], []], length=1)
    np.testing.assert_allclose(graph(*short).numpy(), pooling(*short).numpy(), rtol=1e-5)


def test_heads_must_divide_the_width():
    from clicklog.config import ConfigError

    with pytest.raises(ConfigError, match="model.history.sequence_heads=3: expected a divisor"):
        _config(sequence_heads=3)
    assert _config(sequence_heads=3, pooling="mean").history.sequence_heads == 3
