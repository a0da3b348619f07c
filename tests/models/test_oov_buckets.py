"""`vocab.num_oov_buckets` in the towers: unknown user ids and history items
spread over K OOV rows of the query tower (tiny vocabularies, K = 3), the
candidate tower keeps one, and K = 1 is the layout the towers always had."""

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from models import serving_export, warm_start
from models import vocab as vocab_lib
from models.retrieval import RetrievalModel
from models.towers import CandidateTower, QueryTower
from models.towers.tokens import item_token_tables
from models.towers_export import Towers
from models.trainer import train
from tests.conftest import single_model_config, write_tiny_data
from tests.models import graph_mode

USERS = ["u1", "u2"]
ITEMS = ["i1", "i2"]
STRANGERS = [f"stranger{n}" for n in range(30)]
LINEAR = {"embedding_dim": 2, "query_hidden_layers": [], "popularity": False}


def linear(**towers):
    """A linear single model of 2 dimensions without popularity inputs."""
    return single_model_config(towers={**LINEAR, **towers})


def query_inputs(user_ids, histories) -> dict:
    return {"user_id": tf.constant(user_ids), "history": tf.constant(histories)}


def test_unknown_users_spread_over_the_k_oov_rows_in_front_of_the_vocabulary():
    tower = QueryTower(USERS, ITEMS, linear(user_id=True),
                                                          num_oov_buckets=3)
    index = tower.user_lookup(tf.constant(STRANGERS + USERS)).numpy()
    # No mask token on the user side: OOV rows 0, 1, 2, then u1 = 3, u2 = 4.
    assert set(index[:-2]) == {0, 1, 2}
    assert index[-2:].tolist() == [3, 4]
    tower(query_inputs(["u1"], [["i1"]]))
    assert tower.user_embedding.embeddings.shape == (2 + 3, 2)


def test_unknown_history_items_spread_over_the_oov_rows_after_the_mask():
    tower = QueryTower(USERS, ITEMS, linear(), num_oov_buckets=3)
    index = tower.history_lookup(tf.constant([[""] + STRANGERS + ITEMS])).numpy()[0]
    # Row 0 is the padding mask, 1 .. 3 the OOV buckets, then i1 = 4, i2 = 5.
    assert index[0] == 0
    assert set(index[1:-2]) == {1, 2, 3}
    assert index[-2:].tolist() == [4, 5]
    tower(query_inputs(["u1"], [["i1"]]))
    assert tower.history_embedding.embeddings.shape == (1 + 3 + 2, 2)


def test_an_unknown_history_item_embeds_as_its_own_oov_row():
    tower = QueryTower(USERS, ITEMS, linear(), num_oov_buckets=3)
    first = STRANGERS[0]
    other = next(s for s in STRANGERS if int(tower.history_lookup(tf.constant([s]))[0])
                 != int(tower.history_lookup(tf.constant([first]))[0]))
    inputs = query_inputs(["u1", "u1"], [[first, ""], [other, ""]])
    representation = tower.representation(inputs).numpy()  # mean of one item: its row
    rows = tower.history_embedding.embeddings.numpy()
    index = tower.history_lookup(inputs["history"]).numpy()[:, 0]
    np.testing.assert_allclose(representation, rows[index], rtol=1e-6)
    assert not np.allclose(representation[0], representation[1])


def test_one_oov_bucket_is_the_old_layout():
    config = linear(user_id=True)
    tower = QueryTower(USERS, ITEMS, config)
    assert tower.num_oov_buckets == 1
    assert tower.user_lookup(tf.constant(["x", "u1"])).numpy().tolist() == [0, 1]
    assert tower.history_lookup(tf.constant([["", "x", "i1"]])).numpy().tolist() == [[0, 1, 2]]
    inputs = query_inputs(["u1", "x"], [["i1", "i2"], ["y", ""]])
    out = tower(inputs).numpy()
    assert tower.user_embedding.embeddings.shape == (2 + 1, 2)
    assert tower.history_embedding.embeddings.shape == (2 + 2, 2)
    explicit = QueryTower(USERS, ITEMS, config, num_oov_buckets=1)
    np.testing.assert_array_equal(explicit(inputs).numpy(), out)  # same seeds, same shapes


@pytest.mark.parametrize("bad", [0, -1, 2.0, "3", True])
def test_a_bad_bucket_count_is_rejected_by_value(bad):
    with pytest.raises(ValueError, match=f"num_oov_buckets={bad!r}"):
        QueryTower(USERS, ITEMS, linear(), num_oov_buckets=bad)


