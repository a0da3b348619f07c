import numpy as np
import scipy.sparse

from models.channels.base import Requests
from models.channels.config import ItemCfChannelConfig
from models.channels.item_cf import ItemCfChannel, ease_weights, hit_rate, knn_weights
from tests.models.channels import data


def held_out_hit_rate(channel, catalogue, held_out, k=10) -> float:
    rows = catalogue.rows([history for history, _ in held_out])
    scores, answered = channel.score(Requests({}, rows))
    assert answered.all()
    targets = np.array([catalogue.index[item] for _, item in held_out])
    return hit_rate(scores, targets, rows, k)


def popularity_hit_rate(clicks, catalogue, held_out, k=10) -> float:
    counts = np.asarray(clicks.matrix().sum(axis=0)).ravel()
    rows = catalogue.rows([history for history, _ in held_out])
    targets = np.array([catalogue.index[item] for _, item in held_out])
    return hit_rate(np.tile(counts, (len(held_out), 1)), targets, rows, k)


def test_ease_is_the_closed_form_with_zero_diagonal():
    matrix = scipy.sparse.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]], np.float32))
    lam = 2.0
    inverse = np.linalg.inv(matrix.T.toarray() @ matrix.toarray() + lam * np.eye(3))
    expected = np.eye(3) - inverse / np.diag(inverse)[None, :]
    np.testing.assert_allclose(ease_weights(matrix, lam), expected, atol=1e-6)


def test_knn_keeps_each_items_nearest_neighbours_only():
    matrix = scipy.sparse.csr_matrix(np.array(
        [[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 1, 0, 1]], np.float32))
    weights = knn_weights(matrix, neighbours=1).toarray()
    assert (np.count_nonzero(weights, axis=1) == 1).all()
    assert np.diag(weights).tolist() == [0, 0, 0, 0]
    assert weights[0].argmax() == 1  # item 0 is clicked with item 1 by both its users


def test_ease_and_knn_beat_popularity_on_category_structure():
    catalogue, clicks, held_out = data.log()
    popularity = popularity_hit_rate(clicks, catalogue, held_out)
    ease = ItemCfChannel.fit(clicks, ItemCfChannelConfig())
    assert ease.report["kind"] == "ease"
    assert ease.report["lambda"] in ItemCfChannelConfig().ease_lambdas
    assert ease.report["validation_clicks"] > 0
    knn = ItemCfChannel.fit(clicks, ItemCfChannelConfig(ease_max_items=10, neighbours=20))
    assert knn.report["kind"] == "item_knn"
    assert held_out_hit_rate(ease, catalogue, held_out) > popularity + 0.05
    assert held_out_hit_rate(knn, catalogue, held_out) > popularity + 0.05


def test_an_empty_history_is_not_answered():
    catalogue, clicks, _ = data.log(num_users=50, num_items=30)
    channel = ItemCfChannel.fit(clicks, ItemCfChannelConfig())
    _, answered = channel.score(Requests({}, catalogue.rows([[], [catalogue.item_ids[0]]])))
    assert answered.tolist() == [False, True]


def test_one_lambda_is_taken_without_validation():
    catalogue, clicks, _ = data.log(num_users=60, num_items=30)
    channel = ItemCfChannel.fit(clicks, ItemCfChannelConfig(ease_lambdas=(123.0,)))
    assert channel.report["lambda"] == 123.0 and channel.report["validation_clicks"] == 0
