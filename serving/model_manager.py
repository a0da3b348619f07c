"""All served models by name: one :class:`ModelRegistry` per configured model.

The set of models can change while the server runs (``--model_config_file``
re-read every ``--model_config_file_poll_wait_seconds``, as in
``tensorflow_model_server``): :meth:`ModelManager.apply` loads and warms up the
added models before they become visible, applies changed version policies and
labels, and unloads removed models once the requests using them have finished.
Requests look models up in an immutable name -> registry snapshot that an apply
replaces whole, so a lookup never sees a half-applied config.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Sequence

from serving.model_config import (
    ConfigError,
    ModelConfig,
    parse_config_text,
    read_config_text,
)
from serving.model_registry import ModelLoadError, ModelRegistry
from serving.saved_model_loader import ServedModel, load_version

log = logging.getLogger(__name__)


class ModelNotFoundError(LookupError):
    """No model of that name is configured."""


@dataclasses.dataclass(frozen=True)
class ReloadResult:
    """What one config apply changed (model names, sorted).

    Attributes:
        added: Models that were not served before.
        removed: Models no longer in the config (unloaded once idle).
        changed: Models whose base path, version policy or labels changed.
        failed: Added/changed models none of whose versions loaded yet (they
            are kept and their base paths polled; GetModelStatus has the errors).
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [
            f"{what} {list(names)}"
            for what, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
                ("no loadable version yet", self.failed),
            )
            if names
        ]
        return ", ".join(parts) or "no changes"


