import numpy as np
import pytest
import scipy.sparse

from models.channels import merge
from models.channels.config import MergeConfig

CHANNELS = ("a", "b")


def setting(weights: dict, quotas: dict) -> merge.MergeSetting:
    return merge.MergeSetting({bucket: dict(weights) for bucket in merge.HISTORY_BUCKETS},
                              {bucket: dict(quotas) for bucket in merge.HISTORY_BUCKETS})


def no_seen(rows: int, items: int) -> scipy.sparse.csr_matrix:
    return scipy.sparse.csr_matrix((rows, items), dtype=np.float32)


def test_ranked_lists_skip_seen_items_and_unanswered_requests():
    scores = np.array([[0.1, 0.9, 0.5, 0.3], [0.4, 0.3, 0.2, 0.1]], np.float32)
    seen = scipy.sparse.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]], np.float32))
    ranked = merge.ranked_lists(scores, np.array([True, False]), seen, depth=2)
    assert ranked.tolist() == [[2, 3], [-1, -1]]


def test_fuse_adds_weighted_reciprocal_ranks_within_quotas_once_per_item():
    lists = {"a": np.array([[2, 0, 1]]), "b": np.array([[0, 3, 2]])}
    fused = merge.fuse(lists, np.array([2]), setting({"a": 1.0, "b": 2.0}, {"a": 3, "b": 2}),
                       tie=np.zeros(4), rrf_k=0.0)
    # item 0: a's rank 2 (1/2) + b's rank 1 (2/1); item 2: a's rank 1 only (b's rank 3
    # is beyond b's quota of 2); item 3: b's rank 2; item 1: a's rank 3.
    np.testing.assert_allclose(fused[0], [0.5 + 2.0, 1 / 3, 1.0, 1.0], rtol=1e-6)


def test_fuse_ignores_unanswered_rows_fills_by_trending_and_masks_seen():
    lists = {"a": np.array([[-1, -1]]), "b": np.array([[1, 0]])}
    tie = np.array([5.0, 1.0, 9.0])
    seen = scipy.sparse.csr_matrix(np.array([[0, 0, 0]], np.float32))
    fused = merge.fuse(lists, np.array([0]), setting({"a": 1.0, "b": 0.0}, {"a": 2, "b": 2}),
                       tie=tie, rrf_k=60.0, seen=seen)
    # a answers nothing and b weighs 0: trending order alone.
    assert np.argsort(-fused[0]).tolist() == [2, 0, 1]
    seen = scipy.sparse.csr_matrix(np.array([[0, 0, 1]], np.float32))
    fused = merge.fuse(lists, np.array([0]), setting({"a": 1.0, "b": 1.0}, {"a": 2, "b": 2}),
                       tie=tie, rrf_k=60.0, seen=seen)
    assert np.argsort(-fused[0]).tolist()[:2] == [1, 0] and fused[0, 2] == -np.inf


def bucketed_lists(rng, buckets: np.ndarray, targets: np.ndarray, items: int):
    """Channel a ranks the target first for requests without history, and
    randomly otherwise; channel b the reverse."""
    lists = {}
    for channel, good in (("a", 0), ("b", 2)):
        ranked = np.stack([rng.permutation(items) for _ in targets])
        for row, target in enumerate(targets):
            if buckets[row] == good:
                ranked[row] = np.concatenate([[target], [i for i in ranked[row] if i != target]])
        lists[channel] = ranked
    return lists


def test_search_gives_each_bucket_to_its_strong_channel():
    rng = np.random.default_rng(0)
    items, count = 400, 600
    buckets = np.repeat([0, 2], count // 2)
    targets = rng.integers(0, items, size=count)
    lists = bucketed_lists(rng, buckets, targets, items)
    config = MergeConfig(quota_grid=(10, 50), weight_grid=(0.0, 1.0, 2.0))
    chosen, report = merge.search(lists, buckets, targets, no_seen(count, items),
                                  np.zeros(items), config, k=10)
    assert report["none"]["hit_rate@10"] == 1.0
    assert report["long"]["hit_rate@10"] == 1.0
    # The random channel could only crowd out the right one's first item.
    assert report["none"]["alone"]["b"] < 0.2 and report["long"]["alone"]["a"] < 0.2
    assert chosen.weights["none"]["a"] > 0 and chosen.weights["long"]["b"] > 0
    assert report["short"] == {"clicks": 0}


def test_search_is_never_below_the_best_single_channel():
    rng = np.random.default_rng(1)
    items, count = 200, 300
    buckets = np.zeros(count, int)
    targets = rng.integers(0, items, size=count)
    lists = bucketed_lists(rng, buckets, targets, items)  # a is right, b random
    config = MergeConfig(quota_grid=(5, 100), weight_grid=(0.0, 1.0), rounds=1)
    _, report = merge.search(lists, buckets, targets, no_seen(count, items), np.zeros(items),
                             config, k=5)
    assert report["none"]["hit_rate@5"] >= max(report["none"]["alone"].values())
    assert report["none"]["hit_rate@5"] == 1.0


def test_bucket_edges():
    assert merge.bucket_index(np.array([0, 1, 5, 6]), short_history_max=5).tolist() == [
        0, 1, 1, 2]


def test_a_merge_grid_without_a_positive_weight_is_refused():
    with pytest.raises(ValueError, match=r"recall.merge.weight_grid"):
        MergeConfig(weight_grid=(0.0,))
