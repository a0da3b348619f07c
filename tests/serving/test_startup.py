"""Start-up failures and in-process units (validation, registry) that need no server."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from serving import model_registry, server, tensors
from tests.serving import support


def test_exits_nonzero_naming_path_when_nothing_loads(tmp_path):
    base = tmp_path / "empty_models"
    base.mkdir()
    support.write_corrupt_version(base, 1)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.server",
            "--port=0",
            f"--model_base_path={base}",
        ],
        cwd=support.REPO_ROOT,
        env=support.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert str(base) in result.stderr
    assert "retrieval-serve: error" in result.stderr
    assert "retrieval-serve: serving" not in result.stdout


def test_config_file_and_base_path_together_are_rejected(capsys):
    with pytest.raises(SystemExit) as info:
        server.parse_args(["--model_config_file=/x.cfg", "--model_base_path=/m"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--model_config_file=/x.cfg" in err and "expected one of them" in err


def test_no_model_source_is_rejected(capsys):
    with pytest.raises(SystemExit) as info:
        server.parse_args(["--port=1"])
    assert info.value.code == 2
    assert "--model_base_path" in capsys.readouterr().err


def test_bad_config_file_exits_naming_it(tmp_path):
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { name: 'a' } }")
    result = subprocess.run(
        [sys.executable, "-m", "serving.server", "--port=0",
         f"--model_config_file={config}"],
        cwd=support.REPO_ROOT, env=support.subprocess_env(),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert str(config) in result.stderr and "has no base_path" in result.stderr


def test_flags_accept_both_forms():
    args = server.parse_args(
        ["--port", "9000", "--model_base_path=/m", "--rest_api_port=0"]
    )
    assert (args.port, args.model_base_path, args.host) == (9000, "/m", "127.0.0.1")
    assert (args.max_batch_size, args.grpc_max_threads) == (1024, 16)
    assert (args.max_k, args.rest_api_num_threads) == (1000, 16)
    assert args.tensorflow_inter_op_parallelism == args.tensorflow_intra_op_parallelism == 0


def test_rest_port_must_differ_from_grpc_port(capsys):
    with pytest.raises(SystemExit):
        server.parse_args(["--port=9000", "--rest_api_port=9000", "--model_base_path=/m"])
    assert "--rest_api_port=9000" in capsys.readouterr().err


def test_registry_falls_back_and_records_failure(tmp_path):
    support.save_version(tmp_path, 1, seed=1)
    support.write_corrupt_version(tmp_path, 2)
    registry = model_registry.ModelRegistry("m", str(tmp_path), poll_wait_seconds=0)
    assert registry.load_initial().version == 1
    states = {s.version: (s.state, bool(s.error_message)) for s in registry.statuses()}
    assert states == {1: ("AVAILABLE", False), 2: ("END", True)}
    # A failed version is not retried before its backoff delay has passed.
    assert registry.poll_once() is False


def test_registry_without_versions_names_path(tmp_path):
    registry = model_registry.ModelRegistry("m", str(tmp_path / "missing"))
    with pytest.raises(model_registry.ModelLoadError, match="missing"):
        registry.load_initial()


def test_warmup_arrays_follow_spec():
    specs = {
        "a": tf.TensorSpec([None, None], tf.string),
        "b": tf.TensorSpec([None, 3], tf.int64),
    }
    warm = tensors.warmup_arrays(specs)
    assert warm["a"].shape == (1, 1) and warm["a"].dtype == object
    assert warm["a"][0, 0] == b""
    assert warm["b"].shape == (1, 3) and warm["b"].dtype == np.int64


def test_fixed_dimension_mismatch_is_named():
    spec = tf.TensorSpec([None, 3], tf.float32)
    proto = tf.make_tensor_proto([[1.0, 2.0]], dtype=tf.float32)
    with pytest.raises(
        tensors.InvalidInputError, match=r"'x' has size 2 in dimension 1"
    ):
        tensors.check_input("x", proto, spec, max_batch_size=10)
