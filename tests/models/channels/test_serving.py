"""The merged export answers what the channels' numpy merge ranks."""

import json
import os

import numpy as np
import pytest
import scipy.sparse
import tensorflow as tf

from components.topk_evaluator.evaluation import eval_batches
from models import features, serving_export
from models.channels import store
from models.channels.base import Requests
from models.channels.clicks import Catalogue, read_clicks
from models.channels.config import RecallConfig
from models.channels.merge import fuse
from models.channels.recall import Recall
from models.channels.two_tower import TwoTowerChannel
from models.ranking.config import RankingConfig
from models.ranking.ranker import ItemClock, Ranker
from models.ranking.training import PairBuilder, fit, request_batches
from models.towers_export import Towers


@pytest.fixture(scope="module")
def merged(towers_dir, tmp_path_factory):
    """Channels fitted beside the session's towers, their merge chosen on the
    training clicks, a ranker trained beside them, and both exports of the
    merge with the ranker's `reranked` signature."""
    root = tmp_path_factory.mktemp("merged")
    train = os.path.join(os.path.dirname(towers_dir), "train.tfrecord.gz")
    towers = Towers(towers_dir)
    catalogue = Catalogue(towers.vocab.item_ids)
    config = RecallConfig(merge={"quota_grid": (5, 10), "weight_grid": (0.0, 1.0, 2.0),
                                 "rounds": 1},
                          wals={"factors": 4, "iterations": 3, "regularization": 1.0},
                          item2vec={"dim": 8, "epochs": 2, "pool_items": 2},
                          content={"min_items": 1})
    # A catalog of three genres, a title word for some items, none for item 0.
    item_features = {"genres": [[] if n == 0 else [f"g{n % 3}"]
                                for n in range(len(catalogue))],
                     "title": [[f"w{n % 5}"] if n % 2 else [] for n in range(len(catalogue))]}
    recall = Recall.fit(read_clicks(train, catalogue), catalogue, config,
                        TwoTowerChannel(towers, catalogue.item_ids), item_features)
    assert list(recall.channels) == list(config.channels)
    recall.tune(eval_batches(train, 64, 10, list(towers.query_specs[2:]), "fresh"), k=5)
    channels_dir = str(root / "channels")
    store.save(recall, channels_dir)
    ranking = RankingConfig(epochs=1, rerank_depth=6, retrieve_depth=10, embedding_dim=4,
                            hidden_units=(8,))
    clock = ItemClock.from_clicks(read_clicks(train, catalogue), ranking.trending_days)
    ranker = Ranker.build(ranking, towers.vocab.item_ids, clock, towers.vocab.user_ids)
    fit(ranker, PairBuilder(ranker, recall, towers.vocab.item_counts, ranking, 0, clock).pairs(
        request_batches(train, 64, towers, ranking)), ranking)
    ranker_dir = str(root / "ranker")
    ranker.save(ranker_dir)
    exports = {kind: (str(root / kind), serving_export.export(towers_dir, str(root / kind), kind,
                                                              channels_dir, ranker_dir))
               for kind in serving_export.EXPORT_KINDS}
    return recall, channels_dir, exports, towers, ranker


def requests(towers, histories: list[list[str]]) -> dict:
    width = max(len(h) for h in histories)
    batch = {features.USER_ID: tf.constant([f"u{n}" for n in range(len(histories))]),
             features.HISTORY: tf.constant([h + [""] * (width - len(h)) for h in histories],
                                           dtype=tf.string, shape=[len(histories), width])}
    batch.update(features.default_query_inputs(towers.query_specs[2:], len(histories)))
    return batch


def expected_top(recall: Recall, batch: dict, k: int) -> list[list[str]]:
    """The numpy merge's top k, the request's history items excluded."""
    request = recall.requests(batch)
    _, lists = recall.ranked(request)
    scores = fuse(lists, recall.buckets(request), recall.setting, recall.tie,
                  recall.config.merge.rrf_k, request.rows)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[recall.catalogue.item_ids[i] for i in row] for row in order]


def test_the_brute_force_export_answers_the_numpy_merge(merged):
    recall, _, exports, towers, _ = merged
    items = recall.catalogue.item_ids
    # Histories within the export's exclusion (3), with a repeat and an unknown item,
    # and one of an item without catalog tokens only.
    histories = [[], [items[0]], [items[1], items[2], items[1]], ["unknown", items[3]],
                 [items[4], items[5], items[6]], [items[2], items[1], items[2]]]
    batch = requests(towers, histories)
    model = tf.saved_model.load(exports["brute_force"][0])
    answer = model.signatures["serving_default"](**batch)
    got = [[i.decode() for i in row] for row in answer["item_ids"].numpy()]
    assert got == expected_top(recall, batch, len(got[0]))
    scores = answer["scores"].numpy()
    assert (np.diff(scores, axis=1) <= 0).all()
    names = set(recall.channels) | {"trending"}
    channels = [[c.decode() for c in row] for row in answer["channels"].numpy()]
    assert all(c in names for row in channels for c in row)
    # Without history only the two-tower and trending channels answer.
    assert set(channels[0]) <= {"two_tower", "trending"}


