"""Requests a careless or hostile client sends: declared shapes far past the
limits, and deadlines that pass while a request waits for a worker."""

from __future__ import annotations

import json
import threading
import time

import grpc
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import saved_model_loader, serving_core
from tests.serving import support


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM line in /proc/{pid}/status")


def test_declared_huge_history_is_refused_fast_without_allocating(server, prediction_stub):
    # A few bytes declaring history [1, 10,000,000]: a server that decoded it
    # first would fill 10M entries (hundreds of MiB) before any check.
    request = support.predict_request(["u"], [["item_0"]])
    request.inputs["history"].tensor_shape.dim[1].size = 10_000_000
    assert request.ByteSize() < 100
    peak_before = _peak_rss_mib(server.proc.pid)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        prediction_stub.Predict(request, timeout=30)
    took = time.monotonic() - started
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "--max_history_length" in info.value.details()
    grown = _peak_rss_mib(server.proc.pid) - peak_before
    assert grown < 50, f"server peak RSS grew by {grown:.0f} MiB"
    # Generous for a shared machine; decoding first took seconds.
    assert took < 1.0, f"refusal took {took:.3f}s"


@pytest.fixture(scope="module")
def one_worker_slow_server(tmp_path_factory):
    """A server with one gRPC worker and a model that sleeps 0.1 s per
    character of the first user id."""
    root = tmp_path_factory.mktemp("deadline")
    base = root / "retrieval"
    base.mkdir()
    support.save_version(base, 1, seed=3, module_class=support.SlowRetrieval)
    proc = support.ServerProcess(
        base, root / "server.stderr",
        extra_args=["--grpc_max_threads=1", "--file_system_poll_wait_seconds=0"],
    )
    yield proc
    assert proc.terminate() == 0, proc.stderr()


def test_deadlines_stop_work_and_answer_deadline_exceeded(one_worker_slow_server):
    server = one_worker_slow_server
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(support.predict_request(["warm"], [[""]]), timeout=30)
        # A holds the only worker for 1 s; B (3 s of work) waits behind it
        # with a 0.3 s deadline, so its deadline passes before it starts.
        holder = threading.Thread(
            target=stub.Predict,
            args=(support.predict_request(["a" * 10], [[""]]),),
            kwargs={"timeout": 30},
        )
        holder.start()
        time.sleep(0.2)
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(support.predict_request(["b" * 30], [[""]]), timeout=0.3)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        holder.join()
        # Had B run, its 3 s would delay C.
        started = time.monotonic()
        stub.Predict(support.predict_request(["c"], [[""]]), timeout=30)
        took = time.monotonic() - started
        assert took < 2.0, f"the next request waited {took:.1f}s: the expired one ran"
        # D (3 s of work) gets a 0.4 s deadline: its run is cancelled, so the
        # only worker is free again long before D's 3 s are up.
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(support.predict_request(["d" * 30], [[""]]), timeout=0.4)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        started = time.monotonic()
        stub.Predict(support.predict_request(["e"], [[""]]), timeout=30)
        took = time.monotonic() - started
        assert took < 1.5, f"the next request waited {took:.1f}s: the run went on"
    deadline = time.monotonic() + 5
    while "the run was cancelled" not in server.stderr():
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.05)
    assert "Predict -> DEADLINE_EXCEEDED: the client's deadline passed while the model ran" in (
        server.stderr())


def _served(max_history):
    return saved_model_loader.ServedModel(1, "/m/1", {}, {}, None, max_history)


def test_history_limit_is_derived_from_the_exports_max_history(tmp_path):
    extra = tmp_path / "assets.extra"
    extra.mkdir()
    (extra / saved_model_loader.EXPORT_METADATA).write_text(json.dumps({"max_history": 50}))
    assert saved_model_loader.read_max_history(str(tmp_path)) == 50
    limits = serving_core.RequestLimits()
    assert limits.history_length(_served(50)) == 50 * serving_core.HISTORY_LENGTH_FACTOR
    assert limits.history_length(_served(None)) == serving_core.DEFAULT_MAX_HISTORY_LENGTH
    assert serving_core.RequestLimits(max_history_length=7).history_length(_served(50)) == 7
    assert saved_model_loader.read_max_history(str(tmp_path / "nothing")) is None
    (extra / saved_model_loader.EXPORT_METADATA).write_text('{"max_history": "50"}')
    with pytest.raises(ValueError, match="max_history is '50'; expected an integer >= 1"):
        saved_model_loader.read_max_history(str(tmp_path))
