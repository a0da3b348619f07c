"""All served models by name: one :class:`ModelRegistry` per configured model."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from serving.model_config import ModelConfig
from serving.model_registry import ModelLoadError, ModelRegistry
from serving.saved_model_loader import ServedModel, load_version


class ModelNotFoundError(LookupError):
    """No model of that name is configured."""


class ModelManager:
    """Looks models up by name and starts/stops their version pollers.

    Args:
        configs: One entry per served model (names are unique).
        poll_wait_seconds: ``--file_system_poll_wait_seconds``; 0 disables polling.
        loader: Version loader, injectable for tests.
    """

    def __init__(
        self,
        configs: Sequence[ModelConfig],
        poll_wait_seconds: float = 1.0,
        loader: Callable[[str, int], ServedModel] = load_version,
    ):
        self._registries = {
            c.name: ModelRegistry(
                c.name,
                c.base_path,
                poll_wait_seconds,
                loader,
                c.version_policy,
                c.version_labels,
            )
            for c in configs
        }

    @property
    def names(self) -> list[str]:
        return sorted(self._registries)

    def registries(self) -> list[ModelRegistry]:
        return [self._registries[name] for name in self.names]

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
        for registry in self.registries():
            registry.start_polling()

    def stop(self) -> None:
        for registry in self.registries():
            registry.stop()