def test_the_examples_signature_answers_as_the_default_one(merged):
    recall, _, exports, towers, _ = merged
    model = tf.saved_model.load(exports["brute_force"][0])
    items = recall.catalogue.item_ids
    example = tf.train.Example(features=tf.train.Features(feature={
        features.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"u0"])),
        features.HISTORY: tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[items[0].encode(), items[7].encode()]))}))
    by_example = model.signatures["serve_tf_examples"](
        examples=tf.constant([example.SerializeToString()]))
    by_default = model.signatures["serving_default"](
        **requests(towers, [[items[0], items[7]]]))
    assert by_example["item_ids"].numpy().tolist() == by_default["item_ids"].numpy().tolist()


def test_related_items_are_the_neighbours_then_trending_never_the_item(merged):
    recall, _, exports, _, _ = merged
    items = recall.catalogue.item_ids
    model = tf.saved_model.load(exports["brute_force"][0])
    assert recall.fit_reports["related_items"]["source"] == "item2vec"
    weights = scipy.sparse.csr_matrix(recall.related)
    known = next(n for n in range(len(items)) if weights[n].nnz)
    answer = model.signatures["related_items"](item_id=tf.constant([items[known], "unknown"]))
    related = [[i.decode() for i in row] for row in answer["item_ids"].numpy()]
    assert items[known] not in related[0]
    assert related[0][0] == items[int(weights[known].toarray().argmax())]
    trending_order = [items[i] for i in np.argsort(-recall.tie, kind="stable")]
    assert related[1] == trending_order[:len(related[1])]


def test_the_saved_channels_score_as_the_fitted_ones(merged):
    recall, channels_dir, _, towers, _ = merged
    loaded = store.load(channels_dir, towers.directory)
    items = recall.catalogue.item_ids
    batch = requests(towers, [[items[0], items[2]], []])
    ours, theirs = recall.score_batch(batch), loaded.score_batch(batch)
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6)


def test_the_export_metadata_names_the_channels_and_the_merge(merged):
    recall, _, exports, _, _ = merged
    for kind, (directory, metadata) in exports.items():
        assert metadata["channels"] == list(recall.channels)
        assert metadata["outputs"]["channels"] == f"string [B, {metadata['top_k']}]"
        assert metadata["merge"] == json.loads(json.dumps(recall.setting.to_dict()))
        assert metadata["ranker"]["rerank_depth"] == 6, kind
        with open(os.path.join(directory, "assets.extra", "retrieval_export.json")) as f:
            assert json.load(f)["channels"] == list(recall.channels), kind


def test_a_request_of_unknown_items_only_is_a_request_without_history(merged):
    recall, _, exports, towers, _ = merged
    model = tf.saved_model.load(exports["brute_force"][0])
    unknown = model.signatures["serving_default"](**requests(towers, [["x", "y"]]))
    empty = model.signatures["serving_default"](**requests(towers, [[]]))
    assert unknown["item_ids"].numpy().tolist() == empty["item_ids"].numpy().tolist()
    assert Requests({}, recall.catalogue.rows([["x", "y"]])).history_lengths().tolist() == [0]


def test_the_reranked_signature_orders_the_merged_top_by_the_ranker(merged):
    recall, _, exports, towers, ranker = merged
    directory, _ = exports["brute_force"]
    items = recall.catalogue.item_ids
    histories = [[], [items[0]], [items[1], items[2], items[1]], ["unknown", items[3]]]
    batch = requests(towers, histories)
    answer = tf.saved_model.load(directory).signatures["reranked"](**batch)
    got = [[i.decode() for i in row] for row in answer["item_ids"].numpy()]
    scores = ranker.rerank(batch, recall.merged_scores(batch), 6)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :len(got[0])]
    assert got == [[items[i] for i in row] for row in order]
    # The answer comes from the merged list's top 6, in the ranker's order.
    merged_top = [set(row) for row in expected_top(recall, batch, 6)]
    assert all(set(row) <= top for row, top in zip(got, merged_top, strict=True))
    assert (np.diff(answer["scores"].numpy(), axis=1) <= 0).all()
