"""serving.client against the live server."""

from __future__ import annotations

import json

import grpc
import pytest
import tensorflow as tf

from serving import client
from tests.serving import support


def test_query_with_target_and_stub(server, prediction_stub, model_base):
    _, module = model_base
    histories = [["item_0", "item_4"], []]
    by_target = client.query(server.target, ["erin", "frank"], histories)
    by_stub = client.query(prediction_stub, ["erin", "frank"], histories, timeout=5)

    assert by_target == by_stub
    assert [len(row) for row in by_target] == [support.TOP_K, support.TOP_K]
    assert not {"item_0", "item_4"} & {item for item, _ in by_target[0]}
    # "" padding of frank's empty history must not change his ranking.
    expected = module.serve(
        tf.constant(["erin", "frank"]), tf.constant([["item_0", "item_4"], ["", ""]])
    )
    assert [item for item, _ in by_target[1]] == [
        i.decode() for i in expected["item_ids"].numpy()[1]
    ]
    scores = [score for _, score in by_target[0]]
    assert scores == sorted(scores, reverse=True)


def test_main_prints_ranked_table(server, capsys):
    code = client.main(
        [
            "--server",
            server.target,
            "--user_id",
            "gina",
            "--history",
            "item_1,item_2",
            "--k",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["rank", "item_id", "score"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2"]
    assert not {"item_1", "item_2"} & {line.split()[1] for line in lines[1:]}


def test_main_notes_when_k_exceeds_model_k(server, capsys):
    code = client.main([f"--server={server.target}", "--user_id=hal", "--k=50"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"only {support.TOP_K} items" in out
    assert len(out.strip().splitlines()) == 2 + support.TOP_K  # note + header + rows


def test_main_reports_server_error(server, capsys):
    code = client.main(
        ["--server", server.target, "--user_id", "u", "--model_name", "nope"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "NOT_FOUND" in err and "'nope'" in err


def test_main_reports_unreachable_server(capsys):
    target = f"127.0.0.1:{support.free_port()}"
    code = client.main(["--server", target, "--user_id", "u", "--timeout", "3"])
    err = capsys.readouterr().err
    assert code == 1
    assert "UNAVAILABLE" in err and target in err


def test_retrieval_client_batches_and_truncates(server, model_base):
    _, module = model_base
    users = [f"user{i}" for i in range(5)]
    histories = [["item_0"], [], ["item_1", "item_2"], ["item_3"], []]
    with client.RetrievalClient(server.target, batch_size=2) as retrieval:
        top = retrieval.recommend(users, histories, k=2)
        full = retrieval.recommend(users, histories)
    width = max(len(h) for h in histories)
    padded = [h + [""] * (width - len(h)) for h in histories]
    expected = module.serve(tf.constant(users), tf.constant(padded))["item_ids"].numpy()
    assert [[item for item, _ in row] for row in full] == [
        [i.decode() for i in row] for row in expected]
    assert top == [row[:2] for row in full]


def test_retrieval_client_version_and_errors(server):
    with client.RetrievalClient(server.target, version=1) as retrieval:
        assert len(retrieval.recommend(["u"])[0]) == support.TOP_K
        with pytest.raises(ValueError, match="expected one history per user"):
            retrieval.recommend(["u", "v"], [[]])
    with client.RetrievalClient(server.target, version=9) as retrieval:
        with pytest.raises(grpc.RpcError) as info:
            retrieval.recommend(["u"])
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_main_reads_users_file(server, tmp_path, capsys):
    users_file = tmp_path / "users.txt"
    users_file.write_text("# user history\nann item_1,item_2\n\nben\n")
    code = client.main(["--server", server.target, "--users_file", str(users_file),
                        "--k", "3", "--batch_size", "1", "--output_format", "jsonl"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [row["user_id"] for row in rows] == ["ann", "ben"]
    assert all(len(row["items"]) == 3 for row in rows)
    assert not {"item_1", "item_2"} & {i["item_id"] for i in rows[0]["items"]}


def test_main_table_for_several_users(server, tmp_path, capsys):
    users_file = tmp_path / "users.txt"
    users_file.write_text("ann item_1\nben\n")
    assert client.main(["--server", server.target, "--users_file", str(users_file),
                        "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "user ann" in out and "user ben" in out


def test_main_rejects_malformed_users_file(tmp_path, capsys):
    users_file = tmp_path / "users.txt"
    users_file.write_text("ann item_1 item_2\n")
    assert client.main(["--users_file", str(users_file)]) == 2
    err = capsys.readouterr().err
    assert f"{users_file}:1" in err and "has 3 fields" in err


def _response(outputs: dict) -> client.predict_pb2.PredictResponse:
    response = client.predict_pb2.PredictResponse()
    for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
    return response


def test_parse_response_reads_the_channel_of_each_item_when_asked():
    response = _response({"item_ids": [[b"a", b"b"]], "scores": [[0.5, 0.25]],
                          "channels": [[b"item_cf", b"trending"]]})
    assert client.parse_response(response) == [[("a", 0.5), ("b", 0.25)]]
    assert client.parse_response(response, with_channels=True) == [
        [("a", 0.5, "item_cf"), ("b", 0.25, "trending")]]
    assert client.parse_response(response, with_channels=None)[0][0] == ("a", 0.5, "item_cf")
    plain = _response({"item_ids": [[b"a"]], "scores": [[0.5]]})
    assert client.parse_response(plain, with_channels=None) == [[("a", 0.5)]]
    with pytest.raises(ValueError, match="lacks output 'channels'"):
        client.parse_response(plain, with_channels=True)


def test_format_table_has_a_channel_column_for_merged_answers():
    table = client.format_table([("a", 0.5, "item_cf"), ("bb", 0.25, "two_tower")])
    lines = table.splitlines()
    assert lines[0].split() == ["rank", "item_id", "score", "channel"]
    assert lines[2].split() == ["2", "bb", "0.2500", "two_tower"]


def test_related_to_refuses_a_history(capsys):
    with pytest.raises(SystemExit):
        client.main(["--related_to", "i1", "--history", "i2"])
    assert "--history and --feature apply to --user_id" in capsys.readouterr().err
