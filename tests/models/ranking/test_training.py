import numpy as np
import pytest

from clicklog.config import ConfigError, parse
from models.channels.clicks import from_lists
from models.channels.config import RecallConfig, TrendingChannelConfig
from models.channels.recall import Recall
from models.channels.trending import TrendingChannel
from models.ranking.config import RankingConfig
from models.ranking.deepfm import CANDIDATES
from models.ranking.ranker import ItemClock, Ranker, item_token_table, log_buckets
from models.ranking.training import PairBuilder, fit, pair_metrics
from tests.models.channels import data

CONFIG = RankingConfig(epochs=4, batch_size=128, sampled_negatives=6, retrieved_negatives=0)


def log(seed: int = 3):
    """(catalogue, training rows, held-out rows, item categories): rows are
    (user, history, item, time); each user's last click is held out."""
    catalogue, by_user, category = data.events(seed=seed)
    train, held_out = [], []
    for user, clicks in by_user.items():
        items = [item for item, _ in clicks]
        train += [(user, items[:n], items[n], clicks[n][1]) for n in range(len(items) - 1)]
        held_out.append((user, items[:-1], items[-1], clicks[-1][1]))
    return catalogue, train, held_out, category


def batches(rows, size: int = 256):
    for start in range(0, len(rows), size):
        part = rows[start:start + size]
        width = max(1, max(len(h) for _, h, _, _ in part))
        yield {"user_id": np.array([u.encode() for u, _, _, _ in part]),
               "item_id": np.array([i.encode() for _, _, i, _ in part]),
               "timestamp": np.array([t for _, _, _, t in part], np.int64),
               "history": np.array([[h.encode() for h in history] + [b""] * (width - len(history))
                                    for _, history, _, _ in part])}


def build(catalogue, train, category, config=CONFIG):
    """(an untrained ranker, training clicks per item, the training clicks' clock)."""
    items = np.array([catalogue.index[item] for _, _, item, _ in train])
    clock = ItemClock(items, np.array([t for _, _, _, t in train]), config.trending_days * 86400)
    features = {"genres": [[category[i]] for i in catalogue.item_ids]}
    return (Ranker.build(config, catalogue.item_ids, clock, [u for u, _, _, _ in train],
                         features), np.bincount(items, minlength=len(catalogue)), clock)


def test_log_buckets_start_at_one_and_are_capped():
    assert log_buckets([0, 1, 3, 7, 1000], 4).tolist() == [1, 2, 3, 4, 4]


def test_the_clock_counts_clicks_strictly_before_the_time_and_in_the_window():
    day = 86400
    clock = ItemClock(np.array([0, 0, 0, 1, -1]), np.array([0, 5 * day, 9 * day, 9 * day, 1]),
                      window_seconds=7 * day)
    total, recent = clock.counts(np.array([0, 0, 0, 1, -1]),
                                 np.array([9 * day, 9 * day + 1, 20 * day, 9 * day, 9 * day]))
    # At day 9 item 0's click of day 9 is not yet counted; the window is days 2 to 9.
    assert total.tolist() == [2, 3, 3, 0, 0]
    assert recent.tolist() == [1, 2, 0, 0, 0]
    assert clock.now == 9 * day + 1
    assert clock.buckets(np.array([[0, -1]]), clock.now, 16).tolist() == [[[3, 2], [0, 0]]]


def test_item_tokens_are_prefixed_by_feature_and_row_zero_is_unknown():
    table, tokens = item_token_table({"genres": [["a", "b"], []], "year": [["1999"], ["2000"]]},
                                     2, max_tokens=8)
    assert tokens == ["genres:a", "genres:b", "year:1999", "year:2000"]
    assert table[0].tolist() == [0, 0, 0]
    assert table[1].tolist() == [1, 2, 3] and table[2].tolist() == [4, 0, 0]