class ModelManager:
    """Looks models up by name, starts/stops their version pollers, reloads configs.

    Args:
        configs: One entry per served model (names are unique).
        poll_wait_seconds: ``--file_system_poll_wait_seconds``; 0 disables polling.
        loader: Version loader, injectable for tests.
        settle_seconds, retry_initial_seconds, retry_max_seconds: When a
            version counts as completely written and how failed loads are
            retried; passed to every :class:`ModelRegistry`.
    """

    def __init__(
        self,
        configs: Sequence[ModelConfig],
        poll_wait_seconds: float = 1.0,
        loader: Callable[[str, int], ServedModel] = load_version,
        *,
        settle_seconds: float = 2.0,
        retry_initial_seconds: float = 5.0,
        retry_max_seconds: float = 300.0,
    ):
        self._poll_wait_seconds = poll_wait_seconds
        self._loader = loader
        self._version_loading = {
            "settle_seconds": settle_seconds,
            "retry_initial_seconds": retry_initial_seconds,
            "retry_max_seconds": retry_max_seconds,
        }
        self._configs = {c.name: c for c in configs}
        # name -> registry; replaced whole by apply(), never mutated.
        self._registries = {c.name: self._new_registry(c) for c in configs}
        self._apply_lock = threading.Lock()
        self._polling = False
        self._stop = threading.Event()
        self._config_thread: threading.Thread | None = None
        self._drains: list[threading.Thread] = []

    def _new_registry(self, config: ModelConfig) -> ModelRegistry:
        return ModelRegistry(
            config.name,
            config.base_path,
            self._poll_wait_seconds,
            self._loader,
            config.version_policy,
            config.version_labels,
            **self._version_loading,
        )

    @property
    def names(self) -> list[str]:
        return sorted(self._registries)

    def registries(self) -> list[ModelRegistry]:
        registries = self._registries
        return [registries[name] for name in sorted(registries)]

    def get(self, name: str) -> ModelRegistry:
        """Returns the registry of model ``name``.

        Raises:
            ModelNotFoundError: Naming the served models.
        """
        registry = self._registries.get(name)
        if registry is None:
            raise ModelNotFoundError(
                f"model '{name}' is not served; expected one of {self.names}"
            )
        return registry

    @contextlib.contextmanager
    def use(self, name: str) -> Iterator[ModelRegistry]:
        """Looks model ``name`` up and counts the caller as a request using it,
        so a config reload that removes the model unloads it only afterwards."""
        registry = self.get(name)
        registry.acquire()
        try:
            yield registry
        finally:
            registry.release()

    def load_initial(self) -> None:
        """Loads every model; a model with no loadable version fails start-up.

        Raises:
            ModelLoadError: Naming the model that could not be loaded.
        """
        for registry in self.registries():
            try:
                registry.load_initial()
            except ModelLoadError as err:
                raise ModelLoadError(f"model '{registry.name}': {err}") from err

    def start_polling(self) -> None:
        self._polling = True
        for registry in self.registries():
            registry.start_polling()

    # ---------------------------------------------------------- config reload

    def apply(self, configs: Sequence[ModelConfig]) -> ReloadResult:
        """Makes the served models match ``configs``.

        Added models (and models whose base path changed) are loaded and warmed
        up before the new model list is published; a model none of whose
        versions loads is still added, reports its errors in GetModelStatus and
        is picked up by its poller once a good version appears. Changed version
        policies and labels are applied in place. Removed models disappear from
        lookups at once and are unloaded after their in-flight requests finish.
        """
        with self._apply_lock:
            old = self._registries
            new: dict[str, ModelRegistry] = {}
            added, changed, failed, retired = [], [], [], []
            for config in configs:
                registry = old.get(config.name)
                previous = self._configs.get(config.name)
                if registry is not None and previous.base_path == config.base_path:
                    if (previous.version_policy, previous.version_labels) != (
                        config.version_policy, config.version_labels
                    ):
                        registry.reconfigure(config.version_policy, config.version_labels)
                        changed.append(config.name)
                    new[config.name] = registry
                    continue
                registry_new = self._new_registry(config)
                try:
                    registry_new.load_initial()
                except ModelLoadError as err:
                    log.error("model '%s' (%s): %s", config.name, config.base_path, err)
                    failed.append(config.name)
                new[config.name] = registry_new
                if registry is None:
                    added.append(config.name)
                else:  # base path changed: the old registry goes once idle
                    changed.append(config.name)
                    retired.append(registry)
            removed = sorted(set(old) - set(new))
            retired += [old[name] for name in removed]
            self._registries = new
            self._configs = {c.name: c for c in configs}
            if self._polling:
                for config in configs:
                    new[config.name].start_polling()
            for registry in retired:
                self._drain(registry)
            return ReloadResult(
                tuple(sorted(added)), tuple(removed), tuple(sorted(changed)),
                tuple(sorted(failed)),
            )

    def _drain(self, registry: ModelRegistry) -> None:
        """Unloads ``registry`` in the background once no request uses it."""

        def drain():
            registry.wait_idle()
            registry.retire()

        thread = threading.Thread(target=drain, name=f"unload-{registry.name}", daemon=True)
        self._drains = [t for t in self._drains if t.is_alive()] + [thread]
        thread.start()

    def start_config_polling(
        self,
        path: str,
        wait_seconds: float,
        report: Callable[[str], None] = log.info,
        report_error: Callable[[str], None] = log.error,
    ) -> None:
        """Re-reads ``path`` every ``wait_seconds`` and applies it when its text
        changes (``--model_config_file_poll_wait_seconds``).

        A file that cannot be read or parsed is reported once per distinct text
        (``report_error``) and the current models keep serving unchanged.
        """
        if wait_seconds <= 0 or self._config_thread is not None:
            return
        try:
            applied = read_config_text(path)
        except ConfigError:
            applied = None

        def poll():
            last_text, last_error = applied, None
            while not self._stop.wait(wait_seconds):
                try:
                    text = read_config_text(path)
                    if text == last_text:
                        continue
                    result = self.apply(parse_config_text(text, path))
                except ConfigError as err:
                    message = f"{err}; keeping the previous config (models {self.names})"
                    if message != last_error:
                        report_error(message)
                        last_error = message
                    continue
                except Exception as err:  # keep polling whatever happens
                    log.exception("reloading model config file %s failed", path)
                    report_error(f"reloading model config file {path} failed: {err}")
                    continue
                last_text, last_error = text, None
                report(f"reloaded model config file {path}: {result.describe()}; "
                       f"serving {self.names}")

        self._config_thread = threading.Thread(target=poll, name="config-poller", daemon=True)
        self._config_thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._config_thread is not None:
            self._config_thread.join()
            self._config_thread = None
        for registry in self.registries():
            registry.stop()
