"""SIGTERM: the server turns not-ready and refuses new connections at once,
in-flight requests finish, idle keep-alive connections do not hold it up, and
the process exits 0."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from urllib.parse import urlparse

import grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tests.serving import support
from tests.serving.test_hot_swap import ClientLoop


def test_sigterm_drains_and_exits_cleanly(tmp_path):
    base = tmp_path / "retrieval"
    base.mkdir()
    support.save_version(base, 1, seed=1)
    server = support.ServerProcess(
        base, tmp_path / "server.stderr", extra_args=["--drain_seconds=3"], rest=True
    )
    url = urlparse(server.rest_url)
    idle = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    loop = ClientLoop(server.target)
    try:
        idle.request("GET", "/v1/models/retrieval")
        answer = idle.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["model_version_status"]
        # The keep-alive connection stays open (and idle) across the shutdown.
        deadline = time.monotonic() + 30
        while len(loop.versions) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        status = server.terminate(timeout=20)
        took = time.monotonic() - started
    finally:
        loop.stop()
        idle.close()
    assert status == 0, server.stderr()
    assert took < 10, f"shutdown took {took:.1f}s"
    # Calls arriving after shutdown began are refused: UNAVAILABLE, or CANCELLED
    # when gRPC core drops a call it had not handed to a worker yet (timing).
    # Calls already being handled finish within the grace period; no other
    # error (INTERNAL, a half-written answer) may appear.
    refused = (grpc.StatusCode.UNAVAILABLE.name, grpc.StatusCode.CANCELLED.name)
    assert all(f.startswith(refused) for f in loop.failures), sorted(set(loop.failures))[:5]
    assert len(loop.versions) >= 20
    assert "shutting down" in server.stderr()


def _refuses_connections(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    except OSError:  # a timeout: the port still listens but does not accept
        return False
    return False


def test_sigterm_turns_not_ready_refuses_connections_and_finishes_in_flight(tmp_path):
    base = tmp_path / "retrieval"
    base.mkdir()
    support.save_version(base, 1, seed=1, module_class=support.SlowRetrieval)
    server = support.ServerProcess(
        base, tmp_path / "server.stderr", extra_args=["--drain_seconds=10"], rest=True
    )
    rest = urlparse(server.rest_url)
    outcomes: list[str] = []
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "retrieval"
        assert models.GetModelStatus(status_request, timeout=10).model_version_status[
            0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE

        def predict_rest(user):
            connection = http.client.HTTPConnection(rest.hostname, rest.port, timeout=30)
            body = json.dumps({"instances": [{"user_id": user, "history": [""]}]})
            try:
                connection.request("POST", "/v1/models/retrieval:predict", body)
                answer = connection.getresponse()
                outcomes.append("OK 1" if answer.status == 200 else
                                f"HTTP {answer.status}: {answer.read()[:200]!r}")
            except OSError as err:
                outcomes.append(f"REST {type(err).__name__}: {err}")
            finally:
                connection.close()

        def predict(user):
            if user.startswith("r"):
                predict_rest(user)
                return
            try:
                response = stub.Predict(support.predict_request([user], [[""]]), timeout=30)
                outcomes.append(f"OK {response.model_spec.version.value}")
            except grpc.RpcError as err:
                outcomes.append(f"{err.code().name}: {err.details()}")

        # 16 requests (4 over REST) of 0.1 s of model time each (the toy model
        # runs them one at a time), in flight when the signal arrives.
        clients = [threading.Thread(target=predict, args=(f"{i:x}",)) for i in range(12)]
        clients += [threading.Thread(target=predict, args=("r",)) for _ in range(4)]
        keep_alive = http.client.HTTPConnection(rest.hostname, rest.port, timeout=10)
        keep_alive.request("GET", "/v1/models/retrieval")
        assert json.loads(keep_alive.getresponse().read())["model_version_status"][0][
            "state"] == "AVAILABLE"
        for client in clients:
            client.start()
        time.sleep(0.3)
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        refused_after = None
        while time.monotonic() - signalled < 5:
            if _refuses_connections("127.0.0.1", server.port) and _refuses_connections(
                rest.hostname, rest.port
            ):
                refused_after = time.monotonic() - signalled
                break
            time.sleep(0.02)
        try:
            state = models.GetModelStatus(status_request, timeout=5).model_version_status[
                0].state
            not_ready = state != get_model_status_pb2.ModelVersionStatus.AVAILABLE
        except grpc.RpcError as err:
            not_ready = err.code() == grpc.StatusCode.UNAVAILABLE
        # A client on a connection opened before the signal learns it too.
        try:
            keep_alive.request("GET", "/v1/models/retrieval")
            rest_state = json.loads(keep_alive.getresponse().read())[
                "model_version_status"][0]["state"]
        except OSError:  # the connection was closed: also not ready
            rest_state = "closed"
        keep_alive.close()
        for client in clients:
            client.join(30)
        # Wait for the exit the one SIGTERM started: a second signal (what
        # `terminate` sends to a process still running) could land during
        # the interpreter's teardown, after the handler is gone, and kill it.
        try:
            exit_status = server.proc.wait(20)
        finally:
            server.terminate(timeout=5)
        took = time.monotonic() - signalled
    assert refused_after is not None and refused_after < 1.0, refused_after
    assert not_ready
    assert rest_state in ("UNLOADING", "closed"), rest_state
    assert sorted(outcomes) == ["OK 1"] * 16, outcomes
    assert exit_status == 0, server.stderr()
    assert took < 10, f"exit took {took:.1f}s after SIGTERM"