def test_history_token_tables_have_k_empty_oov_rows_after_the_padding_row():
    (_, name, values, splits), = item_token_tables(
        {"genre": [["drama", "war"], ["comedy"]]}, 2, 50, padding_row=True, oov_rows=3)
    # Rows: padding, OOV x 3 (all empty), i1 (2 tokens), i2 (1 token).
    assert name == "genre"
    assert splits.tolist() == [0, 0, 0, 0, 0, 2, 3]
    assert values.tolist() == tf.strings.to_hash_bucket_fast(
        ["drama", "war", "comedy"], 50).numpy().tolist()
    # The candidate tower's layout is unchanged: OOV, then the items.
    (_, _, _, splits), = item_token_tables({"genre": [["drama"], []]}, 2, 50)
    assert splits.tolist() == [0, 0, 1, 1]


def test_history_items_find_their_catalogue_tokens_past_the_oov_rows():
    config = single_model_config(towers=LINEAR, history={"item_side_features": True})
    tower = QueryTower(USERS, ITEMS, config, item_features={"genre": [["drama"], []]},
                       num_oov_buckets=3)
    representation = tower.representation(
        query_inputs(["u1", "u1"], [["i1", ""], ["stranger0", ""]])).numpy()
    ids = tower.history_embedding.embeddings.numpy()  # padding, OOV x 3, i1, i2
    _, _, table = tower.history_side[0]
    drama = int(tf.strings.to_hash_bucket_fast(["drama"],
                                               config.towers.item_feature_buckets)[0])
    np.testing.assert_allclose(representation[0], ids[4] + table.embeddings.numpy()[drama],
                               rtol=1e-5)
    oov = int(tower.history_lookup(tf.constant(["stranger0"]))[0])
    np.testing.assert_allclose(representation[1], ids[oov], rtol=1e-6)  # no tokens


def tiny_vocab(stats: dict) -> vocab_lib.Vocab:
    return vocab_lib.Vocab(item_ids=ITEMS, item_counts=[3.0, 1.0],
                           item_sampling_probability=[0.75, 0.25], item_recent_counts=[1.0, 0.0],
                           user_ids=USERS, user_counts=[2.0, 2.0], stats=stats)


def test_the_model_takes_k_from_the_vocabulary_stats_and_1_when_absent():
    assert tiny_vocab({}).num_oov_buckets == 1
    config = single_model_config(towers={"embedding_dim": 2})
    model = RetrievalModel(tiny_vocab({"num_oov_buckets": 3}), config)
    assert model.query_tower.num_oov_buckets == 3
    assert model.candidate_tower.item_lookup.num_oov_indices == 1  # candidates keep one row
    old = RetrievalModel(tiny_vocab({"max_timestamp": 0}), config)
    assert old.query_tower.num_oov_buckets == 1
    with pytest.raises(ValueError, match="stats.json num_oov_buckets=0"):
        vocab_lib.oov_buckets({"num_oov_buckets": 0})


@pytest.fixture(scope="module")
def towers_dir(tmp_path_factory):
    """Towers trained on the tiny data with `num_oov_buckets: 3` in stats.json,
    user ids and history catalogue tokens on."""
    root = tmp_path_factory.mktemp("oov_buckets")
    data = write_tiny_data(root)
    stats_path = os.path.join(data["vocab"], vocab_lib.STATS_FILE)
    with open(stats_path) as f:
        stats = json.load(f)
    with open(stats_path, "w") as f:
        json.dump({**stats, "num_oov_buckets": 3}, f)
    item_ids = vocab_lib.read_vocab(data["vocab"]).item_ids
    with open(os.path.join(data["vocab"], vocab_lib.ITEM_FEATURES_FILE), "w") as f:
        f.write("item_id\tgenre\n")
        for n, item in enumerate(item_ids):
            f.write(f"{item}\tg{n % 3}\n")
    config = single_model_config(towers={"embedding_dim": 8, "user_id": True},
                                 history={"item_side_features": True},
                                 training={"batch_size": 16, "epochs": 1}, export={"top_k": 5})
    logs = train(data["train"], data["vocab"], config, str(root / "towers"))
    assert np.isfinite(logs["loss"])
    return str(root / "towers")


