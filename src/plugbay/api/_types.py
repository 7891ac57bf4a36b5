"""Plain data that flows between the host and plugins (the spec's small types)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

__all__ = [
    "PLUGIN_TYPES",
    "EndpointConfig",
    "Environment",
    "Feature",
    "HookConfig",
    "Message",
    "PluginDependency",
    "PluginType",
    "SystemConfig",
    "SystemEvent",
    "SystemHook",
    "SystemInfo",
]

PluginType: TypeAlias = Literal["system", "integration", "extension", "utility"]
PLUGIN_TYPES: tuple[PluginType, ...] = ("system", "integration", "extension", "utility")

Mode: TypeAlias = Literal["development", "production", "test"]

#: The name of a system event a system plugin wants (``"plugin.loaded"``) or a
#: prefix ending in ``*`` (``"plugin.*"``). An empty ``system_hooks`` means every event.
SystemHook: TypeAlias = str

#: What ``SystemPlugin.get_system_info`` reports: free-form, JSON-ready.
SystemInfo: TypeAlias = dict[str, Any]

#: The settings ``SystemPlugin.configure`` receives: the plugin's validated config.
SystemConfig: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PluginDependency:
    """One plugin's need of another: an id and the versions it accepts."""

    id: str
    range: str = "*"
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Environment:
    """Where and how a plugin runs: ``PluginContext.environment``."""

    host_version: str
    plugin_id: str
    plugin_version: str
    data_dir: Path
    mode: Mode = "production"
    isolation: str = "inline"
    #: confined by a sandbox (an untrusted plugin in a worker, on this machine or a
    #: Ray node): its network grants are IP addresses and ports, its files its grants
    sandboxed: bool = False


@dataclass(frozen=True, slots=True)
class SystemEvent:
    """Something that happened in the host, delivered to system plugins by priority.

    ``kind`` is dotted: ``plugin.loaded``, ``plugin.failed``, ``plugin.unloaded``,
    ``plugin.crashed`` (its worker died; it restarts after a backoff), ``plugin.disabled``
    (``reason``, and ``by``: who disabled it, when known), ``host.started``,
    ``host.stopping``, ``security.*`` …
    """

    kind: str
    source: str = "host"
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def matches(self, hook: SystemHook) -> bool:
        if hook.endswith("*"):
            return self.kind.startswith(hook[:-1])
        return self.kind == hook


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """A peer an integration plugin talks to."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Message:
    """One message an integration plugin sends or receives."""

    body: str
    endpoint: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Feature:
    """A capability an extension plugin offers; ``command`` is the command that runs it."""

    id: str
    command: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class HookConfig:
    """Where an extension plugin hooks in: an event kind and the command to run for it."""

    event: str
    command: str
    priority: int = 100
