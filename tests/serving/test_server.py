"""retrieval-serve against the real tensorflow-serving-api stubs."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
)

from tests.serving import support


def _assert_answers_good_request(stub, module):
    response = stub.Predict(support.predict_request(["u1"], [["item_0"]]), timeout=10)
    expected = module.serve(tf.constant(["u1"]), tf.constant([["item_0"]]))
    np.testing.assert_array_equal(
        tf.make_ndarray(response.outputs["item_ids"]), expected["item_ids"].numpy()
    )


def test_predict_returns_sorted_top_k_excluding_history(prediction_stub, model_base):
    _, module = model_base
    histories = [["item_1", "item_2", "item_3"], ["", "", ""]]
    response = prediction_stub.Predict(
        support.predict_request(["alice", "bob"], histories), timeout=10
    )

    assert response.model_spec.name == "retrieval"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    ids = tf.make_ndarray(response.outputs["item_ids"])
    scores = tf.make_ndarray(response.outputs["scores"])
    assert ids.shape == scores.shape == (2, support.TOP_K)
    assert scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 0), scores
    assert not {b"item_1", b"item_2", b"item_3"} & set(ids[0])
    expected = module.serve(tf.constant(["alice", "bob"]), tf.constant(histories))
    np.testing.assert_array_equal(ids, expected["item_ids"].numpy())
    np.testing.assert_allclose(scores, expected["scores"].numpy(), rtol=1e-6)


def test_predict_accepts_empty_history(prediction_stub):
    request = support.predict_request(["carol"], [[]])
    assert list(request.inputs["history"].tensor_shape.dim)[1].size == 0
    response = prediction_stub.Predict(request, timeout=10)
    assert tf.make_ndarray(response.outputs["item_ids"]).shape == (1, support.TOP_K)


def test_predict_output_filter(prediction_stub):
    request = support.predict_request(["u"], [["item_0"]])
    request.output_filter.append("scores")
    response = prediction_stub.Predict(request, timeout=10)
    assert list(response.outputs) == ["scores"]


def test_get_model_metadata_returns_signature_defs(prediction_stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "retrieval"
    request.metadata_field.append("signature_def")
    response = prediction_stub.GetModelMetadata(request, timeout=10)

    assert response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    serving = signature_map.signature_def["serving_default"]
    assert set(serving.inputs) == {"user_id", "history"}
    assert set(serving.outputs) == {"item_ids", "scores"}
    assert serving.inputs["history"].dtype == tf.string.as_datatype_enum
    assert len(serving.inputs["history"].tensor_shape.dim) == 2


def test_get_model_status_reports_available(model_stub):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "retrieval"
    response = model_stub.GetModelStatus(request, timeout=10)
    [status] = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0


def _missing_input():
    request = support.predict_request(["u"], [["item_0"]])
    del request.inputs["history"]
    return request


def _unexpected_input():
    request = support.predict_request(["u"], [["item_0"]])
    request.inputs["extra"].CopyFrom(tf.make_tensor_proto([1.0]))
    return request


def _int64_user_id():
    request = support.predict_request(["u"], [["item_0"]])
    request.inputs["user_id"].CopyFrom(tf.make_tensor_proto([7], dtype=tf.int64))
    return request


def _rank1_history():
    request = support.predict_request(["u"], [["item_0"]])
    request.inputs["history"].CopyFrom(
        tf.make_tensor_proto(["item_0"], dtype=tf.string)
    )
    return request


def _wrong_model_name():
    return support.predict_request(["u"], [["item_0"]], model_name="nope")


def _unloaded_version():
    request = support.predict_request(["u"], [["item_0"]])
    request.model_spec.version.value = 42
    return request


def _unknown_signature():
    request = support.predict_request(["u"], [["item_0"]])
    request.model_spec.signature_name = "no_such_signature"
    return request


def _k_request(k):
    request = support.predict_request(["u"], [["item_0"]])
    request.model_spec.signature_name = "serve_k"
    request.inputs["k"].CopyFrom(tf.make_tensor_proto(k, dtype=tf.int32))
    return request


def _oversized():
    # 1.5 MiB of user id against --max_message_bytes=1 MiB.
    return support.predict_request(["u" * (3 << 19)], [["item_0"]])


def _values_shape_mismatch():
    request = support.predict_request(["u"], [["item_0"]])
    request.inputs["user_id"].tensor_shape.dim[0].size = 3  # 1 value, 3 claimed
    request.inputs["user_id"].string_val.append(b"v")  # 2 values
    request.inputs["history"].tensor_shape.dim[0].size = 3  # 1 value fills [3, 1]
    return request


def _batch_mismatch():
    return support.predict_request(["u1", "u2"], [["item_0"]])


def _batch_mismatch_unchecked_by_the_model():
    # serve_k has no assert of its own: the server must catch it.
    request = _k_request(2)
    request.inputs["user_id"].CopyFrom(tf.make_tensor_proto(["u1", "u2"], dtype=tf.string))
    return request


def _declared_huge_history():
    # A few bytes declaring [1, 10,000,000]: one value "fills" the whole shape.
    request = support.predict_request(["u"], [["item_0"]])
    request.inputs["history"].tensor_shape.dim[1].size = 10_000_000
    return request


def _absurd_history_shape():
    request = support.predict_request(["u"], [["item_0"]])
    request.inputs["history"].tensor_shape.dim[1].size = 2**62
    return request


def _over_request_bytes():
    # 300 KB: under gRPC's 1 MiB message limit, over --max_request_bytes=256 KiB.
    return support.predict_request(["u" * 300_000], [["item_0"]])


@pytest.mark.parametrize(
    "make_request, code, fragments",
    [
        (_missing_input, grpc.StatusCode.INVALID_ARGUMENT, ["missing", "history"]),
        (_unexpected_input, grpc.StatusCode.INVALID_ARGUMENT, ["unexpected", "extra"]),
        (
            _int64_user_id,
            grpc.StatusCode.INVALID_ARGUMENT,
            ["user_id", "int64", "expected string"],
        ),
        (
            _rank1_history,
            grpc.StatusCode.INVALID_ARGUMENT,
            ["history", "rank 1", "expected rank 2"],
        ),
        (
            lambda: support.predict_request([f"u{i}" for i in range(9)], [[""]] * 9),
            grpc.StatusCode.INVALID_ARGUMENT,
            ["batch size 9", "at most 8"],
        ),
        (_wrong_model_name, grpc.StatusCode.NOT_FOUND, ["'nope'", "'retrieval'"]),
        (_unloaded_version, grpc.StatusCode.NOT_FOUND, ["version 42"]),
        (
            _unknown_signature,
            grpc.StatusCode.FAILED_PRECONDITION,
            ["no_such_signature"],
        ),
        (
            _batch_mismatch,
            grpc.StatusCode.INVALID_ARGUMENT,
            ["different batch sizes", "'history' 1", "'user_id' 2"],
        ),
        (
            _batch_mismatch_unchecked_by_the_model,
            grpc.StatusCode.INVALID_ARGUMENT,
            ["different batch sizes", "'history' 1", "'user_id' 2"],
        ),
        (
            _declared_huge_history,
            grpc.StatusCode.INVALID_ARGUMENT,
            ["'history' has length 10000000 in dimension 1", "at most 1000",
             "--max_history_length"],
        ),
        (
            _absurd_history_shape,
            grpc.StatusCode.INVALID_ARGUMENT,
            [f"'history' has length {2**62} in dimension 1", "--max_history_length"],
        ),
        (
            _over_request_bytes,
            grpc.StatusCode.INVALID_ARGUMENT,
            ["request has 300", "at most 262144", "--max_request_bytes"],
        ),
        (
            lambda: _k_request(5),
            grpc.StatusCode.INVALID_ARGUMENT,
            ["input 'k' has value 5", "k <= 4", "--max_k"],
        ),
        (
            lambda: _k_request(0),
            grpc.StatusCode.INVALID_ARGUMENT,
            ["input 'k' has value 0", "1 <= k"],
        ),
        (
            _values_shape_mismatch,
            grpc.StatusCode.INVALID_ARGUMENT,
            ["'user_id' holds 2 strings", "[3] needs 3"],
        ),
        (_oversized, grpc.StatusCode.RESOURCE_EXHAUSTED, []),
    ],
    ids=[
        "missing",
        "unexpected",
        "dtype",
        "rank",
        "batch",
        "model_name",
        "version",
        "signature",
        "batch_mismatch",
        "batch_mismatch_model_unchecked",
        "history_length",
        "absurd_shape",
        "request_bytes",
        "k_over_max",
        "k_zero",
        "values_vs_shape",
        "message_size",
    ],
)
def test_invalid_request_is_rejected_and_server_keeps_serving(
    prediction_stub, model_base, make_request, code, fragments
):
    with pytest.raises(grpc.RpcError) as info:
        prediction_stub.Predict(make_request(), timeout=10)
    assert info.value.code() == code, info.value.details()
    for fragment in fragments:
        assert fragment in info.value.details()
    _assert_answers_good_request(prediction_stub, model_base[1])


def test_k_input_within_max_is_served(prediction_stub, model_base):
    _, module = model_base
    response = prediction_stub.Predict(_k_request(2), timeout=10)
    ids = tf.make_ndarray(response.outputs["item_ids"])
    expected = module.serve_k(tf.constant(["u"]), tf.constant([["item_0"]]), 2)
    np.testing.assert_array_equal(ids, expected["item_ids"].numpy())
    assert response.model_spec.signature_name == "serve_k"


def test_numeric_inputs_decode_from_value_fields_and_tensor_content(prediction_stub):
    # make_tensor_proto writes int_val for a scalar; build tensor_content by hand.
    request = _k_request(3)
    content = request.inputs["k"]
    content.ClearField("int_val")
    content.tensor_content = np.array(3, dtype=np.int32).tobytes()
    response = prediction_stub.Predict(request, timeout=10)
    assert tf.make_ndarray(response.outputs["scores"]).shape == (1, 3)


def test_metadata_and_status_errors(prediction_stub, model_stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "retrieval"
    with pytest.raises(grpc.RpcError) as info:
        prediction_stub.GetModelMetadata(request, timeout=10)  # no metadata_field
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "other"
    with pytest.raises(grpc.RpcError) as info:
        model_stub.GetModelStatus(status_request, timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_other_rpcs_are_unimplemented(prediction_stub):
    with pytest.raises(grpc.RpcError) as info:
        prediction_stub.Classify(classification_pb2.ClassificationRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_reload_config_request_is_refused_unless_enabled(model_stub, prediction_stub, model_base):
    from tensorflow_serving.apis import model_management_pb2

    request = model_management_pb2.ReloadConfigRequest()
    entry = request.config.model_config_list.config.add()
    entry.name, entry.base_path = "etc", "/etc"
    with pytest.raises(grpc.RpcError) as info:
        model_stub.HandleReloadConfigRequest(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "--allow_reload_config_request" in info.value.details()
    _assert_answers_good_request(prediction_stub, model_base[1])
