"""--enable_batching: concurrent requests merged into one model run and split back."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.batching import Batcher, BatchingConfigError, BatchingError, BatchingParameters
from tests.serving import support


class RecordingModel:
    """A signature stand-in: per row, the user id and how many non-empty
    history items it saw; records the batch sizes it was run with."""

    output_names = ["count", "user"]

    def __init__(self, hold: threading.Event | None = None):
        self.batches: list[int] = []
        self.hold = hold

    def __call__(self, arrays, outputs=()):
        if self.hold is not None:
            self.hold.wait(10)
        self.batches.append(arrays["user_id"].shape[0])
        counts = np.array([[sum(1 for item in row if item)] for row in arrays["history"]])
        result = {"count": counts, "user": arrays["user_id"].copy()}
        return {name: result[name] for name in (outputs or self.output_names)}


def _request(user: str, width: int):
    history = np.full((1, width), b"", dtype=object)
    history[0, :] = [f"i{n}".encode() for n in range(width)]
    return {"user_id": np.array([user.encode()], dtype=object), "history": history}


def _run_concurrently(batcher, model, requests):
    answers = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def call(index):
        start.wait()
        try:
            answers[index] = batcher.run(model, requests[index], [], model.output_names, None)
        except Exception as err:  # noqa: BLE001 - recorded for the assertion
            answers[index] = err

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_concurrent_requests_merge_and_each_gets_its_own_rows():
    batcher = Batcher(BatchingParameters(
        max_batch_size=16, batch_timeout_micros=200_000, num_batch_threads=1,
        pad_variable_length_inputs=True))
    model = RecordingModel()
    requests = [_request(f"u{n}", width=n % 5) for n in range(12)]
    try:
        answers = _run_concurrently(batcher, model, requests)
    finally:
        batcher.stop()
    for n, answer in enumerate(answers):
        assert not isinstance(answer, Exception), answer
        assert answer["user"].tolist() == [f"u{n}".encode()]
        assert answer["count"].tolist() == [[n % 5]]  # padding added no items
    assert sum(model.batches) == 12 and max(model.batches) > 1, model.batches


def test_without_padding_only_equal_shapes_merge():
    batcher = Batcher(BatchingParameters(
        max_batch_size=16, batch_timeout_micros=200_000, num_batch_threads=1))
    model = RecordingModel()
    try:
        answers = _run_concurrently(
            batcher, model, [_request(f"u{n}", width=1 + n % 2) for n in range(6)])
    finally:
        batcher.stop()
    assert [a["count"].tolist() for a in answers] == [[[1 + n % 2]] for n in range(6)]
    assert sorted(model.batches) == [3, 3], model.batches


def test_allowed_batch_sizes_pad_the_batch_and_drop_the_extra_rows():
    batcher = Batcher(BatchingParameters(
        max_batch_size=8, batch_timeout_micros=0, allowed_batch_sizes=(4, 8)))
    model = RecordingModel()
    try:
        answer = batcher.run(model, _request("solo", 2), ["user"], model.output_names, None)
    finally:
        batcher.stop()
    assert model.batches == [4]
    assert answer == {"user": np.array([b"solo"], dtype=object)}


def test_refusals_name_the_limit():
    hold = threading.Event()
    batcher = Batcher(BatchingParameters(
        max_batch_size=2, batch_timeout_micros=0, num_batch_threads=1,
        max_enqueued_batches=1))
    model = RecordingModel(hold)
    big = {"user_id": np.array([b"a", b"b", b"c"], dtype=object),
           "history": np.full((3, 1), b"", dtype=object)}
    with pytest.raises(BatchingError, match="batch size 3 is larger than the batching "
                                            "max_batch_size 2") as info:
        batcher.run(model, big, [], model.output_names, None)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    results = []

    def call(user, deadline=None):
        try:
            results.append(batcher.run(model, _request(user, 1), [], model.output_names,
                                       deadline))
        except BatchingError as err:
            results.append(err)

    # One batch runs (held), one waits in the queue: the next is refused.
    first = threading.Thread(target=call, args=("first",))
    first.start()
    time.sleep(0.2)
    second = threading.Thread(target=call, args=("second", time.monotonic() + 0.1))
    second.start()
    time.sleep(0.2)
    with pytest.raises(BatchingError, match="batch queue is full") as info:
        batcher.run(model, _request("third", 1), [], model.output_names, None)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    time.sleep(0.2)  # the second request's deadline passes while it waits
    hold.set()
    first.join(10)
    second.join(10)
    batcher.stop()
    expired = [r for r in results if isinstance(r, BatchingError)]
    assert [e.code for e in expired] == [grpc.StatusCode.DEADLINE_EXCEEDED]
    assert "it was not run" in expired[0].details
    assert model.batches == [1]  # only the first request ran


@pytest.mark.parametrize("text, fragment", [
    ("max_batch_size: 8", 'Expected "{"'),
    ("bogus { value: 1 }", 'no field named "bogus"'),
    ("num_batch_threads { value: 0 }", "num_batch_threads is 0; expected >= 1"),
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4",
     "allowed_batch_sizes [4]; expected increasing sizes >= 1 ending at max_batch_size 8"),
])
def test_bad_parameters_file_is_named(text, fragment):
    with pytest.raises(BatchingConfigError) as info:
        BatchingParameters.from_text(text, "--batching_parameters_file=b.txt")
    assert fragment in str(info.value)
    assert "--batching_parameters_file=b.txt" in str(info.value)


def test_server_with_batching_answers_as_the_model_does(tmp_path):
    base = tmp_path / "retrieval"
    base.mkdir()
    module = support.save_version(base, 1, seed=4)
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 20000 }\n"
                      "num_batch_threads { value: 1 }\npad_variable_length_inputs: true\n")
    server = support.ServerProcess(
        base, tmp_path / "server.stderr",
        extra_args=["--enable_batching", f"--batching_parameters_file={params}"])
    users = [f"user{n}" for n in range(16)]
    histories = [[f"item_{m}" for m in range(n % 4)] or [""] for n in range(16)]
    answers = [None] * 16
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            def call(n):
                answers[n] = stub.Predict(
                    support.predict_request([users[n]], [histories[n]]), timeout=30)

            threads = [threading.Thread(target=call, args=(n,)) for n in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
    finally:
        status = server.terminate()
    assert status == 0, server.stderr()
    assert "batching requests: BatchingParameters(max_batch_size=8" in server.stderr()
    for n in range(16):
        expected = module.serve(tf.constant([users[n]]), tf.constant([histories[n]]))
        np.testing.assert_array_equal(
            tf.make_ndarray(answers[n].outputs["item_ids"]), expected["item_ids"].numpy())
        np.testing.assert_allclose(
            tf.make_ndarray(answers[n].outputs["scores"]), expected["scores"].numpy(),
            rtol=1e-5, atol=1e-6)  # a batched matmul may round differently


def test_bad_batching_file_stops_the_server_with_one_line(tmp_path):
    base = tmp_path / "retrieval"
    base.mkdir()
    support.save_version(base, 1)
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: -3 }\n")
    server = support.ServerProcess(
        base, tmp_path / "server.stderr", wait_ready=False,
        extra_args=["--enable_batching", f"--batching_parameters_file={params}"])
    assert server.proc.wait(60) == 1
    assert f"--batching_parameters_file={params}: max_batch_size is -3; expected >= 1" in (
        server.stderr())