def strangers_by_bucket(user_ids: list[str]) -> dict[int, list[str]]:
    """Unknown user ids grouped by the OOV bucket a K = 3 user lookup gives them."""
    lookup = tf.keras.layers.StringLookup(vocabulary=user_ids, mask_token=None,
                                          num_oov_indices=3)
    groups: dict[int, list[str]] = {}
    for stranger, bucket in zip(STRANGERS, lookup(tf.constant(STRANGERS)).numpy(), strict=True):
        groups.setdefault(int(bucket), []).append(stranger)
    return groups


def test_trained_towers_give_unknown_users_their_bucket_s_embedding(towers_dir):
    towers = Towers(towers_dir)
    assert towers.vocab.num_oov_buckets == 3
    assert towers.candidate_embeddings().shape == (towers.vocab.num_items, 8)
    groups = strangers_by_bucket(towers.vocab.user_ids)
    assert sorted(groups) == [0, 1, 2]
    (a, b), (c, _) = (groups[0][:2], groups[1][:2])
    query = towers.query_embeddings([a, b, c], [["", ""]] * 3).numpy()
    np.testing.assert_allclose(query[0], query[1], rtol=1e-6)  # same bucket, same user
    assert not np.allclose(query[0], query[2])  # another bucket, another user


def test_export_serves_unknown_users_and_items_as_tf_serving_runs_it(towers_dir, tmp_path):
    out_dir = str(tmp_path / "brute_force")
    serving_export.export(towers_dir, out_dir, "brute_force")
    request = {"user_id": ["stranger0", "u1"], "history": [["i1", "never-seen"], ["", ""]]}
    eager = tf.saved_model.load(out_dir).signatures["serving_default"](
        user_id=tf.constant(request["user_id"]), history=tf.constant(request["history"]))
    assert eager["item_ids"].shape == (2, 5)
    answer = graph_mode.run_serving_default(out_dir, "brute_force", request)
    assert answer["item_ids"] == eager["item_ids"].numpy().astype(str).tolist()


def _towers(users, items, k):
    config = linear(user_id=True)
    query = QueryTower(users, items, config, num_oov_buckets=k)
    candidate = CandidateTower(vocab_lib.Vocab(
        item_ids=items, item_counts=[1.0] * len(items),
        item_sampling_probability=[1.0 / len(items)] * len(items),
        item_recent_counts=[1.0] * len(items), user_ids=users, user_counts=[1.0] * len(users),
        stats={}), config)
    query(query_inputs([users[0]], [[items[0]]]))
    candidate(tf.constant([items[0]]))
    return SimpleNamespace(query_tower=query, candidate_tower=candidate)


@pytest.mark.parametrize("old_k, new_k", [(1, 3), (3, 3), (3, 1)])
def test_warm_start_copies_id_rows_at_each_models_own_oov_offset(tmp_path, old_k, new_k):
    old = _towers(["u1", "u2"], ["i1", "i2"], old_k)
    warm_start.save(str(tmp_path / warm_start.WEIGHTS_FILE), old)
    new = _towers(["u2", "u3"], ["i2", "i3"], new_k)
    fresh_oov = new.query_tower.user_embedding.embeddings.numpy()[:new_k].copy()
    report = warm_start.restore(
        new, str(tmp_path), SimpleNamespace(user_ids=["u1", "u2"], item_ids=["i1", "i2"],
                                            num_oov_buckets=old_k),
        SimpleNamespace(user_ids=["u2", "u3"], item_ids=["i2", "i3"], num_oov_buckets=new_k))
    assert report["ids_copied"] == {"query_tower.history_embedding": 1,
                                    "query_tower.user_embedding": 1,
                                    "candidate_tower.item_embedding": 1}
    old_users = old.query_tower.user_embedding.embeddings.numpy()
    new_users = new.query_tower.user_embedding.embeddings.numpy()
    np.testing.assert_array_equal(new_users[new_k], old_users[old_k + 1])  # u2
    old_history = old.query_tower.history_embedding.embeddings.numpy()
    new_history = new.query_tower.history_embedding.embeddings.numpy()
    np.testing.assert_array_equal(new_history[1 + new_k], old_history[1 + old_k + 1])  # i2
    np.testing.assert_array_equal(
        new.candidate_tower.item_embedding.embeddings.numpy()[1],
        old.candidate_tower.item_embedding.embeddings.numpy()[2])  # i2: one OOV row always
    if old_k == new_k:
        np.testing.assert_array_equal(new_users[:new_k], old_users[:old_k])
    else:  # another K hashes unknown ids elsewhere: the OOV rows keep their fresh values
        np.testing.assert_array_equal(new_users[:new_k], fresh_oov)
