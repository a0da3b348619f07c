import numpy as np
import scipy.sparse

from models.channels import related
from models.channels.clicks import Catalogue
from models.channels.config import RecallConfig
from models.channels.recall import Recall
from tests.models.channels import data
from tests.models.channels.test_recall import batches


def test_cooccurrence_counts_users_who_clicked_both_and_keeps_the_largest():
    clicks = scipy.sparse.csr_matrix(np.array(
        [[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 1, 1]], np.float32))
    counts = related.cooccurrence(clicks, neighbours=2).toarray()
    assert np.diag(counts).tolist() == [0, 0, 0, 0]
    assert counts[0].tolist() == [0, 2, 2, 0]  # item 3's single co-click is cut
    assert counts[3].tolist() == [1, 0, 1, 0]


def test_related_scores_rank_neighbours_then_trending_never_the_item():
    weights = scipy.sparse.csr_matrix(np.array(
        [[0, 0.5, 0, 0.9], [0, 0, 0, 0], [0.2, 0, 0, 0], [0, 0, 0, 0]], np.float32))
    trending = np.array([1.0, 4.0, 3.0, 2.0])
    scores = related.related_scores(weights, np.array([0, 1]), trending)
    assert np.argsort(-scores[0]).tolist() == [3, 1, 2, 0]
    assert scores[0, 0] == -np.inf
    assert np.argsort(-scores[1]).tolist() == [2, 3, 0, 1]  # no neighbours: trending
    assert related.next_click_hits(weights, np.array([0, 1]), np.array([3, 0]), trending,
                                   k=1) == 1


def test_related_hits_measure_item_cf_against_cooccurrence_on_the_same_clicks():
    catalogue, clicks, held_out = data.log(num_users=300)
    recall = Recall.fit(clicks, catalogue, RecallConfig(channels=("trending", "item_cf")))
    measured = recall.related_hits(batches(held_out), k=20)
    with_history = sum(1 for n, (history, _) in enumerate(held_out) if history and n % 4)
    assert measured["clicks"] == with_history
    # Category structure: both rankings beat trending's share of the catalogue.
    assert measured["hit@20"] > 20 / len(catalogue) + 0.05
    assert measured["cooccurrence_hit@20"] > 20 / len(catalogue) + 0.05


def test_related_items_come_from_item2vec_and_from_content_for_items_without_a_vector():
    from models.channels.content import ContentChannel
    from models.channels.item2vec import Item2VecChannel

    catalogue = Catalogue(["a", "b", "c", "d"])
    vectors = np.array([[1, 0], [1, 0.1], [0, 1], [0, 0]], np.float32)
    item2vec = Item2VecChannel(vectors, vectors, np.array([True, True, True, False]),
                               catalogue, 5)
    content = ContentChannel(scipy.sparse.csr_matrix(np.array(
        [[1, 0], [0, 1], [0, 1], [0, 1]], np.float32)))
    weights, report = related.related_weights({"item2vec": item2vec, "content": content}, 1)
    dense = weights.toarray()
    assert dense[0].argmax() == 1  # item2vec's nearest
    assert dense[3].argmax() in (1, 2) and dense[3, 0] == 0  # content's, for d
    assert report == {"source": "item2vec", "items": 3, "fallback": "content",
                      "fallback_items": 1}
    weights, report = related.related_weights({"item2vec": item2vec}, 1)
    assert not weights.toarray()[3].any() and "fallback" not in report
