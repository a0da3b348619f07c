"""The TF Serving REST API of retrieval-serve (stdlib HTTP client, live server)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import tensorflow as tf

from tests.serving import support


def _model_url(server, suffix=""):
    return f"{server.rest_url}/v1/models/retrieval{suffix}"


def _expected(module, users, histories):
    out = module.serve(tf.constant(users), tf.constant(histories))
    return [[i.decode() for i in row] for row in out["item_ids"].numpy()], out["scores"].numpy()


def test_predict_row_format(server, model_base):
    _, module = model_base
    body = {"instances": [{"user_id": "alice", "history": ["item_1", "item_2"]},
                          {"user_id": "bob", "history": ["", ""]}]}
    status, answer = support.http_json("POST", _model_url(server, ":predict"), body)
    assert status == 200, answer
    ids, scores = _expected(module, ["alice", "bob"], [["item_1", "item_2"], ["", ""]])
    assert [row["item_ids"] for row in answer["predictions"]] == ids
    np.testing.assert_allclose(
        [row["scores"] for row in answer["predictions"]], scores, rtol=1e-6
    )


def test_predict_columnar_format_with_version_and_b64(server, model_base):
    _, module = model_base
    body = {"signature_name": "serving_default",
            "inputs": {"user_id": [{"b64": base64.b64encode(b"carol").decode()}],
                       "history": [[]]}}
    status, answer = support.http_json(
        "POST", _model_url(server, "/versions/1:predict"), body
    )
    assert status == 200, answer
    ids, _ = _expected(module, ["carol"], [[""]])
    assert answer["outputs"]["item_ids"] == ids
    assert len(answer["outputs"]["scores"][0]) == support.TOP_K


def test_predict_with_k_signature(server):
    body = {"signature_name": "serve_k",
            "inputs": {"user_id": ["u"], "history": [["item_0"]], "k": 2}}
    status, answer = support.http_json("POST", _model_url(server, ":predict"), body)
    assert status == 200, answer
    assert len(answer["outputs"]["item_ids"][0]) == 2


def test_model_status_and_metadata(server):
    status, answer = support.http_json("GET", _model_url(server))
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}]}
    status, answer = support.http_json("GET", _model_url(server, "/versions/1/metadata"))
    assert status == 200
    assert answer["model_spec"]["name"] == "retrieval"
    assert answer["model_spec"]["version"] == "1"
    serving = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(serving["inputs"]) == {"user_id", "history"}
    assert serving["outputs"]["scores"]["dtype"] == "DT_FLOAT"


GOOD = {"instances": [{"user_id": "u", "history": ["item_0"]}]}


def _k_body(k):
    return {"signature_name": "serve_k",
            "inputs": {"user_id": ["u"], "history": [["a"]], "k": k}}


def _deep(depth: int) -> str:
    return "[" * depth + '"u"' + "]" * depth


@pytest.mark.parametrize(
    "method, suffix, body, raw, http_status, fragments",
    [
        ("POST", ":predict", None, b"{not json", 400, ["not valid JSON"]),
        ("POST", ":predict", {"rows": []}, None, 400, ["exactly one of 'instances'"]),
        ("POST", ":predict", {"instances": [{"user_id": "u"}]}, None, 400,
         ["missing input(s) ['history']"]),
        ("POST", ":predict", {"instances": [{"user_id": 7, "history": ["a"]}]}, None, 400,
         ["input 'user_id' has value 7", "expected string"]),
        ("POST", ":predict", {"inputs": {"user_id": ["u"], "history": ["a"]}}, None, 400,
         ["input 'history' has rank 1", "expected rank 2"]),
        ("POST", ":predict", {"instances": [{"user_id": "u", "history": ["a"]},
                                            {"user_id": "v", "history": ["a", "b"]}]},
         None, 400, ["'history' is ragged"]),
        ("POST", ":predict", {"inputs": {"user_id": ["u"] * 9, "history": [[""]] * 9}},
         None, 400, ["batch size 9", "at most 8"]),
        ("POST", ":predict", {"signature_name": "serve_k",
                              "inputs": {"user_id": ["u"], "history": [["a"]], "k": 9}},
         None, 400, ["input 'k' has value 9", "k <= 4"]),
        ("POST", ":predict", {"signature_name": "nope", **GOOD}, None, 400, ["'nope'"]),
        ("POST", ":predict", None, b"x" * ((1 << 18) + 1), 400,
         ["request body has 262145 bytes", "at most 262144", "(--max_request_bytes)"]),
        ("POST", ":predict", {"signature_name": "serve_k",
                              "inputs": {"user_id": ["u", "v"], "history": [["a"]], "k": 2}},
         None, 400, ["different batch sizes", "'history' 1", "'user_id' 2"]),
        ("POST", ":predict", {"inputs": {"user_id": ["u"], "history": [[""] * 1001]}},
         None, 400, ["'history' has length 1001", "at most 1000", "--max_history_length"]),
        ("POST", "/versions/42:predict", GOOD, None, 404, ["version 42"]),
        ("POST", "/labels/stable:predict", GOOD, None, 400, ["version label: 'stable'"]),
        ("GET", ":predict", None, None, 405, ["expected POST"]),
        ("POST", ":classify", GOOD, None, 501, ["not implemented"]),
        ("GET", "/versions/7", None, None, 404, ["no version 7"]),
        # Bodies that broke the JSON layer rather than failing validation.
        ("POST", ":predict", None, b"[" * 100_000, 400,
         ["nests arrays/objects too deeply", "expected at most"]),
        ("POST", ":predict", None,
         f'{{"inputs": {{"user_id": {_deep(400)}, "history": [[""]]}}}}'.encode(), 400,
         ["input 'user_id' nests lists more than", "expected a tensor of rank"]),
        ("POST", ":predict", {"instances": [{"user_id": "\ud800", "history": ["a"]}]},
         None, 400, ["input 'user_id'", "lone UTF-16 surrogate", "expected valid Unicode"]),
        ("POST", ":predict", None,
         b'{"signature_name": "serve_k", "inputs": {"user_id": ["u"], '
         b'"history": [["a"]], "k": ' + b"9" * 5000 + b"}}", 400,
         ["integer of 5000 digits", "expected at most 309 digits"]),
        ("POST", ":predict", _k_body(10**30), None, 400,
         ["input 'k' has value 1000000000000000000000000000000 out of range for int32",
          "expected -2147483648 <= value <= 2147483647"]),
        ("POST", ":predict", _k_body(2**32 + 2), None, 400,
         ["input 'k' has value 4294967298 out of range for int32"]),
        ("POST", ":predict", _k_body(True), None, 400,
         ["input 'k' has value true; expected int32"]),
        ("POST", ":predict", None,
         b'{"signature_name": "serve_k", "inputs": {"user_id": ["u"], '
         b'"history": [["a"]], "k": NaN}}', 400, ["input 'k' has value NaN; expected int32"]),
        ("POST", ":predict", {"inputs": {"user_id": [1.5], "history": [["a"]]}}, None, 400,
         ["input 'user_id' has value 1.5; expected string"]),
        ("POST", ":predict", {"inputs": {"user_id": [{"b64": "\u00e9"}], "history": [[""]]}},
         None, 400, ["input 'user_id' has invalid base64", "expected standard base64"]),
        ("POST", ":predict", {"inputs": {"user_id": ["u"], "history": [["a"], "b"]}}, None,
         400, ["input 'history' is ragged", "expected a rectangular array"]),
        ("POST", ":predict", None, b"[1, 2]", 400, ["JSON list; expected a JSON object"]),
        ("POST", ":predict", None, b"\xff\xfe{", 400, ["not valid JSON"]),
        ("POST", ":predict", {"instances": "u"}, None, 400,
         ["'instances' is \"u\"; expected a non-empty list of rows"]),
    ],
    ids=["json", "format", "missing", "dtype", "rank", "ragged", "batch", "k",
         "signature", "size", "batch_mismatch", "history_length", "version", "label",
         "method", "classify", "status_version",
         "deep_body", "deep_input", "lone_surrogate", "int_5000_digits", "k_1e30",
         "k_wraps_int32", "k_bool", "k_nan", "float_for_string", "b64_non_ascii",
         "mixed_depth", "body_not_object", "bad_utf", "instances_not_list"],
)
def test_bad_request_answers_error_json_and_server_keeps_serving(
    server, method, suffix, body, raw, http_status, fragments
):
    status, answer = support.http_json(method, _model_url(server, suffix), body, raw)
    assert status == http_status, answer
    assert set(answer) == {"error"}
    for fragment in fragments:
        assert fragment in answer["error"]
    status, answer = support.http_json("POST", _model_url(server, ":predict"), GOOD)
    assert status == 200 and len(answer["predictions"][0]["item_ids"]) == support.TOP_K


def test_unknown_model_and_path(server):
    status, answer = support.http_json("GET", f"{server.rest_url}/v1/models/nope")
    assert status == 404 and "'nope'" in answer["error"]
    status, answer = support.http_json("GET", f"{server.rest_url}/v2/whatever")
    assert status == 404 and "malformed request" in answer["error"]
