import numpy as np

from models.channels.base import Requests
from models.channels.clicks import Catalogue
from models.channels.config import ContentChannelConfig
from models.channels.content import ContentChannel, item_vectors

FEATURES = {"genres": [["Drama"], ["Drama", "War"], ["Comedy"], ["Comedy"], []],
            "title": [["rain"], ["war"], ["rain"], ["fun"], ["lone"]]}


def test_item_vectors_are_unit_tf_idf_rows_of_the_tokens_on_enough_items():
    vectors, vocabulary = item_vectors(FEATURES, min_items=2)
    # genres:War, title:war, title:fun and title:lone are on one item each.
    assert vocabulary == ["genres:Comedy", "genres:Drama", "title:rain"]
    dense = vectors.toarray()
    np.testing.assert_allclose(np.linalg.norm(dense[:4], axis=1), 1.0, rtol=1e-6)
    assert not dense[4].any()
    # Every kept token is on two of five items: equal weights.
    np.testing.assert_allclose(dense[0], [0, 1, 1] / np.sqrt(2), rtol=1e-6)


def test_a_profile_reaches_items_by_shared_tokens_and_an_empty_one_is_not_answered():
    catalogue = Catalogue(["a", "b", "c", "d", "e"])
    channel = ContentChannel.fit(FEATURES, ContentChannelConfig(min_items=2))
    scores, answered = channel.score(Requests({}, catalogue.rows([["a"], ["e"], []])))
    assert answered.tolist() == [True, False, False]
    # a (Drama, rain): b shares Drama, c shares rain, d shares nothing.
    assert scores[0, 1] > 0 and scores[0, 2] > 0 and scores[0, 3] == 0
    assert channel.report == {"features": ["genres", "title"], "tokens": 3,
                              "items_with_tokens": 4}


def test_neighbours_of_chosen_items_only():
    channel = ContentChannel.fit(FEATURES, ContentChannelConfig(min_items=2))
    weights = channel.neighbours(np.array([2]), count=1).toarray()
    assert weights[2].argmax() == 3 or weights[2].argmax() == 0
    assert np.count_nonzero(weights[2]) == 1 and weights[2, 2] == 0
    assert not np.delete(weights, 2, axis=0).any()
