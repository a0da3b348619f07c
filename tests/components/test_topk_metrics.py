import numpy as np
import tensorflow as tf

from components import topk_metrics

NONE = topk_metrics.NOT_A_CANDIDATE


def test_hits_with_exclusion_ties_and_missing_targets():
    scores = tf.constant([
        [0.9, 0.8, 0.7, 0.1],   # target 2; item 0 seen -> ranking 1, 2, 3 -> rank 1 (0-based)
        [0.5, 0.5, 0.5, 0.5],   # all tied -> index order 0, 1, 2, 3; target 3 -> rank 3
        [0.1, 0.2, 0.3, 0.4],   # target not a candidate -> miss
        [0.4, 0.3, 0.2, 0.1],   # target 0 but 0 is seen -> never a hit
    ])
    target = tf.constant([2, 3, NONE, 0])
    seen = tf.constant([[0, NONE], [NONE, NONE], [NONE, NONE], [0, 1]])
    hits = topk_metrics.hits_at_k(scores, target, seen, [1, 2, 4, 10])
    # K=1: none. K=2: row 0. K=4: rows 0, 1. K=10 (> N) counts as N=4.
    assert hits == {1: 0, 2: 1, 4: 2, 10: 2}


def test_user_with_every_item_seen_gets_no_hit():
    scores = tf.constant([[0.3, 0.2]])
    hits = topk_metrics.hits_at_k(scores, tf.constant([1]), tf.constant([[0, 1]]), [1, 2])
    assert hits == {1: 0, 2: 0}


def test_counter_hit_rates_per_scorer():
    counter = topk_metrics.HitCounter([1, 2])
    counter.examples = 2
    scores = tf.constant([[0.9, 0.1, 0.0], [0.0, 0.2, 0.9]])
    counter.add("a", scores, tf.constant([0, 1]), tf.constant([[NONE], [NONE]]))
    counter.add("pop", topk_metrics.popularity_scores([5, 3, 1], 2), tf.constant([0, 1]),
                tf.constant([[NONE], [NONE]]))
    rates = counter.hit_rates()
    assert rates["a"] == {"hit_rate@1": 0.5, "hit_rate@2": 1.0}
    assert rates["pop"] == {"hit_rate@1": 0.5, "hit_rate@2": 1.0}
    np.testing.assert_array_equal(topk_metrics.popularity_scores([5, 3], 2).numpy(),
                                  [[5, 3], [5, 3]])
