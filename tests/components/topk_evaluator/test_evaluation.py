"""evaluate() on the conftest towers: baselines on the same clicks, streaming."""

import os

import pytest
import tensorflow as tf

from clicklog.formats import Click
from components.click_example_gen.click_features import ClickFeatures
from components.click_example_gen.examples import to_example
from components.topk_evaluator import evaluation
from components.topk_evaluator.config import EvaluationConfig
from models import features, topk_metrics
from models.data import make_dataset
from models.towers_export import Towers


@pytest.fixture(scope="module")
def clicks(towers_dir):
    # conftest wrote its training clicks next to the towers.
    return os.path.join(os.path.dirname(towers_dir), "train.tfrecord.gz")


def _popularity_recall_by_hand(clicks, item_ids, counts, k, exclude):
    """Plain-Python ranking of items by count, seen items removed."""
    order = sorted(range(len(item_ids)), key=lambda i: (-counts[i], i))
    hits = total = 0
    for batch in make_dataset(clicks, 1000, 50, shuffle=False):
        for item, history in zip(batch[features.ITEM_ID].numpy(),
                                 batch[features.HISTORY].numpy(), strict=True):
            seen = set([h.decode() for h in history if h][-exclude:]) if exclude else set()
            ranking = [item_ids[i] for i in order if item_ids[i] not in seen]
            hits += item.decode() in ranking[:k]
            total += 1
    return hits / total


def test_scorers_share_the_clicks_and_batching_does_not_change_results(towers_dir, clicks):
    config = EvaluationConfig(ks=(1, 5, 10), blessing_k=10, short_history_max=2)
    result = evaluation.evaluate(towers_dir, clicks, config, baseline_towers_dir=towers_dir)
    assert result["num_examples"] == 240 and result["num_candidates"] == 30
    # Seen items are excluded as the model serves: its model.export.exclude_history.
    assert result["exclude_history"] == 3
    assert set(result["metrics"]) == {"model", "popularity", "recent_popularity",
                                      "last_blessed"}
    # The last blessed towers are the same towers, scored through another path.
    assert result["metrics"]["last_blessed"] == pytest.approx(result["metrics"]["model"])
    small = evaluation.evaluate(towers_dir, clicks,
                                EvaluationConfig(ks=(1, 5, 10), blessing_k=10, batch_size=7))
    assert small["metrics"]["model"] == pytest.approx(result["metrics"]["model"])
    vocab = Towers(towers_dir).vocab
    for k in (1, 5, 10):
        assert result["metrics"]["popularity"][f"recall@{k}"] == pytest.approx(
            _popularity_recall_by_hand(clicks, vocab.item_ids, vocab.item_counts, k, 3))
    curve = result["recall_curves"]["model"]
    assert len(curve) == 10 and curve[9] == pytest.approx(result["metrics"]["model"]["recall@10"])
    groups = result["breakdowns"]["model"]["history"]
    # Each conftest user clicks 6 items with 0, 1, ..., 5 earlier ones.
    assert {g: groups[g]["num_examples"] for g in groups} == {"none": 40, "short": 80,
                                                              "long": 120}
    buckets = result["breakdowns"]["model"]["item_popularity"]
    assert sum(b["num_examples"] for b in buckets.values()) == 240
    assert result["breakdowns"]["model"]["item_freshness"]["known"]["num_examples"] == 240
    # The blessing protocol's result is also at the top level.
    assert result["protocol"] == "fresh" and set(result["protocols"]) == {"fresh", "frozen"}
    assert result["protocols"]["fresh"]["metrics"] == result["metrics"]
    # These training examples carry no history_at_cutoff: frozen queries have
    # no history (every click in the `none` bucket), so nothing is excluded.
    frozen = result["protocols"]["frozen"]
    assert frozen["breakdowns"]["model"]["history"]["none"]["num_examples"] == 240
    assert frozen["metrics"]["popularity"]["recall@5"] == pytest.approx(
        _popularity_recall_by_hand(clicks, vocab.item_ids, vocab.item_counts, 5, 0))


def _written(tmp_path, clicks) -> str:
    """Eval examples of (user, item, fresh history, frozen history) rows."""
    path = str(tmp_path / "eval.tfrecord.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for n, (user, item, fresh, frozen) in enumerate(clicks):
            writer.write(to_example(Click(user, item, 1_600_000_000 + n),
                                    ClickFeatures(tuple(fresh), -1, 0, tuple(frozen))))
    return path


def test_frozen_protocol_queries_with_the_history_at_the_cutoff(tmp_path):
    # Popularity a > b > c > d. u1 clicks b with a seen before (fresh history
    # [a]) but after the cut-off (frozen history []): fresh excludes a and
    # ranks b first, frozen ranks it second, after a. u2 clicks c with fresh
    # [a, b] and frozen [a]: first fresh (a, b excluded), second frozen (a
    # excluded, b before it; third if a were not excluded).
    path = _written(tmp_path, [("u1", "b", ["a"], []), ("u2", "c", ["a", "b"], ["a"])])
    items, counts = ["a", "b", "c", "d"], [4.0, 3.0, 2.0, 1.0]
    config = EvaluationConfig(ks=(1, 2), blessing_k=2, short_history_max=1)
    scorers = {"popularity": topk_metrics.popularity_scorer(counts)}

    def batches():
        return make_dataset(path, 8, 5, shuffle=False, extra_specs=[tf.TensorSpec(
            [None, None], tf.string, name=features.HISTORY_AT_CUTOFF)])

    fresh = evaluation.evaluate_scorers(batches(), scorers, items, counts, config, 5)
    frozen = evaluation.evaluate_scorers(evaluation.frozen_batches(batches()), scorers, items,
                                         counts, config, 5)
    assert fresh["metrics"]["popularity"]["recall@1"] == 1.0
    assert frozen["metrics"]["popularity"]["recall@1"] == 0.0
    assert frozen["metrics"]["popularity"]["recall@2"] == 1.0
    history = frozen["breakdowns"]["popularity"]["history"]
    assert {g: history[g]["num_examples"] for g in history} == {"none": 1, "short": 1}


def test_excluding_no_history_lets_seen_items_count(towers_dir, clicks):
    vocab = Towers(towers_dir).vocab
    keep = evaluation.evaluate_scorers(
        make_dataset(clicks, 64, 50, shuffle=False),
        {"popularity": topk_metrics.popularity_scorer(vocab.item_counts)}, vocab.item_ids,
        vocab.item_counts, EvaluationConfig(ks=(5,), blessing_k=5), exclude_history=0)
    assert keep["metrics"]["popularity"]["recall@5"] == pytest.approx(
        _popularity_recall_by_hand(clicks, vocab.item_ids, vocab.item_counts, 5, 0))


def test_ann_requests_are_the_first_eval_clicks(clicks):
    users, histories, extra = evaluation.ann_requests(clicks, 5, 50)
    assert extra == {}  # a model without extra query inputs
    first = next(iter(make_dataset(clicks, 5, 50, shuffle=False)))
    assert users == [u.decode() for u in first[features.USER_ID].numpy()]
    assert histories[0] == []  # a user's first click has no history
    assert len(users) == len(histories) == 5
    assert histories[1] == [first[features.HISTORY].numpy()[1][0].decode()]
