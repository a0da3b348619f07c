"""retrieval-serve and retrieval-query with a model whose query tower takes
extra inputs (recency and a declared context feature): the real brute-force
export of towers trained here, served over gRPC, queried with the client."""

from __future__ import annotations

import json
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from clicklog.formats import Click
from components.click_example_gen.click_features import ClickFeatures
from components.click_example_gen.examples import to_example
from models import serving_export, vocab
from models.trainer import train
from serving import client
from tests.conftest import single_model_config
from tests.serving import support

ITEMS = [f"i{n}" for n in range(20)]
FEATURES = {"seconds_since_previous_click": [300, -1], "device": ["phone", "web"]}


@pytest.fixture(scope="module")
def feature_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("query_features_serving")
    rng = np.random.default_rng(0)
    path = str(root / "train.tfrecord.gz")
    counts: dict[str, int] = {}
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for user in range(60):
            items = [str(i) for i in rng.choice(ITEMS, size=4, replace=False)]
            for step, item in enumerate(items):
                click = Click(f"u{user}", item, 1_600_000_000 + step * 60,
                              features=(("device", "phone" if user % 2 else "web"),))
                writer.write(to_example(click, ClickFeatures(tuple(items[:step]),
                                                             60 if step else -1)))
                counts[item] = counts.get(item, 0) + 1
    vocab.write_vocab(str(root / "vocab"), [(i, c, c) for i, c in counts.items()],
                      [(f"u{u}", 4) for u in range(60)],
                      {"max_timestamp": 1_600_000_180, "min_timestamp": 1_600_000_000})
    config = single_model_config(
        towers={"embedding_dim": 8, "recency": True, "query_features": {"device": "string"}},
        training={"batch_size": 32, "epochs": 1}, export={"top_k": 5, "exclude_history": 2},
        prior={"grid": []})
    train(path, str(root / "vocab"), config, str(root / "towers"))
    base = root / "models" / "retrieval"
    base.mkdir(parents=True)
    serving_export.export(str(root / "towers"), str(base / "1"), "brute_force")
    proc = support.ServerProcess(base, root / "server.stderr",
                                 extra_args=["--file_system_poll_wait_seconds=0"])
    yield proc, str(base / "1")
    assert proc.terminate() == 0, proc.stderr()


def _expected(export_dir: str) -> list[list[str]]:
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    out = signature(user_id=tf.constant(["u1", "u2"]),
                    history=tf.constant([["i1", "i2"], ["", ""]]),
                    seconds_since_previous_click=tf.constant([300, -1], tf.int64),
                    device=tf.constant(["phone", "web"]))
    return out["item_ids"].numpy().astype(str).tolist()


def test_client_sends_the_features_and_gets_the_models_answer(feature_server):
    proc, export_dir = feature_server
    with client.RetrievalClient(proc.target) as retrieval:
        ranked = retrieval.recommend(["u1", "u2"], [["i1", "i2"], []], features=FEATURES)
        again = retrieval.recommend(["u1"], [["i1", "i2"]], features={
            name: values[:1] for name, values in FEATURES.items()})
    assert [[item for item, _ in row] for row in ranked] == _expected(export_dir)
    assert [item for item, _ in again[0]] == [item for item, _ in ranked[0]]


@pytest.mark.parametrize("features, words", [
    ({"seconds_since_previous_click": [300]}, ["missing", "device"]),
    ({"seconds_since_previous_click": [0.5], "device": ["web"]},
     ["seconds_since_previous_click", "float", "int64"]),
    ({"seconds_since_previous_click": [300], "device": ["web"], "country": ["nl"]},
     ["unexpected", "country"]),
], ids=["missing", "wrong_dtype", "unknown"])
def test_bad_feature_inputs_get_invalid_argument_and_the_server_keeps_answering(
        feature_server, features, words):
    proc, _ = feature_server
    with grpc.insecure_channel(proc.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            client.query(stub, ["u1"], [["i1"]], features=features)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for word in words:
            assert word in info.value.details(), info.value.details()
        good = client.query(stub, ["u1"], [["i1"]],
                            features={name: v[:1] for name, v in FEATURES.items()})
    assert len(good[0]) == 5


def test_cli_feature_flags_and_jsonl_users_file(feature_server, tmp_path, capsys):
    proc, export_dir = feature_server
    code = client.main(["--server", proc.target, "--user_id", "u1", "--history", "i1,i2",
                        "--feature", "seconds_since_previous_click=300",
                        "--feature", "device=phone", "--output_format", "jsonl"])
    assert code == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert [row["item_id"] for row in first["items"]] == _expected(export_dir)[0][:5]
    users = tmp_path / "users.jsonl"
    users.write_text(
        json.dumps({"user_id": "u1", "history": ["i1", "i2"],
                    "features": {"seconds_since_previous_click": 300, "device": "phone"}})
        + "\n" + json.dumps({"user_id": "u2",
                             "features": {"seconds_since_previous_click": -1,
                                          "device": "web"}}) + "\n")
    assert client.main(["--server", proc.target, "--users_file", str(users),
                        "--output_format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [[r["item_id"] for r in row["items"]] for row in rows] == _expected(export_dir)


def test_users_file_with_a_feature_on_some_lines_only_is_rejected(tmp_path):
    users = tmp_path / "users.jsonl"
    users.write_text(json.dumps({"user_id": "u1", "features": {"device": "web"}}) + "\n"
                     + "u2 i1,i2\n")
    with pytest.raises(ValueError, match=r"users.jsonl:2: lacks feature\(s\) \['device'\]"):
        client.read_users_file(str(users))
    os.remove(users)
    users.write_text('{"user_id": 7}\n')
    with pytest.raises(ValueError, match=r"users.jsonl:1: .*expected \{\"user_id\""):
        client.read_users_file(str(users))
