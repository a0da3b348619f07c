import math

import numpy as np
import pytest
import tensorflow as tf

from models import topk_metrics

NONE = topk_metrics.NOT_A_CANDIDATE
MISS = topk_metrics.MISS

# Four clicks over four candidates (ranks are 0-based):
#   row 0: target 2, item 0 seen -> [-inf, .8, .7, .1] -> rank 1
#   row 1: all tied, target 3 -> index order 0, 1, 2, 3 -> rank 3
#   row 2: target not a candidate -> miss
#   row 3: target 0 but 0 is seen -> miss
SCORES = tf.constant([
    [0.9, 0.8, 0.7, 0.1],
    [0.5, 0.5, 0.5, 0.5],
    [0.1, 0.2, 0.3, 0.4],
    [0.4, 0.3, 0.2, 0.1],
])
TARGET = tf.constant([2, 3, NONE, 0])
SEEN = tf.constant([[0, NONE], [NONE, NONE], [NONE, NONE], [0, 1]])


def _ranks():
    return topk_metrics.target_ranks(topk_metrics.mask_seen(SCORES, SEEN), TARGET)


def test_ranks_with_exclusion_ties_and_missing_targets():
    np.testing.assert_array_equal(_ranks(), [1, 3, MISS, MISS])


def test_tie_with_the_target_ranks_lower_indices_first():
    scores = tf.constant([[0.5, 0.9, 0.5, 0.5]])
    # Target 2 ties with 0 (before it) and 3 (after it); 1 scores higher.
    assert topk_metrics.target_ranks(scores, tf.constant([2]))[0] == 2
    assert topk_metrics.target_ranks(scores, tf.constant([0]))[0] == 1


def test_metrics_by_hand_including_k_larger_than_the_catalogue():
    accumulator = topk_metrics.RankingAccumulator([1, 2, 10], num_candidates=4)
    masked = topk_metrics.mask_seen(SCORES, SEEN)
    accumulator.add(_ranks(), topk_metrics.top_candidates(masked, 10))
    m = accumulator.metrics()
    # K=1: no click at rank 0.
    assert m["recall@1"] == m["precision@1"] == m["ndcg@1"] == m["map@1"] == 0.0
    # K=2: row 0 at rank 1 -> recall 1/4, precision (1/2)/4, F1 (2/3)/4,
    # AP (1/2)/4, NDCG (1/log2 3)/4.
    assert m["recall@2"] == pytest.approx(0.25)
    assert m["precision@2"] == pytest.approx(0.125)
    assert m["f1@2"] == pytest.approx(1 / 6)
    assert m["map@2"] == pytest.approx(0.125)
    assert m["ndcg@2"] == pytest.approx(1 / math.log2(3) / 4)
    # K=10 > N=4: rows 0 (rank 1) and 1 (rank 3) -> recall 2/4; precision
    # still divides by K: (2/10)/4; F1 2 x (2/11)/4; AP (1/2 + 1/4)/4.
    assert m["recall@10"] == pytest.approx(0.5)
    assert m["precision@10"] == pytest.approx(0.05)
    assert m["f1@10"] == pytest.approx(1 / 11)
    assert m["map@10"] == pytest.approx(0.1875)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / 4)
    # MRR has no cut-off: (1/2 + 1/4 + 0 + 0)/4.
    assert m["mrr"] == pytest.approx(0.1875)
    # Every item tops some list: row 1 -> 0, row 0 -> 1, row 3 -> 2, row 2 -> 3.
    assert m["coverage@1"] == 1.0
    assert accumulator.recall_curve()[:4] == [0.0, 0.25, 0.25, 0.5]


def test_user_with_every_item_seen_gets_no_hit_and_covers_nothing():
    scores = tf.constant([[0.3, 0.2]])
    masked = topk_metrics.mask_seen(scores, tf.constant([[0, 1]]))
    ranks = topk_metrics.target_ranks(masked, tf.constant([1]))
    top = topk_metrics.top_candidates(masked, 5)
    np.testing.assert_array_equal(ranks, [MISS])
    np.testing.assert_array_equal(top, [[NONE, NONE]])  # fewer than K: 2 slots, both empty
    accumulator = topk_metrics.RankingAccumulator([1, 5], num_candidates=2)
    accumulator.add(ranks, top)
    assert accumulator.metrics() == {
        **{f"{m}@{k}": 0.0 for m in ("recall", "precision", "f1", "map", "ndcg", "coverage")
           for k in (1, 5)}, "mrr": 0.0}


def test_fewer_unseen_candidates_than_k_still_ranks_the_target():
    scores = tf.constant([[0.1, 0.9, 0.5]])
    masked = topk_metrics.mask_seen(scores, tf.constant([[1]]))
    # Unseen: 2 (0.5), 0 (0.1); target 0 -> rank 1; top 3 has one empty slot.
    assert topk_metrics.target_ranks(masked, tf.constant([0]))[0] == 1
    np.testing.assert_array_equal(topk_metrics.top_candidates(masked, 3), [[2, 0, NONE]])


def test_coverage_counts_distinct_items_in_top_k():
    # Popularity [5, 3, 1] for two clicks: both top-1 lists are item 0, so
    # coverage@1 = 1/3; the second click has item 0 seen -> its top 1 is item 1.
    scores = topk_metrics.popularity_scorer([5, 3, 1])({"item_id": tf.constant(["a", "b"])})
    accumulator = topk_metrics.RankingAccumulator([1, 2], num_candidates=3)
    masked = topk_metrics.mask_seen(scores, tf.constant([[NONE], [NONE]]))
    accumulator.add(topk_metrics.target_ranks(masked, tf.constant([2, 2])),
                    topk_metrics.top_candidates(masked, 2))
    assert accumulator.metrics()["coverage@1"] == pytest.approx(1 / 3)
    assert accumulator.metrics()["coverage@2"] == pytest.approx(2 / 3)
    masked = topk_metrics.mask_seen(scores[:1], tf.constant([[0]]))
    accumulator.add(topk_metrics.target_ranks(masked, tf.constant([2])),
                    topk_metrics.top_candidates(masked, 2))
    assert accumulator.metrics()["coverage@1"] == pytest.approx(2 / 3)
    assert accumulator.metrics()["coverage@2"] == pytest.approx(1.0)


