"""ModelRegistry under each version policy, with a fake loader (no TensorFlow models).

The fake loader makes versions listed in ``broken`` raise, as a corrupt
SavedModel or a failing warm-up query does in ``load_version``.
"""

from __future__ import annotations

import shutil
import time

import pytest

from serving.model_config import VersionPolicy
from serving.model_registry import ModelLoadError, ModelRegistry, VersionNotServedError
from serving.saved_model_loader import READY_MARKER, ServedModel


class FakeLoader:
    def __init__(self, broken=()):
        self.broken = set(broken)
        self.loads: list[int] = []

    def __call__(self, version_dir, version):
        self.loads.append(version)
        if version in self.broken:
            raise RuntimeError(f"warm-up query failed for {version}")
        return ServedModel(version, version_dir, {}, {}, None)


def _add(base, *versions):
    for version in versions:
        (base / str(version)).mkdir()
        (base / str(version) / "saved_model.pb").write_bytes(b"x")
        (base / str(version) / READY_MARKER).write_bytes(b"")


def _registry(base, policy, loader):
    return ModelRegistry("m", str(base), 0, loader, policy)


def _states(registry):
    return {s.version: s.state for s in registry.statuses()}


def test_latest_two_serves_two_highest_and_rolls_forward(tmp_path):
    _add(tmp_path, 1, 2, 3)
    registry = _registry(tmp_path, VersionPolicy("latest", 2), FakeLoader())
    assert registry.load_initial().version == 3
    assert registry.served_versions() == [2, 3]
    assert registry.get(2).version == 2
    with pytest.raises(VersionNotServedError, match=r"version 1 is not loaded.*\[2, 3\]"):
        registry.get(1)

    _add(tmp_path, 4)
    assert registry.poll_once() is True
    assert registry.served_versions() == [3, 4]
    assert _states(registry) == {2: "END", 3: "AVAILABLE", 4: "AVAILABLE"}
    assert registry.poll_once() is False


def test_specific_serves_exactly_listed_versions(tmp_path):
    _add(tmp_path, 1, 2, 3)
    loader = FakeLoader()
    registry = _registry(tmp_path, VersionPolicy("specific", versions=(1, 3)), loader)
    registry.load_initial()
    assert registry.served_versions() == [1, 3]
    assert sorted(loader.loads) == [1, 3]  # version 2 never loaded
    _add(tmp_path, 4)
    assert registry.poll_once() is False
    assert registry.served_versions() == [1, 3]


def test_specific_with_no_listed_version_on_disk_fails_clearly(tmp_path):
    _add(tmp_path, 1)
    registry = _registry(tmp_path, VersionPolicy("specific", versions=(5,)), FakeLoader())
    with pytest.raises(ModelLoadError, match=r"specific versions \[5\]"):
        registry.load_initial()


def test_all_serves_every_version(tmp_path):
    _add(tmp_path, 1, 2)
    registry = _registry(tmp_path, VersionPolicy("all"), FakeLoader())
    registry.load_initial()
    _add(tmp_path, 5)
    registry.poll_once()
    assert registry.served_versions() == [1, 2, 5]


def test_failed_new_version_keeps_old_serving_and_is_reported(tmp_path):
    _add(tmp_path, 1)
    loader = FakeLoader(broken={2})
    registry = _registry(tmp_path, VersionPolicy(), loader)
    registry.load_initial()
    _add(tmp_path, 2)
    assert registry.poll_once() is False
    assert registry.current().version == 1
    [failed] = [s for s in registry.statuses() if s.version == 2]
    assert failed.state == "END" and failed.error_code != 0
    assert "warm-up query failed for 2" in failed.error_message
    registry.poll_once()  # not retried before its backoff delay has passed
    assert loader.loads.count(2) == 1


def test_latest_two_with_broken_newest_serves_next_two(tmp_path):
    _add(tmp_path, 1, 2, 3)
    registry = _registry(tmp_path, VersionPolicy("latest", 2), FakeLoader(broken={3}))
    registry.load_initial()
    assert registry.served_versions() == [1, 2]


def test_last_version_is_kept_when_its_directory_vanishes(tmp_path):
    _add(tmp_path, 1)
    registry = _registry(tmp_path, VersionPolicy(), FakeLoader())
    registry.load_initial()
    shutil.rmtree(tmp_path / "1")
    assert registry.poll_once() is False
    assert registry.current().version == 1


def _config(name, base, policy=None, labels=None):
    from serving.model_config import ModelConfig

    return ModelConfig(name, str(base), policy or VersionPolicy(), labels or {})


def test_manager_apply_adds_changes_and_removes_models(tmp_path):
    from serving.model_manager import ModelManager, ModelNotFoundError

    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    _add(tmp_path / "a", 1, 2)
    _add(tmp_path / "b", 4)
    _add(tmp_path / "c", 9)
    loader = FakeLoader()
    manager = ModelManager([_config("a", tmp_path / "a")], 0, loader)
    manager.load_initial()
    old_a = manager.get("a")

    result = manager.apply([
        _config("a", tmp_path / "a", VersionPolicy("all"), {"old": 1}),
        _config("b", tmp_path / "b"),
    ])
    assert (result.added, result.changed, result.removed) == (("b",), ("a",), ())
    assert manager.get("a") is old_a and old_a.served_versions() == [1, 2]
    assert old_a.version_labels == {"old": 1}
    assert manager.get("b").current().version == 4

    # A new base path swaps in a new registry; the old one is unloaded once idle.
    with manager.use("b") as old_b:
        result = manager.apply([_config("a", tmp_path / "a"), _config("b", tmp_path / "c")])
        assert result.changed == ("a", "b")
        assert manager.get("b").current().version == 9
        assert old_b.served_versions() == [4]  # still in use here
    assert old_b.wait_idle(5)
    deadline = time.monotonic() + 5
    while old_b.served_versions() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert old_b.served_versions() == []
    assert {s.state for s in old_b.statuses()} == {"END"}

    result = manager.apply([_config("b", tmp_path / "c"),
                            _config("new", tmp_path / "missing")])
    assert result.removed == ("a",) and result.failed == ("new",)
    with pytest.raises(ModelNotFoundError, match=r"model 'a' is not served.*\['b', 'new'\]"):
        manager.get("a")
    with pytest.raises(ModelLoadError, match="'new' has no loaded version"):
        manager.get("new").current()
