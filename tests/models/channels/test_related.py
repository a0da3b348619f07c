import numpy as np
import scipy.sparse

from models.channels import related
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
