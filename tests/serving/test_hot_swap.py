"""Version polling: hot swap, surviving a corrupt version, stopping on SIGTERM."""

from __future__ import annotations

import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tests.serving import support

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END


def _wait_until(condition, timeout=15.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def _statuses(stub):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "retrieval"
    response = stub.GetModelStatus(request, timeout=10)
    return {s.version: s for s in response.model_version_status}


def test_hot_swap_and_corrupt_version(tmp_path):
    base = tmp_path / "retrieval"
    base.mkdir()
    support.save_version(base, 1, seed=1)
    server = support.ServerProcess(base, tmp_path / "server.stderr")
    try:
        assert server.ready_line == (
            f"retrieval-serve: serving model 'retrieval' version 1 on {server.target}"
        )
        with grpc.insecure_channel(server.target) as channel:
            predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            request = support.predict_request(["dana"], [["item_5"]])

            def served_version():
                return predict.Predict(request, timeout=10).model_spec.version.value

            assert served_version() == 1

            module_v2 = support.save_version(base, 2, seed=2)
            _wait_until(lambda: served_version() == 2)
            response = predict.Predict(request, timeout=10)
            expected = module_v2.serve(tf.constant(["dana"]), tf.constant([["item_5"]]))
            np.testing.assert_array_equal(
                tf.make_ndarray(response.outputs["item_ids"]),
                expected["item_ids"].numpy(),
            )
            statuses = _statuses(models)
            assert statuses[2].state == AVAILABLE
            assert statuses[1].state == END and statuses[1].status.error_code == 0

            support.write_corrupt_version(base, 3)
            failed = _wait_until(lambda: _statuses(models).get(3))
            assert failed.state == END
            assert failed.status.error_code != 0
            assert str(base / "3") in failed.status.error_message
            assert served_version() == 2
            assert _statuses(models)[2].state == AVAILABLE
        assert "failed to load model 'retrieval' version 3" in server.stderr()
    finally:
        status = server.terminate()
    assert status == 0, server.stderr()
    assert "shutting down" in server.stderr()
