"""What a plugin receives in ``initialize``: the spec's ``PluginContext``.

The context's parts are described here as protocols; the host supplies the
implementations (``plugbay.services``, ``plugbay.monitor``), so a plugin
depends on this module only, and a worker process needs nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload, runtime_checkable

from plugbay.api._events import Events
from plugbay.api._retired import retired
from plugbay.api._storage import Storage
from plugbay.api._tasks import Tasks
from plugbay.api._types import Environment
from plugbay.api.errors import ConfigError, PermissionDenied

__all__ = ["MetricsCollector", "PluginConfig", "PluginContext", "Secrets", "ServiceRegistry"]

T = TypeVar("T")


@runtime_checkable
class ServiceRegistry(Protocol):
    """Services plugins provide to each other, by name and SemVer version.

    A service declared under ``[services] provides`` in a manifest is the
    providing plugin's commands, reached through the host (so it works across
    isolation backends); ``provide`` adds an in-process object at run time.
    """

    def provide(self, name: str, service: object, version: str = "1.0.0") -> None: ...

    @overload
    def require(self, name: str, range: str = "*") -> Any: ...

    @overload
    def require(self, name: str, range: str, kind: type[T]) -> T: ...

    def require(self, name: str, range: str = "*", kind: type[Any] | None = None) -> Any:
        """The service, or :class:`plugbay.ServiceError` saying who could provide it."""
        ...

    def available(self) -> dict[str, str]:
        """Every service name to the version currently provided."""
        ...


@runtime_checkable
class MetricsCollector(Protocol):
    """Per-plugin metrics. The host already counts calls, errors and durations
    per command; a plugin adds its own with these (labelled with its id)."""

    def increment(self, name: str, value: float = 1.0, **labels: str) -> None: ...

    def gauge(self, name: str, value: float, **labels: str) -> None: ...

    def observe(self, name: str, value: float, **labels: str) -> None: ...

    def histogram(self, name: str, buckets: Sequence[float]) -> None:
        """Give the histogram ``name`` its own bucket bounds (call before ``observe``)."""
        ...

    def snapshot(self) -> dict[str, Any]: ...


class ConfigKeyMissing(KeyError):
    """``context.config[KEY]`` for a key the config does not have: a ``KeyError`` (so
    ``except KeyError`` still catches it) whose words say what to declare."""

    def __init__(self, key: object, known: list[str]) -> None:
        super().__init__(key)
        self.key = key
        self.known = known

    def __str__(self) -> str:
        has = ", ".join(self.known) or "no keys"
        return (
            f"context.config has no {self.key!r} (it has: {has}); declare it in the "
            f"manifest as [config.{self.key}] with a default, or read it with "
            f"context.config.get({self.key!r})"
        )


class PluginConfig(Mapping[str, Any]):
    """A plugin's config, already validated against its manifest's schema. Read-only."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise ConfigKeyMissing(key, sorted(self._data)) from None

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"PluginConfig({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)


class Secrets:
    """The secrets the operator granted this plugin (``secret:NAME``), by name.

    They reach the plugin here and nowhere else: never through the environment,
    never in a log (the repr shows names only). ``unset`` names the secrets that
    are granted but have no value on this host: asking for one is the operator's
    missing setting, not a denial.
    """

    __slots__ = ("_plugin", "_unset", "_values")

    def __init__(
        self,
        values: Mapping[str, str] | None = None,
        *,
        plugin: str = "",
        unset: Iterable[str] = (),
    ) -> None:
        self._values = dict(values or {})
        self._plugin = plugin
        self._unset = frozenset(unset) - self._values.keys()

    def get(self, name: str) -> str:
        """The secret's value; :class:`plugbay.ConfigError` when it is granted but has
        no value on this host, :class:`plugbay.PermissionDenied` when it was not granted."""
        try:
            return self._values[name]
        except KeyError:
            pass
        if name in self._unset:
            raise secret_without_value(name, self._plugin or None)
        raise secret_not_granted(name, self._plugin or None)

    def names(self) -> list[str]:
        return sorted(self._values)

    def unset(self) -> list[str]:
        """The granted secrets that have no value on this host."""
        return sorted(self._unset)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return f"Secrets({', '.join(self.names()) or 'none'})"


#: a secret's value in the host's environment: PLUGBAY_SECRET_API_KEY is 'api-key'
SECRET_ENV_PREFIX = "PLUGBAY_SECRET_"


def secret_of_env(variable: str) -> str:
    """The secret a ``PLUGBAY_SECRET_…`` variable of the host's environment sets."""
    return variable[len(SECRET_ENV_PREFIX) :].lower().replace("_", "-")


def secret_not_granted(name: str, plugin: str | None, layer: str = "secrets") -> PermissionDenied:
    """A secret the operator did not grant the plugin: the same words and details inline,
    in a worker and for a Wasm module (whose ``layer`` is the host's ``broker``: it is
    known as the host's by its stamp alone, ``isolation.refusals``)."""
    return PermissionDenied(
        f"secret '{name}' was not granted",
        plugin=plugin,
        hint=f"ask for it under [permissions] secrets and have the operator run "
        f"'plugbay grant {plugin or 'ID'} secret:{name}'",
        details={
            "operation": f"secret {name}",
            "permission": f"secret:{name}",
            "layer": layer,
        },
    )


def secret_without_value(name: str, plugin: str | None) -> ConfigError:
    """A granted secret the host has no value for: the operator's setting to add, not
    the plugin's fault (the same words inline, in a worker and for a Wasm module)."""
    env = SECRET_ENV_PREFIX + name.upper().replace("-", "_")
    by_env = secret_of_env(env) == name  # offered only when it reads back as this name
    return ConfigError(
        f"secret '{name}' is granted but has no value on this host",
        plugin=plugin,
        hint=f"the operator sets it in the host's config, plugbay.toml, under [secrets] "
        f'({name} = "...")'
        + (f" or as {env} in the host's environment" if by_env else "")
        + ", then restarts the host",
        details={
            "secret": name,
            "permission": f"secret:{name}",
            "environment": env if by_env else None,
        },
    )


@dataclass(frozen=True, slots=True)
class PluginContext:
    """Everything the host gives one plugin instance."""

    environment: Environment
    services: ServiceRegistry
    config: PluginConfig
    logger: logging.Logger
    metrics: MetricsCollector
    secrets: Secrets = field(default_factory=Secrets)
    #: emit the plugin events its manifest declares (``[events] emits``)
    events: Events = field(default_factory=Events, repr=False, compare=False)
    #: the plugin's durable key-value and blob store (SQLite in ``environment.data_dir``)
    storage: Storage = field(init=False, repr=False, compare=False)
    #: the plugin's supervised background tasks
    tasks: Tasks = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # made here, in the process the plugin runs in: the same on every backend
        plugin = self.environment.plugin_id
        object.__setattr__(self, "storage", Storage(self.environment.data_dir, plugin=plugin))
        object.__setattr__(self, "tasks", Tasks(plugin, logger=self.logger, metrics=self.metrics))

    async def close(self, timeout: float) -> list[str]:
        """What the host does after the plugin's ``cleanup``: cancel its background
        tasks (waiting at most ``timeout`` seconds) and close its store. Returns the
        names of the tasks that did not stop."""
        try:
            return await self.tasks.close(timeout)
        finally:
            # for good: a thread or callback of the stopped instance that still holds this
            # context must not write over the next version's store (``api._retired``)
            refusal = retired(self.environment.plugin_id, self.environment.plugin_version)
            self.tasks.retire(refusal)
            self.storage.retire(refusal)
            self.events.retire(refusal)