def test_the_ranker_reranks_popular_candidates_better_than_popularity():
    catalogue, train, held_out, category = log()
    ranker, counts, clock = build(catalogue, train, category)
    builder = PairBuilder(ranker, None, counts, CONFIG, seed=0, clock=clock)
    report = fit(ranker, builder.pairs(batches(train)), CONFIG)
    assert report["loss"][-1] < report["loss"][0]
    # Each held-out click re-ranks popularity's 50 best unseen items.
    hits = {"popularity": 0, "ranker": 0}
    for batch in batches(held_out):
        scores = np.tile(counts / counts.max(), (len(batch["item_id"]), 1)).astype(np.float32)
        for row, history in enumerate(batch["history"]):
            scores[row, [catalogue.index[h.decode()] for h in history if h]] = -np.inf
        reranked = ranker.rerank(batch, scores, depth=50)
        targets = np.array([catalogue.index[i.decode()] for i in batch["item_id"]])
        for name, values in (("popularity", scores), ("ranker", reranked)):
            top = np.argsort(-values, axis=1, kind="stable")[:, :10]
            hits[name] += int((top == targets[:, None]).any(axis=1).sum())
    rates = {name: count / len(held_out) for name, count in hits.items()}
    assert rates["ranker"] > rates["popularity"] + 0.1, rates
    # The held-out pairs: clicked items above sampled ones.
    metrics = pair_metrics(ranker, PairBuilder(ranker, None, counts, CONFIG, seed=1)
                           .pairs(batches(held_out)))
    assert metrics["auc"] > 0.75, metrics


def test_rerank_lifts_exactly_the_top_depth_candidates():
    catalogue, train, _, category = log()
    ranker, _, _ = build(catalogue, train[:50], category)
    batch = next(batches(train[:3]))
    scores = np.tile(np.arange(len(catalogue), dtype=np.float32)[::-1], (3, 1))
    reranked = ranker.rerank(batch, scores, depth=5)
    # The top 5 stay above the rest, ordered by the ranker's logits.
    assert (reranked[:, :5].min(axis=1) > reranked[:, 5:].max(axis=1)).all()
    assert np.array_equal(reranked[:, 5:], scores[:, 5:])
    logits = ranker.score(batch, np.tile(np.arange(5), (3, 1)))
    assert np.array_equal(np.argsort(-reranked[:, :5], axis=1), np.argsort(-logits, axis=1))


def test_retrieved_negatives_come_from_the_merged_top_and_never_the_click():
    catalogue, train, _, category = log()
    clicks = from_lists([u for u, _, _, _ in train], [i for _, _, i, _ in train],
                        [t for _, _, _, t in train], catalogue)
    trending = TrendingChannel.fit(clicks, TrendingChannelConfig())
    recall = Recall({"trending": trending}, catalogue, trending.counts,
                    RecallConfig(channels=("trending",)))
    config = CONFIG.replace(sampled_negatives=0, retrieved_negatives=3, retrieve_depth=4)
    ranker, counts, _ = build(catalogue, train, category, config)
    rows = train[-200:]
    pairs = PairBuilder(ranker, recall, counts, config, seed=0).batch(next(batches(rows)))
    assert pairs[CANDIDATES].shape == (200, 4)
    targets = np.array([catalogue.index[i] + 1 for _, _, i, _ in rows])
    assert np.array_equal(pairs[CANDIDATES][:, 0], targets)
    assert not (pairs[CANDIDATES][:, 1:] == targets[:, None]).any()
    for row, (_, history, item, _) in enumerate(rows):
        order = np.argsort(-trending.counts, kind="stable")
        unseen = [n + 1 for n in order if catalogue.item_ids[n] not in set(history)
                  and catalogue.item_ids[n] != item][:4]
        assert set(pairs[CANDIDATES][row, 1:]) <= set(unseen)


def test_save_and_load_give_the_same_scores(tmp_path):
    catalogue, train, _, category = log()
    ranker, counts, _ = build(catalogue, train[:500], category)
    fit(ranker, PairBuilder(ranker, None, counts, CONFIG.replace(epochs=1), seed=0)
        .pairs(batches(train[:500])), CONFIG.replace(epochs=1))
    ranker.save(str(tmp_path))
    loaded = Ranker.load(str(tmp_path))
    batch = next(batches(train[:20]))
    candidates = np.tile(np.arange(10), (20, 1))
    np.testing.assert_allclose(loaded.score(batch, candidates), ranker.score(batch, candidates),
                               rtol=1e-5, atol=1e-6)
    # An unknown user and items outside the catalogue are scored, not refused.
    unknown = {"user_id": np.array([b"nobody"]), "history": np.array([[b"not-an-item"]]),
               "timestamp": np.array([0])}
    assert np.isfinite(loaded.score(unknown, np.array([[-1, 0]]))).all()


def test_a_ranker_without_negatives_is_refused():
    with pytest.raises(ConfigError, match="sampled_negatives"):
        parse(RankingConfig, {"sampled_negatives": 0, "retrieved_negatives": 0})
