"""Shared fixtures: one version-1 toy model and one live retrieval-serve process."""

from __future__ import annotations

import grpc
import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from tests.serving import support


@pytest.fixture(scope="session")
def model_base(tmp_path_factory):
    """Base path holding version 1; yields (path, the in-process module)."""
    base = tmp_path_factory.mktemp("models") / "retrieval"
    base.mkdir()
    module = support.save_version(base, 1, seed=1)
    return base, module


@pytest.fixture(scope="session")
def server(model_base, tmp_path_factory):
    """A live server on version 1 with --max_batch_size=8, --max_k=4, 1 MiB
    messages, 256 KiB requests, REST enabled and polling disabled."""
    base, _ = model_base
    log_path = tmp_path_factory.mktemp("logs") / "server.stderr"
    proc = support.ServerProcess(
        base,
        log_path,
        extra_args=[
            "--max_batch_size",
            "8",
            "--max_k=4",
            f"--max_message_bytes={1 << 20}",
            f"--max_request_bytes={1 << 18}",
            "--file_system_poll_wait_seconds=0",
        ],
        rest=True,
    )
    yield proc
    status = proc.terminate()
    assert status == 0, f"server exited with {status}; stderr:\n{proc.stderr()}"


@pytest.fixture(scope="session")
def channel(server):
    with grpc.insecure_channel(server.target) as chan:
        yield chan


@pytest.fixture(scope="session")
def prediction_stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="session")
def model_stub(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)
