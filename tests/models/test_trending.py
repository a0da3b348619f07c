"""The trending prior inside training (`model.prior.in_training`)."""

import numpy as np
import pytest
import tensorflow as tf

from models import trending
from models.losses.bce import bce_loss
from models.losses.softmax import softmax_loss
from models.losses.triplet import triplet_hinge_loss, triplet_logistic_loss
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import single_model_config, write_tiny_data


def counts_before(item_ids, clicked_items, timestamps, oldest, bucket_seconds) -> np.ndarray:
    """The reference table, click by click: row r (item r - 1; row 0 the OOV
    row) at column b counts the item's clicks in buckets < b."""
    buckets = [max(int(np.floor((t - oldest) / bucket_seconds)), 0) for t in timestamps]
    width = max(buckets) + 2
    table = np.zeros((len(item_ids) + 1, width), np.float32)
    for item, bucket in zip(clicked_items, buckets, strict=True):
        if item in item_ids:
            table[item_ids.index(item) + 1, bucket + 1:] += 1.0
    return table


def test_counts_before_each_bucket_per_item():
    # Buckets of 10 s from t=100: a at 100 (b0), 105 (b0), 121 (b2); b at 115 (b1);
    # "x" is not a candidate and is not counted.
    table = counts_before(["a", "b"], ["a", "a", "b", "a", "x"],
                                   np.array([100, 105, 115, 121, 101]), 100.0, 10.0)
    np.testing.assert_array_equal(table, [[0, 0, 0, 0],    # OOV row
                                          [0, 2, 2, 3],    # a: clicks in buckets < b
                                          [0, 0, 1, 1]])   # b


def test_window_counts_are_the_clicks_in_the_buckets_before_the_query():
    # 25 buckets of 1 s; item a clicked once in every bucket, b only in bucket 3.
    items = ["a"] * 25 + ["b"]
    times = np.array(list(range(25)) + [3])
    table = counts_before(["a", "b"], items, times, 0.0, 1.0)
    prior = trending.TrendingPrior(["a", "b"], table, 0.0, 1.0, initial_beta=2.0)
    counts = prior.window_counts(tf.constant([0, 5, 20], tf.int64),
                                 tf.constant(["a", "b", "zzz"])).numpy()
    # Window = the 10 buckets before the query's bucket (its own excluded).
    np.testing.assert_array_equal(counts, [[0, 0, 0], [5, 1, 0], [10, 0, 0]])
    offset = prior(tf.constant([5], tf.int64), tf.constant(["a", "b"])).numpy()
    np.testing.assert_allclose(offset, [[2.0 * np.log(6.0), 2.0 * np.log(2.0)]], rtol=1e-6)


def test_window_is_vocab_stats_recent_window():
    assert trending.window_seconds({"max_timestamp": 1000, "recent_start_timestamp": 900}) == 100
    assert trending.window_seconds({"max_timestamp": 1000, "min_timestamp": 0}) == 100


def test_softmax_logit_offset_is_added_to_the_logits():
    query = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    candidates = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    offset = tf.constant([[0.0, 1.5], [0.5, 0.0]])
    got = float(softmax_loss(query, candidates, temperature=0.5, logit_offset=offset))
    # Logits: row 0 [2, 0] + [0, 1.5] = [2, 1.5]; row 1 [0, 4] + [0.5, 0] = [0.5, 4].
    expected = -np.log(np.exp(2) / (np.exp(2) + np.exp(1.5))) - np.log(
        np.exp(4) / (np.exp(0.5) + np.exp(4)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_trending_prior_training_learns_and_exports_its_weight(tmp_path):
    data = write_tiny_data(tmp_path)
    config = single_model_config(towers={"embedding_dim": 8}, prior={"in_training": True,
                                                                     "grid": []},
                                 training={"batch_size": 16, "epochs": 2})
    logs = train(data["train"], data["vocab"], config, str(tmp_path / "towers"))
    learned = logs["trending_prior_learned_weight"]
    towers = Towers(str(tmp_path / "towers"))
    assert towers.config.prior.weight == learned
    width = 9 if learned else 8
    assert towers.candidate_embeddings().shape == (towers.vocab.num_items, width)
    assert towers.query_embeddings(["u1"], [["i1", "i2"]]).shape == (1, width)


def test_pairwise_and_pointwise_losses_add_the_offset_to_their_scores():
    # One query, candidates [positive, negative]: raw scores [1, 2], offset
    # (score units) [0.5, -2] -> scores [1.5, 0]. pair_negatives: column 1.
    query = tf.constant([[1.0, 0.0]])
    candidates = tf.constant([[1.0, 0.0], [2.0, 0.0]])
    offset = tf.constant([[0.5, -2.0]])
    temperature = 0.5
    bce = float(bce_loss(query, candidates, num_negatives=1, temperature=temperature,
                                score_offset=offset))
    # -log s(1.5 / 0.5) - log(1 - s(0 / 0.5))
    assert bce == pytest.approx(np.log1p(np.exp(-3.0)) + np.log(2.0), rel=1e-5)
    hinge = float(triplet_hinge_loss(query, candidates, num_negatives=1, margin=2.0,
                                            score_offset=offset))
    assert hinge == pytest.approx(2.0 - (1.5 - 0.0), rel=1e-6)
    logistic = float(triplet_logistic_loss(query, candidates, num_negatives=1,
                                                  temperature=temperature,
                                                  score_offset=offset))
    assert logistic == pytest.approx(np.log1p(np.exp((0.0 - 1.5) / temperature)), rel=1e-5)
    # Without the offset the negative wins: the offset is what changed them.
    assert float(triplet_hinge_loss(query, candidates, num_negatives=1,
                                           margin=2.0)) == pytest.approx(3.0)


def test_counts_from_files_equal_counts_from_clicks(tmp_path):
    data = write_tiny_data(tmp_path)
    spec = {"item_id": tf.io.FixedLenFeature([], tf.string),
            "timestamp": tf.io.FixedLenFeature([], tf.int64)}
    parsed = [tf.io.parse_single_example(r, spec) for r in
              tf.data.TFRecordDataset([data["train"]], compression_type="GZIP")]
    items = [p["item_id"].numpy().decode() for p in parsed]
    times = np.array([int(p["timestamp"].numpy()) for p in parsed])
    candidates = sorted(set(items))[:20]  # clicks of the other items are not counted
    expected = counts_before(candidates, items, times, 1_600_000_000.0, 45.0)
    got = trending.counts_before_from_files(data["train"], candidates, 1_600_000_000.0, 45.0,
                                            batch_size=7)  # several batches
    np.testing.assert_array_equal(got, expected)
    assert got[-1, -1] > 0 and got.shape == (21, int((300 // 45) + 2))


@pytest.mark.parametrize("loss", ["bce", "triplet_hinge"])
def test_trending_prior_training_with_other_losses(loss, tmp_path):
    data = write_tiny_data(tmp_path)
    config = single_model_config(towers={"embedding_dim": 8}, loss={"kind": loss},
                                 prior={"in_training": True, "grid": []},
                                 training={"batch_size": 16, "epochs": 1})
    logs = train(data["train"], data["vocab"], config, str(tmp_path / "towers"))
    assert np.isfinite(logs["loss"])
    assert Towers(str(tmp_path / "towers")).config.prior.weight == \
        logs["trending_prior_learned_weight"]
