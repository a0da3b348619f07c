"""--model_config_file_poll_wait_seconds: the config file changes under a running server.

One real ``retrieval-serve`` process; the tests run in order and each rewrites
the config file, waits for the server's reload line on stdout, then talks to it
through the ``tensorflow-serving-api`` stubs.
"""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tests.serving import support

RELOADED = "retrieval-serve: reloaded model config file"
CONFIG_ERROR = "retrieval-serve: error: "
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


def _entry(name, base, extra=""):
    return f'config {{ name: "{name}" base_path: "{base}" {extra} }}\n'


def _write_config(path, *entries):
    # Write then rename, as a deployment tool would, so the poller never reads
    # half a file.
    staging = path.with_suffix(".tmp")
    staging.write_text("model_config_list {\n" + "".join(entries) + "}\n")
    staging.replace(path)


@pytest.fixture(scope="module")
def reloading(tmp_path_factory):
    root = tmp_path_factory.mktemp("reload")
    for name in ("a", "b", "slow"):
        (root / name).mkdir()
    modules = {
        ("a", 1): support.save_version(root / "a", 1, seed=11),
        ("a", 2): support.save_version(root / "a", 2, seed=12),
        ("b", 5): support.save_version(root / "b", 5, seed=50),
        ("slow", 1): support.save_version(
            root / "slow", 1, seed=90, module_class=support.SlowRetrieval),
    }
    config = root / "models.config"
    _write_config(config, _entry("a", root / "a"))
    server = support.ServerProcess(
        None,
        root / "server.stderr",
        extra_args=[f"--model_config_file={config}",
                    "--model_config_file_poll_wait_seconds=0.3",
                    "--allow_reload_config_request",
                    f"--reload_config_allowed_roots={root}"],
    )
    channel = grpc.insecure_channel(server.target)
    yield {
        "root": root,
        "config": config,
        "server": server,
        "modules": modules,
        "predict": prediction_service_pb2_grpc.PredictionServiceStub(channel),
        "status": model_service_pb2_grpc.ModelServiceStub(channel),
    }
    channel.close()
    assert server.terminate() == 0, server.stderr()


def _predict(stub, name, user="jo", version=None, label="", timeout=10):
    request = support.predict_request([user], [["item_1"]], model_name=name)
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    return stub.Predict(request, timeout=timeout)


def _expected(module, user="jo"):
    return module.serve(tf.constant([user]), tf.constant([["item_1"]]))["item_ids"].numpy()


def _assert_answers(env, name, version, module_key, **kwargs):
    response = _predict(env["predict"], name, **kwargs)
    assert (response.model_spec.name, response.model_spec.version.value) == (name, version)
    np.testing.assert_array_equal(
        tf.make_ndarray(response.outputs["item_ids"]), _expected(env["modules"][module_key]))


def _available(env, name):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    response = env["status"].GetModelStatus(request, timeout=10)
    return {s.version for s in response.model_version_status if s.state == AVAILABLE}


def test_model_added_to_the_config_is_loaded_and_served(reloading):
    env = reloading
    with pytest.raises(grpc.RpcError) as info:
        _predict(env["predict"], "b")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    _write_config(env["config"], _entry("a", env["root"] / "a"),
                  _entry("b", env["root"] / "b"))
    line = env["server"].wait_for_line(RELOADED)
    assert "added ['b']" in line, line
    _assert_answers(env, "b", 5, ("b", 5))
    _assert_answers(env, "a", 2, ("a", 2))
    assert _available(env, "b") == {5}


def test_broken_config_is_reported_and_old_models_keep_serving(reloading):
    env = reloading
    env["config"].write_text('model_config_list { config { name: "a" base_pth: "/x" } }')
    line = env["server"].wait_for_line(CONFIG_ERROR)
    assert str(env["config"]) in line and "base_pth" in line, line
    assert "keeping the previous config (models ['a', 'b'])" in line, line
    # Parsed fine but invalid: also rejected whole, nothing half-applied.
    _write_config(env["config"], _entry("a", env["root"] / "a"), _entry("a", "/elsewhere"))
    line = env["server"].wait_for_line(CONFIG_ERROR)
    assert str(env["config"]) in line and "model name 'a' appears twice" in line, line
    _assert_answers(env, "a", 2, ("a", 2))
    _assert_answers(env, "b", 5, ("b", 5))
    assert env["server"].proc.poll() is None


