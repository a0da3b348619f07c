import numpy as np
import pytest

from models import features
from models.channels.config import RecallConfig
from models.channels.item_cf import hit_rate
from models.channels.recall import MERGED, WITHOUT, Recall
from tests.models.channels import data

CHANNELS = ["trending", "item_cf", "wals"]


def batches(held_out, size=100):
    """Requests as the evaluator reads them; every fourth one without history
    (a user new at training time)."""
    length = max(len(history) for history, _ in held_out)
    for start in range(0, len(held_out), size):
        part = held_out[start:start + size]
        histories = [[] if (start + n) % 4 == 0 else history
                     for n, (history, _) in enumerate(part)]
        yield {features.USER_ID: np.array([f"u{start + n}".encode() for n in range(len(part))]),
               features.ITEM_ID: np.array([item.encode() for _, item in part]),
               features.HISTORY: np.array([[h.encode() for h in history]
                                           + [b""] * (length - len(history))
                                           for history in histories])}


@pytest.fixture(scope="module")
def fitted():
    catalogue, clicks, held_out = data.log(num_users=600)
    config = RecallConfig(channels=tuple(CHANNELS), merge={"rounds": 1,
                                                           "quota_grid": (10, 50),
                                                           "weight_grid": (0.0, 0.5, 1.0)})
    recall = Recall.fit(clicks, catalogue, config)
    reports = recall.tune(batches(held_out[:300]), k=10)
    return recall, reports, held_out[300:]


def rates(recall, held_out, k=10) -> dict:
    out: dict = {}
    for batch in batches(held_out):
        scores = recall.score_batch(batch)
        rows = recall.requests(batch).rows
        targets = np.array([recall.catalogue.index[i.decode()] for i in batch[features.ITEM_ID]])
        empty = np.diff(rows.indptr) == 0
        for name, values in scores.items():
            for group, mask in (("none", empty), ("history", ~empty)):
                hits = hit_rate(values[mask], targets[mask], rows[mask], k) * mask.sum()
                out.setdefault(name, {}).setdefault(group, []).append((hits, mask.sum()))
    return {name: {group: sum(h for h, _ in v) / sum(n for _, n in v)
                   for group, v in groups.items()} for name, groups in out.items()}


def test_score_batch_gives_each_channel_the_merge_and_each_leave_one_out(fitted):
    recall, reports, held_out = fitted
    scores = recall.score_batch(next(batches(held_out)))
    assert set(scores) == set(CHANNELS) | {MERGED} | {WITHOUT + c for c in CHANNELS}
    assert set(reports) == {MERGED} | {WITHOUT + c for c in CHANNELS}
    assert set(reports[MERGED]["setting"]["weights"]["long"]) == set(CHANNELS)
    assert "trending" not in reports[WITHOUT + "trending"]["setting"]["weights"]["long"]


def test_a_request_without_history_gets_the_trending_list(fitted):
    recall, _, held_out = fitted
    batch = next(batches(held_out))
    scores = recall.score_batch(batch)
    empty = np.diff(recall.requests(batch).rows.indptr) == 0
    assert empty.any()
    merged_top = np.argsort(-scores[MERGED][empty], axis=1, kind="stable")[:, :10]
    trending_top = np.argsort(-scores["trending"][empty], axis=1, kind="stable")[:, :10]
    assert (merged_top == trending_top).all()


def test_merged_beats_popularity_and_holds_against_its_channels_on_unseen_clicks(fitted):
    recall, _, held_out = fitted
    measured = rates(recall, held_out)
    best_alone = max(measured[c]["history"] for c in CHANNELS)
    assert measured[MERGED]["history"] > measured["trending"]["history"] + 0.1
    assert measured[MERGED]["history"] >= best_alone - 0.03
    assert measured[MERGED]["none"] == measured["trending"]["none"]


def test_two_tower_needs_its_towers():
    catalogue, clicks, _ = data.log(num_users=50, num_items=30)
    with pytest.raises(ValueError, match="two_tower"):
        Recall.fit(clicks, catalogue, RecallConfig())