def test_streaming_over_batches_equals_one_batch():
    rng = np.random.default_rng(0)
    scores = tf.constant(rng.normal(size=(10, 7)).astype(np.float32))
    target = tf.constant(rng.integers(-1, 7, size=10))
    seen = tf.constant(rng.integers(-1, 7, size=(10, 2)))
    masked = topk_metrics.mask_seen(scores, seen)
    whole = topk_metrics.RankingAccumulator([1, 3, 5], 7)
    whole.add(topk_metrics.target_ranks(masked, target), topk_metrics.top_candidates(masked, 5))
    parts = topk_metrics.RankingAccumulator([1, 3, 5], 7)
    for rows in (slice(0, 4), slice(4, 10)):
        parts.add(topk_metrics.target_ranks(masked[rows], target[rows]),
                  topk_metrics.top_candidates(masked[rows], 5))
    assert parts.metrics() == pytest.approx(whole.metrics())
    assert parts.recall_curve() == pytest.approx(whole.recall_curve())


def test_breakdown_recall_is_within_each_group():
    accumulator = topk_metrics.RankingAccumulator([1, 2], num_candidates=4)
    ranks = np.array([0, 1, MISS, 0])
    accumulator.add(ranks, np.zeros((4, 2), np.int64),
                    groups={"history": ["none", "long", "long", "long"],
                            "item_popularity": ["head", "tail", None, "head"]})
    got = accumulator.breakdowns()
    assert got["history"]["none"] == {"num_examples": 1, "recall@1": 1.0, "recall@2": 1.0}
    assert got["history"]["long"] == pytest.approx(
        {"num_examples": 3, "recall@1": 1 / 3, "recall@2": 2 / 3})
    assert got["item_popularity"] == {
        "head": {"num_examples": 2, "recall@1": 1.0, "recall@2": 1.0},
        "tail": {"num_examples": 1, "recall@1": 0.0, "recall@2": 1.0}}


def test_popularity_buckets_by_cumulative_click_share():
    # Shares of clicks before each item (most clicked first): 0, .5, .8, .9.
    np.testing.assert_array_equal(
        topk_metrics.popularity_buckets([5, 3, 1, 1], 0.5, 0.3), [0, 1, 2, 2])
    # Same counts shuffled; the tie of the two 1s does not matter here.
    np.testing.assert_array_equal(
        topk_metrics.popularity_buckets([1, 5, 1, 3], 0.5, 0.3), [2, 0, 2, 1])
    # Equal counts: the lower index comes first (shares before: 0, .5).
    np.testing.assert_array_equal(topk_metrics.popularity_buckets([2, 2], 0.5, 0.5), [0, 1])


def test_popularity_scorer_broadcasts_the_counts_to_every_click():
    scorer = topk_metrics.popularity_scorer([5, 3])
    np.testing.assert_array_equal(scorer({"item_id": tf.constant(["x", "y"])}).numpy(),
                                  [[5, 3], [5, 3]])


def _batch(items, histories):
    return {"item_id": tf.constant(items), "history": tf.constant(histories)}


def test_rank_clicks_excludes_the_recent_history_and_splits_large_batches():
    # Candidates a, b, c scored 3, 2, 1 for every click.
    # Click 1: item b, history [a]: a excluded -> b ranks 0.
    # Click 2: item c, history [c, a] (a most recent): with exclude 1 only a
    #   is excluded -> c ranks 1; with exclude 2 c itself is seen -> a miss.
    # Click 3: item z (not a candidate): a miss for every scorer.
    batches = [_batch(["b", "c", "z"], [["a", ""], ["c", "a"], ["", ""]])]
    scores = tf.constant([[3.0, 2.0, 1.0]] * 3)

    def score(batch):
        rows = int(batch["item_id"].shape[0])
        return {"fixed": scores[:rows], "reversed": -scores[:rows]}

    one = topk_metrics.rank_clicks(batches, score, ["a", "b", "c"], (1, 2), exclude_history=1,
                                   max_rows=2)
    assert set(one) == {"fixed", "reversed"} and one["fixed"].examples == 3
    assert one["fixed"].metrics()["recall@1"] == pytest.approx(1 / 3)
    assert one["fixed"].metrics()["recall@2"] == pytest.approx(2 / 3)
    two = topk_metrics.rank_clicks(batches, score, ["a", "b", "c"], (1, 2), exclude_history=2)
    assert two["fixed"].metrics()["recall@2"] == pytest.approx(1 / 3)
    # Reversed scores rank c first: click 2 (exclude 1) hits at rank 0,
    # click 1 (b, a excluded) at rank 1.
    assert one["reversed"].metrics()["recall@1"] == pytest.approx(1 / 3)
    assert one["reversed"].metrics()["recall@2"] == pytest.approx(2 / 3)


def test_first_clicks_cuts_the_batches_to_a_total():
    batches = [_batch(["a", "b", "c"], [[""]] * 3), _batch(["d", "e"], [[""]] * 2)]
    cut = list(topk_metrics.first_clicks(batches, 4))
    assert [b["item_id"].numpy().tolist() for b in cut] == [[b"a", b"b", b"c"], [b"d"]]
