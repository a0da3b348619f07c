"""When ModelRegistry loads a version: only once complete, retried after failures.

In-process, with a fake clock. Most tests use a fake loader that reads
``variables/variables.index`` as a real load would need it: it fails while the
file is missing or does not hold ``ok``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from serving.model_config import VersionPolicy
from serving.model_registry import ModelLoadError, ModelRegistry
from serving.saved_model_loader import READY_MARKER, ServedModel
from tests.serving import support


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class CheckpointLoader:
    """Loads a version whose ``variables/variables.index`` reads ``ok``.

    Args:
        clock: Records the clock time of every attempt in ``attempts``.
        flaky: Version -> how many attempts fail before one succeeds, as a
            transient error (say, memory) would, whatever the files hold.
    """

    def __init__(self, clock=None, flaky=None):
        self.clock = clock
        self.flaky = dict(flaky or {})
        self.attempts: dict[int, list[float]] = {}

    def __call__(self, version_dir, version):
        self.attempts.setdefault(version, []).append(self.clock() if self.clock else 0)
        if self.flaky.get(version, 0) > 0:
            self.flaky[version] -= 1
            raise MemoryError(f"transient failure loading {version}")
        index = os.path.join(version_dir, "variables", "variables.index")
        with open(index, "rb") as f:  # FileNotFoundError while not copied yet
            if f.read() != b"ok":
                raise ValueError(f"corrupt checkpoint in {version_dir}")
        return ServedModel(version, version_dir, {}, {}, None)


def _write(base, version, *, model=True, variables=None, marker=False):
    """Writes the parts of ``base/<version>`` asked for, in place (not atomically)."""
    version_dir = base / str(version)
    version_dir.mkdir(exist_ok=True)
    if model:
        (version_dir / "saved_model.pb").write_bytes(b"graph")
    if variables is not None:
        (version_dir / "variables").mkdir(exist_ok=True)
        (version_dir / "variables" / "variables.index").write_bytes(variables)
    if marker:
        (version_dir / READY_MARKER).write_bytes(b"")


def _registry(base, loader, clock, **kwargs):
    kwargs = {"settle_seconds": 5.0, "retry_initial_seconds": 2.0,
              "retry_max_seconds": 5.0, "clock": clock, **kwargs}
    return ModelRegistry("m", str(base), 0, loader, **kwargs)


def _states(registry):
    return {s.version: s.state for s in registry.statuses()}


def _model_stamp(base, version):
    stat = os.stat(base / str(version) / "saved_model.pb")
    return stat.st_mtime_ns, stat.st_size


def test_non_atomic_copy_is_served_once_its_files_settle(tmp_path):
    """A real SavedModel copied file by file, saved_model.pb first (as the
    stock Pusher copies), is loaded once the copy is over."""
    exports, base = tmp_path / "exports", tmp_path / "serving"
    exports.mkdir()
    base.mkdir()
    support.save_version(exports, 2, seed=2)
    support.save_version(base, 1, seed=1)
    clock = FakeClock()
    registry = ModelRegistry("m", str(base), 0, settle_seconds=5, clock=clock)
    assert registry.load_initial().version == 1

    (base / "2").mkdir()
    shutil.copyfile(exports / "2" / "saved_model.pb", base / "2" / "saved_model.pb")
    stamp = _model_stamp(base, 2)
    assert registry.poll_once() is False
    assert _states(registry) == {1: "AVAILABLE"}  # not attempted, not failed

    clock.advance(3)
    for name in os.listdir(exports / "2"):
        source = exports / "2" / name
        if source.is_dir():
            shutil.copytree(source, base / "2" / name)
        elif name not in ("saved_model.pb", READY_MARKER):
            shutil.copyfile(source, base / "2" / name)
    assert registry.poll_once() is False  # changed 0 s ago
    clock.advance(3)
    assert registry.poll_once() is False  # unchanged for 3 s < 5 s
    clock.advance(3)
    assert registry.poll_once() is True
    assert registry.current().version == 2
    assert _states(registry) == {1: "END", 2: "AVAILABLE"}
    assert _model_stamp(base, 2) == stamp


def test_version_with_ready_marker_loads_without_waiting(tmp_path):
    clock = FakeClock()
    loader = CheckpointLoader()
    _write(tmp_path, 1, variables=b"ok", marker=True)
    registry = _registry(tmp_path, loader, clock, settle_seconds=60)
    assert registry.load_initial().version == 1

    _write(tmp_path, 2)  # saved_model.pb only
    assert registry.poll_once() is False
    _write(tmp_path, 2, model=False, variables=b"ok")
    assert registry.poll_once() is False
    assert 2 not in loader.attempts and 2 not in _states(registry)

    _write(tmp_path, 2, model=False, marker=True)  # clock not advanced
    assert registry.poll_once() is True
    assert registry.current().version == 2
    assert loader.attempts[2] == [0]


def test_failed_load_is_retried_with_backoff_until_it_succeeds(tmp_path):
    clock = FakeClock()
    loader = CheckpointLoader(clock, flaky={2: 3})
    _write(tmp_path, 1, variables=b"ok", marker=True)
    _write(tmp_path, 2, variables=b"ok", marker=True)
    registry = _registry(tmp_path, loader, clock)
    start = clock.now
    assert registry.load_initial().version == 1  # version 2 failed, fell back
    [failed] = [s for s in registry.statuses() if s.version == 2]
    assert failed.state == "END" and failed.error_code != 0
    assert "transient failure loading 2" in failed.error_message

    while registry.current().version != 2 and clock.now < start + 30:
        clock.advance(1)
        registry.poll_once()
        if registry.current().version == 1:
            assert _states(registry) == {1: "AVAILABLE", 2: "END"}
    # Waits of 2, 4, then 5 s (the cap) between attempts.
    assert [t - start for t in loader.attempts[2]] == [0, 2, 6, 11]
    assert registry.current().version == 2
    assert _states(registry) == {1: "END", 2: "AVAILABLE"}
    assert [s.error_message for s in registry.statuses()] == ["", ""]


def test_failed_version_is_retried_once_its_files_are_fixed(tmp_path):
    clock = FakeClock()
    loader = CheckpointLoader(clock)
    _write(tmp_path, 1, variables=b"ok", marker=True)
    registry = _registry(tmp_path, loader, clock, settle_seconds=2,
                         retry_initial_seconds=100, retry_max_seconds=100)
    registry.load_initial()
    _write(tmp_path, 2, variables=b"garbage")
    stamp = _model_stamp(tmp_path, 2)
    registry.poll_once()
    clock.advance(3)
    assert registry.poll_once() is False
    assert "corrupt checkpoint" in registry.statuses()[1].error_message
    clock.advance(3)
    registry.poll_once()
    assert len(loader.attempts[2]) == 1  # backing off

    _write(tmp_path, 2, model=False, variables=b"ok")
    assert registry.poll_once() is False  # just changed: settling
    clock.advance(3)
    assert registry.poll_once() is True  # long before the 100 s backoff
    assert registry.current().version == 2
    assert len(loader.attempts[2]) == 2
    assert _model_stamp(tmp_path, 2) == stamp


def test_corrupt_version_never_blocks_a_newer_complete_one(tmp_path):
    clock = FakeClock()
    loader = CheckpointLoader(clock)
    _write(tmp_path, 1, variables=b"ok", marker=True)
    _write(tmp_path, 2, variables=b"ok", marker=True)
    registry = _registry(tmp_path, loader, clock)
    assert registry.load_initial().version == 2

    _write(tmp_path, 3, variables=b"garbage", marker=True)
    for _ in range(20):  # retried meanwhile; version 2 keeps serving
        registry.poll_once()
        assert registry.served_versions() == [2]
        clock.advance(1)
    assert len(loader.attempts[3]) > 2
    assert _states(registry) == {2: "AVAILABLE", 3: "END"}

    _write(tmp_path, 4)  # copied non-atomically, no marker
    registry.poll_once()
    _write(tmp_path, 4, model=False, variables=b"ok")
    registry.poll_once()
    assert registry.served_versions() == [2] and 4 not in loader.attempts
    clock.advance(6)
    assert registry.poll_once() is True
    assert registry.served_versions() == [4]
    assert _states(registry) == {2: "END", 3: "END", 4: "AVAILABLE"}
    assert registry.statuses()[1].error_message  # 3 still reports its failure

    attempts = len(loader.attempts[3])
    clock.advance(600)
    registry.poll_once()
    assert len(loader.attempts[3]) == attempts  # no longer selected: not retried


def test_latest_two_skips_a_corrupt_version_between_good_ones(tmp_path):
    clock = FakeClock()
    loader = CheckpointLoader(clock)
    for version in (1, 2):
        _write(tmp_path, version, variables=b"ok", marker=True)
    _write(tmp_path, 3, variables=b"garbage", marker=True)
    registry = ModelRegistry("m", str(tmp_path), 0, loader, VersionPolicy("latest", 2),
                             clock=clock)
    registry.load_initial()
    assert registry.served_versions() == [1, 2]
    _write(tmp_path, 4, variables=b"ok", marker=True)
    assert registry.poll_once() is True
    assert registry.served_versions() == [2, 4]


class _Writer(threading.Thread):
    """Adds a file to ``version_dir`` every 20 ms for ``seconds``, then
    completes it, as a slow copy would."""

    def __init__(self, version_dir, seconds):
        super().__init__(daemon=True)
        self.version_dir, self.seconds = version_dir, seconds

    def run(self):
        (self.version_dir / "variables").mkdir(exist_ok=True)
        end = time.monotonic() + self.seconds
        part = 0
        while time.monotonic() < end:
            (self.version_dir / "variables" / f"part-{part}").write_bytes(b"x")
            part += 1
            time.sleep(0.02)
        (self.version_dir / "variables" / "variables.index").write_bytes(b"ok")


def test_start_up_waits_for_an_unmarked_version_to_settle(tmp_path):
    loader = CheckpointLoader()
    _write(tmp_path, 1, variables=b"ok", marker=True)
    _write(tmp_path, 2, variables=b"ok")  # complete, but nothing says so
    registry = ModelRegistry("m", str(tmp_path), 0, loader, settle_seconds=0.3)
    started = time.monotonic()
    assert registry.load_initial().version == 2
    assert time.monotonic() - started >= 0.3
    assert 1 not in loader.attempts


def test_start_up_leaves_a_version_still_being_written_to_the_poller(tmp_path):
    loader = CheckpointLoader()
    _write(tmp_path, 1, variables=b"ok", marker=True)
    _write(tmp_path, 2)
    writer = _Writer(tmp_path / "2", seconds=1.0)
    writer.start()
    registry = ModelRegistry("m", str(tmp_path), 0, loader, settle_seconds=0.3)
    assert registry.load_initial().version == 1
    assert 2 not in loader.attempts and 2 not in _states(registry)
    writer.join()
    assert registry.poll_once() is False  # first sight of the finished copy
    time.sleep(0.4)
    assert registry.poll_once() is True
    assert registry.current().version == 2
    assert loader.attempts[2] == [0]


def test_start_up_with_only_a_version_being_written_names_it(tmp_path):
    _write(tmp_path, 7)
    writer = _Writer(tmp_path / "7", seconds=0.8)
    writer.start()
    registry = ModelRegistry("m", str(tmp_path), 0, CheckpointLoader(), settle_seconds=0.3)
    try:
        with pytest.raises(ModelLoadError, match=r"versions \[7\] still being written"):
            registry.load_initial()
    finally:
        writer.join()
    assert registry.statuses() == []
