import numpy as np
import pytest

from models.channels.base import Requests
from models.channels.clicks import Catalogue, from_lists
from models.channels.config import Item2VecChannelConfig
from models.channels.item2vec import (
    NO_VECTOR,
    Item2VecChannel,
    NegativeSampler,
    item_categories,
    pairs,
    sessions,
)
from models.channels.item_cf import hit_rate
from tests.models.channels import data
from tests.models.channels.test_item_cf import popularity_hit_rate

HOUR = 3600


def requests(catalogue, histories):
    width = max(1, max(len(h) for h in histories))
    batch = {"history": np.array([[i.encode() for i in h] + [b""] * (width - len(h))
                                  for h in histories])}
    return Requests(batch, catalogue.rows(histories))


def test_sessions_split_users_and_gaps_longer_than_the_setting():
    catalogue = Catalogue(["a", "b", "c", "d"])
    clicks = from_lists(["u", "u", "u", "v", "u"], ["a", "b", "c", "d", "outside"],
                        [0, 1 * HOUR, 5 * HOUR, 2 * HOUR, 6 * HOUR], catalogue)
    items, session = sessions(clicks, gap_hours=3)
    # u: a b | c (4 hours apart); v: d; the click outside the catalogue is dropped.
    assert [catalogue.item_ids[i] for i in items] == ["a", "b", "c", "d"]
    assert session.tolist() == [0, 0, 1, 2]
    _, one_per_user = sessions(clicks, gap_hours=0)
    assert one_per_user.tolist() == [0, 0, 0, 1]


def test_pairs_stay_inside_the_window_and_session_and_the_global_context_is_added():
    items = np.array([0, 1, 2, 3, 4, 5])
    session = np.array([0, 0, 0, 0, 1, 1])
    centre, context = pairs(items, session, window=1, global_context=False)
    assert sorted(zip(centre.tolist(), context.tolist(), strict=True)) == [
        (0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2), (4, 5), (5, 4)]
    centre, context = pairs(items, session, window=1, global_context=True)
    extra = set(zip(centre.tolist(), context.tolist(), strict=True)) - {
        (0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2), (4, 5), (5, 4)}
    # Session 0 ends with item 3: the items more than one step before it
    # gain it as context; item 2 already has it in its window.
    assert extra == {(0, 3), (1, 3)}


def test_same_category_negatives_come_from_the_positives_category():
    categories = np.array([0, 0, 1, 1, 1, -1])
    sampler = NegativeSampler(np.ones(6), 0.75, categories, np.random.default_rng(0))
    drawn = sampler.draw(np.array([0, 2, 5] * 50), total=4, same_category=2)
    assert set(drawn[0::3, :2].ravel()) <= {0, 1}
    assert set(drawn[1::3, :2].ravel()) <= {2, 3, 4}
    # Without a category, every negative is drawn by count.
    assert len(set(drawn[2::3].ravel())) > 3


def test_item_categories_take_each_items_first_token():
    categories = item_categories({"genres": [["x", "y"], [], ["y"]]}, "genres", 3)
    assert categories[1] == -1
    assert categories[0] != categories[2]
    assert (item_categories(None, "genres", 3) == -1).all()


@pytest.mark.parametrize("options", [{}, {"global_context": False},
                                     {"same_category_negatives": 2}])
def test_item2vec_beats_popularity_on_held_out_next_clicks(options):
    catalogue, clicks, held_out = data.log()
    # A small log: smaller batches and more epochs for enough steps.
    config = Item2VecChannelConfig(epochs=10, batch_size=512, **options)
    channel = Item2VecChannel.fit(clicks, catalogue, config, data.item_features(catalogue))
    histories = [history for history, _ in held_out]
    scores, answered = channel.score(requests(catalogue, histories))
    assert answered.all()
    targets = np.array([catalogue.index[item] for _, item in held_out])
    ours = hit_rate(scores, targets, catalogue.rows(histories), 10)
    assert ours > popularity_hit_rate(clicks, catalogue, held_out) + 0.05
    assert channel.report["pairs"] > 0
    assert channel.report["epoch_loss"][-1] < channel.report["epoch_loss"][0]


def test_a_request_pools_its_most_recent_items_and_items_without_a_vector_rank_last():
    catalogue = Catalogue(["a", "b", "c", "d"])
    vectors = np.array([[1, 0], [0, 1], [1, 1], [5, 5]], np.float32)
    channel = Item2VecChannel(vectors, vectors, np.array([True, True, True, False]), catalogue,
                              pool_items=1)
    scores, answered = channel.score(requests(catalogue, [["a", "b"], ["b", "a", "b"], ["d"],
                                                          []]))
    assert answered.tolist() == [True, True, False, False]
    # Pooled from b, the most recent (b's latest click in the second): b . u.
    np.testing.assert_allclose(scores[0, :3], [0, 1, 1])
    np.testing.assert_allclose(scores[1, :3], [0, 1, 1])
    assert (scores[:, 3] == NO_VECTOR).all()


def test_neighbours_have_the_largest_logit_never_the_item_or_one_without_a_vector():
    catalogue = Catalogue(["a", "b", "c", "d"])
    centre = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], np.float32)
    context = np.array([[0, 1], [2, 0], [1, 0], [9, 9]], np.float32)
    channel = Item2VecChannel(centre, context, np.array([True, True, True, False]),
                              catalogue, 5)
    weights = channel.neighbours(count=1).toarray()
    assert weights[0].argmax() == 1  # a . u: b 2, c 1
    assert weights[1].argmax() == 0 and weights[2].argmax() == 0
    assert np.diag(weights).tolist() == [0, 0, 0, 0]
    assert not weights[3].any() and not weights[:, 3].any()
