"""Serves the highest version of one SavedModel and hot-swaps newer ones.

Layout (as for ``tensorflow_model_server``)::

    <base_path>/<version>/saved_model.pb   # version = decimal integer

The highest loadable version is served. A background thread polls the base path
and swaps in a newer version atomically; a version that fails to load or warm up
is recorded (for GetModelStatus) and the previous version keeps serving.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses
import logging
import threading
from collections.abc import Callable

import tensorflow as tf

from serving.saved_model_loader import ServedModel, load_version, scan_versions

log = logging.getLogger(__name__)

# tensorflow.error.Code values used in ModelVersionStatus.status.
CODE_OK = 0
CODE_UNKNOWN = 2


class ModelLoadError(RuntimeError):
    """No version of the model could be loaded."""


@dataclasses.dataclass
class VersionStatus:
    """Load outcome of one version, reported by GetModelStatus.

    Attributes:
        version: Numeric version.
        state: ``"AVAILABLE"`` (served) or ``"END"`` (failed or replaced).
        error_code: ``tensorflow.error.Code`` value, 0 when OK.
        error_message: Load/warm-up error, empty when OK.
    """

    version: int
    state: str
    error_code: int = CODE_OK
    error_message: str = ""


def _error_code(err: BaseException) -> int:
    """Maps an exception to a ``tensorflow.error.Code`` value."""
    if isinstance(err, tf.errors.OpError):
        return int(err.error_code)
    return CODE_UNKNOWN


class ModelRegistry:
    """Serves the highest loadable version of one model and polls for newer ones.

    Thread-safe: :meth:`current` hands out an immutable :class:`ServedModel`, so
    a request keeps using the version it started with even if a swap happens.

    Args:
        name: Model name clients must use in ``model_spec.name``.
        base_path: Directory holding numeric version subdirectories.
        poll_wait_seconds: Polling period; 0 disables polling.
        loader: ``(version_dir, version) -> ServedModel``; injectable for tests.
    """

    def __init__(
        self,
        name: str,
        base_path: str,
        poll_wait_seconds: float = 1.0,
        loader: Callable[[str, int], ServedModel] = load_version,
    ):
        self.name = name
        self.base_path = base_path
        self.poll_wait_seconds = poll_wait_seconds
        self._loader = loader
        self._lock = threading.Lock()
        self._current: ServedModel | None = None
        self._statuses: dict[int, VersionStatus] = {}
        self._failed_stamps: dict[int, tuple[float, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_gone = False

    def current(self) -> ServedModel:
        """Returns the served model (raises ModelLoadError before the first load)."""
        with self._lock:
            if self._current is None:
                raise ModelLoadError(f"model '{self.name}' has no loaded version")
            return self._current

    def statuses(self) -> list[VersionStatus]:
        """Returns a copy of every known version's status, sorted by version."""
        with self._lock:
            return [dataclasses.replace(s) for _, s in sorted(self._statuses.items())]

    def load_initial(self) -> ServedModel:
        """Loads the highest loadable version, falling back to lower ones.

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
        for version in sorted(found, reverse=True):
            if self._try_load(version, found[version]):
                return self.current()
        errors = "; ".join(
            f"version {s.version}: {s.error_message}" for s in self.statuses()
        )
        raise ModelLoadError(
            f"no version under {self.base_path} could be loaded ({errors})"
        )

    def poll_once(self) -> bool:
        """Loads and swaps in a newer version if one appeared.

        Also falls back to the highest remaining version if the served version's
        directory was deleted (the same "serve the latest" policy as TF Serving).

        Returns:
            True if the served version changed.
        """
        found = scan_versions(self.base_path)
        served = self.current().version
        served_gone = served not in found
        candidates = [
            v
            for v in found
            if v != served
            and (v > served or served_gone)
            and self._failed_stamps.get(v) != found[v]
        ]
        for version in sorted(candidates, reverse=True):
            if self._try_load(version, found[version]):
                return True
        if served_gone and not self._warned_gone:
            self._warned_gone = True
            log.warning(
                "served version %d vanished from %s and no other version loads; "
                "keeping it in memory",
                served,
                self.base_path,
            )
        return False

    def _try_load(self, version: int, stamp: tuple[float, int]) -> bool:
        """Loads ``version``; on success swaps it in, on failure records the error."""
        version_dir = os.path.join(self.base_path, str(version))
        log.info(
            "loading model '%s' version %d from %s", self.name, version, version_dir
        )
        try:
            model = self._loader(version_dir, version)
        except Exception as err:  # any load failure must not take the server down
            log.exception(
                "failed to load model '%s' version %d from %s",
                self.name,
                version,
                version_dir,
            )
            with self._lock:
                self._failed_stamps[version] = stamp
                self._statuses[version] = VersionStatus(
                    version,
                    "END",
                    _error_code(err),
                    f"failed to load {version_dir}: {type(err).__name__}: {err}",
                )
            return False
        with self._lock:
            previous = self._current
            self._current = model
            self._failed_stamps.pop(version, None)
            self._warned_gone = False
            self._statuses[version] = VersionStatus(version, "AVAILABLE")
            if previous is not None:
                self._statuses[previous.version] = VersionStatus(
                    previous.version, "END"
                )
        log.info(
            "serving model '%s' version %d%s",
            self.name,
            version,
            f" (replaces version {previous.version})" if previous else "",
        )
        return True

    def start_polling(self) -> None:
        """Starts the background polling thread (no-op if polling is disabled)."""
        if self.poll_wait_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._poll_loop, name="model-version-poller", daemon=True
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