def test_changed_version_policy_and_labels_are_applied(reloading):
    env = reloading
    _write_config(
        env["config"],
        _entry("a", env["root"] / "a",
               "model_version_policy { specific { versions: 1 } } "
               'version_labels { key: "canary" value: 1 }'),
        _entry("b", env["root"] / "b"),
    )
    line = env["server"].wait_for_line(RELOADED)
    assert "changed ['a']" in line, line
    assert _available(env, "a") == {1}
    _assert_answers(env, "a", 1, ("a", 1))
    _assert_answers(env, "a", 1, ("a", 1), label="canary")
    with pytest.raises(grpc.RpcError) as info:
        _predict(env["predict"], "a", version=2)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_removed_model_finishes_its_in_flight_request_then_unloads(reloading):
    env = reloading
    root = env["root"]
    _write_config(env["config"], _entry("a", root / "a"), _entry("b", root / "b"),
                  _entry("slow", root / "slow"))
    assert "added ['slow']" in env["server"].wait_for_line(RELOADED)

    slow_user = "s" * 30  # SlowRetrieval sleeps 0.1 s per character: 3 s
    outcome = {}

    def slow_call():
        started = time.monotonic()
        try:
            outcome["response"] = _predict(env["predict"], "slow", user=slow_user, timeout=30)
        except grpc.RpcError as err:
            outcome["error"] = err
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.5)  # the request is now inside the slow signature
    _write_config(env["config"], _entry("a", root / "a"), _entry("b", root / "b"))
    line = env["server"].wait_for_line(RELOADED)
    assert "removed ['slow']" in line, line
    assert thread.is_alive(), "the slow request ended before the model was removed"
    assert "model 'slow': unloaded" not in env["server"].stderr()
    with pytest.raises(grpc.RpcError) as info:
        _predict(env["predict"], "slow")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "model 'slow' is not served; expected one of ['a', 'b']" in info.value.details()

    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["seconds"] >= 2.5
    np.testing.assert_array_equal(
        tf.make_ndarray(outcome["response"].outputs["item_ids"]),
        _expected(env["modules"][("slow", 1)], slow_user))
    deadline = time.monotonic() + 10
    while "model 'slow': unloaded versions [1]" not in env["server"].stderr():
        assert time.monotonic() < deadline, env["server"].stderr()
        time.sleep(0.1)


def test_reload_config_rpc_applies_a_config_and_rejects_a_bad_one(reloading):
    from tensorflow_serving.apis import model_management_pb2
    from tensorflow_serving.config import model_server_config_pb2

    env = reloading
    root = env["root"]
    request = model_management_pb2.ReloadConfigRequest()
    bad = request.config.model_config_list.config.add()
    bad.name = "a"  # no base_path
    with pytest.raises(grpc.RpcError) as info:
        env["status"].HandleReloadConfigRequest(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ReloadConfigRequest.config" in info.value.details()
    assert "('a') has no base_path" in info.value.details()
    _assert_answers(env, "b", 5, ("b", 5))  # nothing changed

    request = model_management_pb2.ReloadConfigRequest()
    for name in ("b", "slow"):
        entry = request.config.model_config_list.config.add()
        entry.name, entry.base_path = name, str(root / name)
    assert isinstance(request.config, model_server_config_pb2.ModelServerConfig)
    response = env["status"].HandleReloadConfigRequest(request, timeout=60)
    assert response.status.error_code == 0
    _assert_answers(env, "slow", 1, ("slow", 1))
    with pytest.raises(grpc.RpcError) as info:
        _predict(env["predict"], "a")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("where", ["/etc", "dotdot", "symlink"])
def test_reload_config_rpc_is_confined_to_the_allowed_roots(reloading, where):
    from tensorflow_serving.apis import model_management_pb2

    env = reloading
    root = env["root"]
    if where == "dotdot":
        base = f"{root}/b/../.."
    elif where == "symlink":
        link = root / "escape"
        if not link.exists():
            link.symlink_to("/etc")
        base = str(link)
    else:
        base = where
    before = env["server"].stderr()
    request = model_management_pb2.ReloadConfigRequest()
    entry = request.config.model_config_list.config.add()
    entry.name, entry.base_path = "evil", base
    with pytest.raises(grpc.RpcError) as info:
        env["status"].HandleReloadConfigRequest(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, info.value.details()
    assert "outside the configured model base paths" in info.value.details()
    assert str(root) in info.value.details()
    assert "loading model 'evil'" not in env["server"].stderr()[len(before):]
