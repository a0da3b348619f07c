"""Serves the versions of one model its version policy selects; hot-swaps new ones.

Layout (as for ``tensorflow_model_server``)::

    <base_path>/<version>/saved_model.pb   # version = decimal integer

A background thread polls the base path. A new version is loaded and warmed up
*before* it is published, so requests never see a half-loaded model; versions
the policy no longer selects are then unloaded.

Only complete versions are loaded. A version directory is complete once it
holds the ``READY_MARKER`` file of :mod:`serving.saved_model_loader` (written
last by an exporter that writes into the served directory), or else once the
recursive listing of its files (names, sizes, modification times) has stayed
unchanged for ``settle_seconds`` (0: as soon as ``saved_model.pb`` exists). A
version still being written is neither loaded nor reported: the policy picks
among the complete versions, so a half-copied version never replaces the
served one. A copy that pauses for longer than ``settle_seconds`` is caught by
the retries below.

A version that fails to load or warm up is reported by GetModelStatus (state
``END`` with the error) until a later attempt succeeds, and the policy falls
back past it, so a corrupt version never blocks a newer complete one and the
versions already served keep serving. It is retried, for as long as the
policy would pick it, after ``retry_initial_seconds``, the delay doubling after
each failure up to ``retry_max_seconds``. A change to its files cancels the
delay: it is retried as soon as it is complete again.

Start-up (:meth:`ModelRegistry.load_initial`): if a version the policy would
pick is not complete yet (every version without the marker, at first sight),
start-up waits ``settle_seconds`` once and looks again. Versions complete then
are loaded; those still changing are left to the poller and are not failures.
Start-up fails only if nothing could be loaded, naming the load errors and the
versions still being written.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

import tensorflow as tf

from serving.model_config import VersionPolicy
from serving.saved_model_loader import (
    ServedModel,
    VersionFiles,
    load_version,
    scan_versions,
    version_files,
)

log = logging.getLogger(__name__)

# tensorflow.error.Code values used in ModelVersionStatus.status.
CODE_OK = 0
CODE_UNKNOWN = 2


class ModelLoadError(RuntimeError):
    """No version of the model could be loaded."""


class VersionNotServedError(LookupError):
    """The requested version is not among the served ones."""


@dataclasses.dataclass
class VersionStatus:
    """Load outcome of one version, reported by GetModelStatus.

    Attributes:
        version: Numeric version.
        state: ``"AVAILABLE"`` (served) or ``"END"`` (failed or unloaded).
        error_code: ``tensorflow.error.Code`` value, 0 when OK.
        error_message: Load/warm-up error, empty when OK.
    """

    version: int
    state: str
    error_code: int = CODE_OK
    error_message: str = ""


@dataclasses.dataclass
class _Track:
    """What the registry knows about one on-disk version it has looked at.

    Attributes:
        files: The version directory's listing when last looked at.
        since: Clock time at which ``files`` was first seen.
        failures: Failed load attempts since the files last changed.
        retry_delay: Wait after the last failure, None before any failure.
        retry_at: Clock time before which a failed version is not retried.
    """

    files: VersionFiles
    since: float
    failures: int = 0
    retry_delay: float | None = None
    retry_at: float | None = None


# Outcomes of ModelRegistry._readiness.
_READY = "ready"
_PENDING = "pending"  # still being written
_BACKOFF = "backoff"  # failed; waiting for its retry time


def _error_code(err: BaseException) -> int:
    """Maps an exception to a ``tensorflow.error.Code`` value."""
    if isinstance(err, tf.errors.OpError):
        return int(err.error_code)
    return CODE_UNKNOWN


class ModelRegistry:
    """The served versions of one model.

    Reads are lock-free: the served versions live in an immutable snapshot that
    a load or unload replaces as a whole, so a request keeps the version it
    started with even if a swap happens meanwhile.

    Args:
        name: Model name clients must use in ``model_spec.name``.
        base_path: Directory holding numeric version subdirectories.
        poll_wait_seconds: Polling period; 0 disables polling.
        loader: ``(version_dir, version) -> ServedModel``; injectable for tests.
        version_policy: Which versions to serve (default: the latest one).
        version_labels: Label -> version, for ``model_spec.version_label``.
        settle_seconds: How long the files of a version without the ready
            marker must stay unchanged before it is loaded; 0 loads a version
            as soon as its saved_model.pb exists.
        retry_initial_seconds: Wait before the first retry of a failed version.
        retry_max_seconds: Cap of the retry wait, which doubles per failure.
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        name: str,
        base_path: str,
        poll_wait_seconds: float = 1.0,
        loader: Callable[[str, int], ServedModel] = load_version,
        version_policy: VersionPolicy | None = None,
        version_labels: dict[str, int] | None = None,
        *,
        settle_seconds: float = 2.0,
        retry_initial_seconds: float = 5.0,
        retry_max_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name = name
        self.base_path = base_path
        self.poll_wait_seconds = poll_wait_seconds
        self.settle_seconds = settle_seconds
        self.retry_initial_seconds = retry_initial_seconds
        self.retry_max_seconds = retry_max_seconds
        self._clock = clock
        self.version_policy = version_policy or VersionPolicy()
        self.version_labels = dict(version_labels or {})
        self._loader = loader
        # (versions -> model, highest model); replaced whole, never mutated.
        self._snapshot: tuple[dict[int, ServedModel], ServedModel | None] = ({}, None)
        self._lock = threading.Lock()  # guards _statuses and snapshot replacement
        self._sync_lock = threading.Lock()  # one load/unload pass at a time
        self._statuses: dict[int, VersionStatus] = {}
        # On-disk versions looked at (guarded by _sync_lock).
        self._tracks: dict[int, _Track] = {}
        # Versions the policy would pick that were still being written at the
        # last sync (guarded by _sync_lock).
        self._pending: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_stale = False
        self._in_flight = 0
        self._idle = threading.Condition()

    # ---------------------------------------------------------- in-flight use

    def acquire(self) -> None:
        """Counts one request using this model (pair with :meth:`release`)."""
        with self._idle:
            self._in_flight += 1

    def release(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Blocks until no request uses this model; False if ``timeout`` passed."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # ------------------------------------------------------------------ reads

    def current(self) -> ServedModel:
        """Returns the highest served version (raises ModelLoadError if none)."""
        latest = self._snapshot[1]
        if latest is None:
            raise ModelLoadError(f"model '{self.name}' has no loaded version")
        return latest

    def get(self, version: int) -> ServedModel:
        """Returns served ``version``.

        Raises:
            VersionNotServedError: Naming the served versions.
        """
        served = self._snapshot[0]
        model = served.get(version)
        if model is None:
            raise VersionNotServedError(
                f"model '{self.name}' version {version} is not loaded; "
                f"served versions: {sorted(served)}"
            )
        return model

    def served_versions(self) -> list[int]:
        return sorted(self._snapshot[0])

    def statuses(self) -> list[VersionStatus]:
        """Returns a copy of every known version's status, sorted by version."""
        with self._lock:
            return [dataclasses.replace(s) for _, s in sorted(self._statuses.items())]

    # ------------------------------------------------------------ load/unload

    def load_initial(self) -> ServedModel:
        """Loads the versions the policy selects (falling back past failures).

        Waits once, a little over ``settle_seconds``, if a version the policy
        would pick is still being written (see the module docstring).

        Raises:
            ModelLoadError: Naming the base path, if no version loads.
        """
        if not os.path.isdir(self.base_path):
            raise ModelLoadError(f"model base path {self.base_path} is not a directory")
        found = scan_versions(self.base_path)
        if not found:
            raise ModelLoadError(
                f"no model versions under {self.base_path} "
                "(expected <base_path>/<version>/saved_model.pb)"
            )
        with self._sync_lock:
            _, pending = self._plan(found, set())
        if pending and self.settle_seconds > 0:
            log.info(
                "model '%s': waiting %gs for the files of versions %s to stop changing",
                self.name, self.settle_seconds, sorted(pending),
            )
            # The margin keeps a coarse timer from waking just short of it.
            self._stop.wait(self.settle_seconds * 1.05 + 0.05)
            found = scan_versions(self.base_path)
        self._sync(found)
        if not self._snapshot[0]:
            problems = [
                f"version {s.version}: {s.error_message}"
                for s in self.statuses() if s.error_message
            ]
            if self._pending:
                problems.append(
                    f"versions {sorted(self._pending)} still being written (their "
                    f"files changed within the last {self.settle_seconds:g}s)"
                )
            errors = "; ".join(problems) or f"found versions {sorted(found)}"
            raise ModelLoadError(
                f"no version under {self.base_path} could be loaded with policy "
                f"{self.version_policy.describe()} ({errors})"
            )
        return self.current()

    def poll_once(self) -> bool:
        """Loads newly selected versions and unloads deselected ones.

        Returns:
            True if the set of served versions changed.
        """
        return self._sync(scan_versions(self.base_path))

    def _sync(self, found: dict[int, tuple[float, int]]) -> bool:
        with self._sync_lock:
            for version in set(self._tracks) - set(found):
                del self._tracks[version]
            changed = False
            attempted: set[int] = set()
            while True:
                wanted, self._pending = self._plan(found, attempted)
                missing = sorted(wanted - set(self._snapshot[0]), reverse=True)
                if not missing:
                    break
                # A failure puts the version in backoff, so the next pass
                # re-plans without it.
                attempted.add(missing[0])
                changed |= self._try_load(missing[0])
            stale = set(self._snapshot[0]) - wanted
            if stale and wanted & set(self._snapshot[0]):
                self._unload(stale)
                changed = True
            elif stale and not self._warned_stale:
                # Never drop the last working version: keep serving it from memory.
                self._warned_stale = True
                log.warning(
                    "model '%s': versions %s are no longer selected (%s) but nothing "
                    "else is loaded; keeping them in memory",
                    self.name,
                    sorted(stale),
                    self.version_policy.describe(),
                )
            return changed

    def _plan(
        self, found: dict[int, tuple[float, int]], attempted: set[int]
    ) -> tuple[set[int], set[int]]:
        """Picks the versions to serve among the loadable ones in ``found``.

        Only versions the policy would pick are looked at: a version that is
        not loadable (still being written, or failed and waiting to be
        retried) is set aside and the policy picks again among the rest.
        Served versions count as loadable; ``attempted`` ones (this pass) not.

        Returns:
            (versions to serve, versions set aside as still being written).
        """
        served = set(self._snapshot[0])
        now = self._clock()
        set_aside: set[int] = set()
        pending: set[int] = set()
        checked: set[int] = set()
        while True:
            candidates = self.version_policy.select(set(found) - set_aside)
            unchecked = candidates - checked
            if not unchecked:
                return candidates, pending
            for version in unchecked:
                checked.add(version)
                if version in served:
                    continue
                state = _BACKOFF if version in attempted else self._readiness(version, now)
                if state != _READY:
                    set_aside.add(version)
                    if state == _PENDING:
                        pending.add(version)

    def _readiness(self, version: int, now: float) -> str:
        """Says whether ``version`` may be loaded now (see the module docstring)."""
        files = version_files(os.path.join(self.base_path, str(version)))
        track = self._tracks.get(version)
        if track is None or track.files != files:
            if track is None and not files.ready and self.settle_seconds > 0:
                log.info(
                    "model '%s' version %d: loading once its files have not changed "
                    "for %gs", self.name, version, self.settle_seconds,
                )
            if track is not None and track.failures:
                log.info(
                    "model '%s' version %d: files changed since its failed load; "
                    "retrying once complete", self.name, version,
                )
            track = self._tracks[version] = _Track(files, now)
        complete = (
            files.ready
            or self.settle_seconds <= 0
            or now - track.since >= self.settle_seconds
        )
        if not complete:
            return _PENDING
        if track.retry_at is not None and now < track.retry_at:
            return _BACKOFF
        return _READY

    def _publish(self, served: dict[int, ServedModel]) -> None:
        latest = served[max(served)] if served else None
        self._snapshot = (served, latest)

    def _try_load(self, version: int) -> bool:
        """Loads ``version``; on success publishes it, on failure records the
        error and when to retry."""
        version_dir = os.path.join(self.base_path, str(version))
        track = self._tracks[version]
        log.info("loading model '%s' version %d from %s", self.name, version, version_dir)
        try:
            model = self._loader(version_dir, version)
        except Exception as err:  # any load failure must not take the server down
            track.failures += 1
            track.retry_delay = min(
                self.retry_initial_seconds
                if track.retry_delay is None
                else track.retry_delay * 2,
                self.retry_max_seconds,
            )
            track.retry_at = self._clock() + track.retry_delay
            log.exception(
                "failed to load model '%s' version %d from %s (failure %d; "
                "retrying in %gs or once its files change)",
                self.name,
                version,
                version_dir,
                track.failures,
                track.retry_delay,
            )
            with self._lock:
                self._statuses[version] = VersionStatus(
                    version,
                    "END",
                    _error_code(err),
                    f"failed to load {version_dir}: {type(err).__name__}: {err}",
                )
            return False
        track.failures, track.retry_delay, track.retry_at = 0, None, None
        with self._lock:
            self._publish({**self._snapshot[0], version: model})
            self._warned_stale = False
            self._statuses[version] = VersionStatus(version, "AVAILABLE")
        log.info("serving model '%s' version %d", self.name, version)
        return True

    def _unload(self, versions: set[int]) -> None:
        with self._lock:
            self._publish(
                {v: m for v, m in self._snapshot[0].items() if v not in versions}
            )
            for version in versions:
                self._statuses[version] = VersionStatus(version, "END")
        log.info("model '%s': unloaded versions %s", self.name, sorted(versions))

    def reconfigure(
        self, version_policy: VersionPolicy, version_labels: dict[str, int]
    ) -> bool:
        """Applies a new version policy and labels (from a reloaded config).

        Versions the new policy selects are loaded and warmed up before the
        ones it drops are unloaded, as for a new version on disk.

        Returns:
            True if the set of served versions changed.
        """
        with self._sync_lock:
            self.version_policy = version_policy
            self._warned_stale = False
        # Labels are read lock-free by requests: replace the dict whole.
        self.version_labels = dict(version_labels)
        return self.poll_once()

    def retire(self) -> None:
        """Stops polling and unloads every version (the model left the config).

        Call once no request uses the model any more (:meth:`wait_idle`).
        """
        self.stop()
        with self._sync_lock, self._lock:
            versions = sorted(self._snapshot[0])
            self._publish({})
            for version in versions:
                self._statuses[version] = VersionStatus(version, "END")
        log.info("model '%s': unloaded versions %s (removed from the config)",
                 self.name, versions)

    # ---------------------------------------------------------------- polling

    def start_polling(self) -> None:
        """Starts the background polling thread (no-op if polling is disabled)."""
        if self.poll_wait_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._poll_loop, name=f"poller-{self.name}", daemon=True
        )
        self._thread.start()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_wait_seconds):
            try:
                self.poll_once()
            except Exception:  # keep polling; a transient FS error must not stop it
                log.exception("error while polling %s", self.base_path)

    def stop(self) -> None:
        """Stops the polling thread and waits for it to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
