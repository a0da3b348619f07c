"""Version polling: hot swap, surviving a corrupt version, stopping on SIGTERM."""

from __future__ import annotations

import threading
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


class ClientLoop:
    """Sends Predict (no version: "the served one") back to back in a thread and
    records every answer's version and every failure."""

    def __init__(self, target):
        self.versions: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._target = target
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        request = support.predict_request(["ivy"], [["item_2"]])
        with grpc.insecure_channel(self._target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not self._stop.is_set():
                try:
                    response = stub.Predict(request, timeout=10)
                except grpc.RpcError as err:
                    self.failures.append(f"{err.code().name}: {err.details()}")
                    continue
                ids = tf.make_ndarray(response.outputs["item_ids"])
                if ids.shape != (1, support.TOP_K):
                    self.failures.append(f"bad shape {ids.shape}")
                self.versions.append(response.model_spec.version.value)

    def stop(self):
        self._stop.set()
        self._thread.join(30)


def test_hot_swaps_under_a_client_loop_lose_no_request(tmp_path):
    base = tmp_path / "retrieval"
    base.mkdir()
    support.save_version(base, 1, seed=1)
    server = support.ServerProcess(base, tmp_path / "server.stderr")
    loop = None
    try:
        with grpc.insecure_channel(server.target) as channel:
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            loop = ClientLoop(server.target)
            _wait_until(lambda: len(loop.versions) >= 20)

            support.save_version(base, 2, seed=2)
            _wait_until(lambda: loop.versions and loop.versions[-1] == 2)
            # A version that loads but fails its warm-up query, then a corrupt one.
            support.save_version(base, 3, seed=3, module_class=support.FailsWarmup)
            _wait_until(lambda: 3 in _statuses(models))
            support.write_corrupt_version(base, 4)
            _wait_until(lambda: 4 in _statuses(models))
            support.save_version(base, 5, seed=5)
            _wait_until(lambda: loop.versions[-1] == 5)
            count = len(loop.versions)
            _wait_until(lambda: len(loop.versions) >= count + 20)
            loop.stop()
            statuses = _statuses(models)
    finally:
        if loop is not None:
            loop.stop()
        exit_status = server.terminate()
    assert loop.failures == []
    served = loop.versions
    assert set(served) == {1, 2, 5}
    assert served == sorted(served), "a request went back to an older version"
    assert {v: s.state for v, s in statuses.items()} == {
        1: END, 2: END, 3: END, 4: END, 5: AVAILABLE}
    assert "broken model" in statuses[3].status.error_message
    assert statuses[3].status.error_code == 3  # INVALID_ARGUMENT from the assert
    assert str(base / "4") in statuses[4].status.error_message
    assert exit_status == 0, server.stderr()
