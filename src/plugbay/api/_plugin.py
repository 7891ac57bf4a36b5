"""The plugin interfaces of the spec: ``Plugin`` and its three categories.

Identity (id, version, type, capabilities, dependencies) comes from the static
manifest; the host sets it on the instance before ``initialize``. A class may
also state ``id``/``version`` itself, as the spec's examples do: the host then
checks that class and manifest agree.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, TypeVar

from plugbay.api._command import Command, command_specs
from plugbay.api._context import PluginContext
from plugbay.api._types import (
    EndpointConfig,
    Feature,
    HookConfig,
    Message,
    PluginDependency,
    PluginType,
    SystemConfig,
    SystemEvent,
    SystemHook,
    SystemInfo,
)
from plugbay.api.errors import CommandNotFound, PluginStateError

__all__ = [
    "ExtensionPlugin",
    "IntegrationPlugin",
    "Plugin",
    "SystemPlugin",
    "UtilityPlugin",
]

T = TypeVar("T")


class Plugin(abc.ABC):
    """Base of every plugin (the spec's ``Plugin``)."""

    #: the category this class implements; set by the category base classes
    type: ClassVar[PluginType] = "utility"

    id: str
    version: str
    capabilities: tuple[str, ...]
    dependencies: tuple[PluginDependency, ...]
    context: PluginContext

    async def initialize(self, context: PluginContext) -> None:
        """Prepare the plugin. Runs once, after its dependencies are active."""

    async def execute(self, command: Command[T]) -> T:
        """Run ``command``. The default dispatches to the ``@command`` method of that name.

        The host calls commands through this method only when a plugin overrides
        it; otherwise it goes straight to the command, with the same checks.
        """
        spec = command_specs(type(self)).get(command.name)
        if spec is None:
            raise CommandNotFound(
                f"no command '{command.name}'",
                plugin=getattr(self, "id", type(self).__name__),
                hint=f"commands: {', '.join(sorted(command_specs(type(self)))) or 'none'}",
            )
        params = spec.validate_params(command.params)
        if spec.is_async:
            result = await spec.func(self, **params)
        else:
            result = spec.func(self, **params)
        return spec.validate_result(result)  # type: ignore[no-any-return]

    async def cleanup(self) -> None:
        """Release what ``initialize`` acquired. Runs on unload and on shutdown."""


class SystemPlugin(Plugin):
    """A plugin that watches and configures the host itself (the spec's ``SystemPlugin``)."""

    type: ClassVar[PluginType] = "system"
    #: lower runs first when events are delivered
    priority: ClassVar[int] = 100
    #: event kinds (or ``prefix.*``) this plugin wants; empty means all
    system_hooks: ClassVar[tuple[SystemHook, ...]] = ()

    async def on_system_event(self, event: SystemEvent) -> None:
        """Called for each host event matching ``system_hooks``, in priority order."""

    def get_system_info(self) -> SystemInfo:
        return {"id": getattr(self, "id", None), "priority": self.priority}

    async def configure(self, config: SystemConfig) -> None:
        """Apply a validated config. The plugin calls it (from ``initialize``); a run-time
        change reaches it through ``on_config_change`` or a swap, never a host call here."""


class IntegrationPlugin(Plugin):
    """A plugin that connects the host to something outside (the spec's ``IntegrationPlugin``)."""

    type: ClassVar[PluginType] = "integration"
    protocol: ClassVar[str] = "custom"
    endpoints: list[EndpointConfig]

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def disconnect(self) -> None: ...

    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    async def send_message(self, message: Message) -> None: ...


class ExtensionPlugin(Plugin):
    """A plugin that adds features (the spec's ``ExtensionPlugin``).

    Features map to commands; the defaults keep them in ``self.features``.
    """

    type: ClassVar[PluginType] = "extension"
    features: list[Feature]
    hooks: ClassVar[tuple[HookConfig, ...]] = ()

    async def register_feature(self, feature: Feature) -> None:
        if feature.command not in command_specs(type(self)):
            raise CommandNotFound(
                f"feature '{feature.id}' names command '{feature.command}', which does not exist",
                plugin=getattr(self, "id", None),
                hint=f"commands: {', '.join(sorted(command_specs(type(self))))}",
            )
        index = self._features()
        index[feature.id] = feature
        self.features = list(index.values())

    async def unregister_feature(self, feature_id: str) -> None:
        index = self._features()
        index.pop(feature_id, None)
        self.features = list(index.values())

    async def execute_feature(self, feature_id: str, params: dict[str, Any]) -> Any:
        feature = self._features().get(feature_id)
        if feature is None:
            raise PluginStateError(
                f"feature '{feature_id}' is not registered",
                plugin=getattr(self, "id", None),
                hint=f"features: {', '.join(sorted(self._features())) or 'none'}",
            )
        return await self.execute(Command(feature.command, params))

    def _features(self) -> dict[str, Feature]:
        # ``features`` stays a list for the spec's sake; this index keeps lookups O(1).
        index: dict[str, Feature] | None = self.__dict__.get("_feature_index")
        if index is None:
            index = {f.id: f for f in getattr(self, "features", [])}
            self.__dict__["_feature_index"] = index
        return index


class UtilityPlugin(Plugin):
    """A plugin of helpers for other plugins (the spec tree's ``utility/``)."""

    type: ClassVar[PluginType] = "utility"
