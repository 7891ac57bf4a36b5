"""What the monitor reads: a *source* of plugins, events and calls.

The monitor never imports the runtime: the runtime's plugin manager implements
:class:`MonitorSource` (and its records :class:`PluginView`, their handles
:class:`HandleView`), so the runtime feeds the monitor and the monitor only
reads through these members (a test feeds it a fake source the same way).
Every member here is read-only for the monitor except ``call`` (its health
checks) and ``disable`` (an alert rule that disables a plugin).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from plugbay.api import CommandSpec, SystemEvent
from plugbay.model.manifest import PluginManifest

if TYPE_CHECKING:
    from plugbay.monitor.metrics import PluginMetrics
    from plugbay.state import StateStore

__all__ = ["EventSource", "HandleView", "LimitsView", "MonitorSource", "PluginView"]


class HandleView(Protocol):
    """A running plugin, as the backend contract (``isolation.base.PluginHandle``)
    describes it: only the members the monitor reads."""

    @property
    def isolated(self) -> bool: ...
    @property
    def pid(self) -> int | None: ...
    def usage(self) -> dict[str, Any] | None: ...
    def running(self) -> list[tuple[float, str]]: ...
    def alive(self) -> str | None: ...
    def dump_stacks(self, *, tasks: bool = True) -> str | None: ...


class LimitsView(Protocol):
    """Where the host's policy placed a plugin: the limits it runs under."""

    @property
    def limits(self) -> Mapping[str, Any]: ...


class PluginView(Protocol):
    """One plugin as the monitor sees it (the runtime's ``PluginRecord``)."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def state(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def isolation(self) -> str: ...
    @property
    def manifest(self) -> PluginManifest | None: ...
    @property
    def metrics(self) -> PluginMetrics | None: ...
    @property
    def handle(self) -> HandleView | None: ...
    @property
    def placement(self) -> LimitsView | None: ...
    @property
    def commands(self) -> Mapping[str, CommandSpec]: ...
    @property
    def crashes(self) -> list[float]: ...


class EventSource(Protocol):
    """The host's event bus, as the monitor uses it."""

    @property
    def delivered_to(self) -> Mapping[str, int]: ...
    def emit(self, kind: str, source: str = "host", **data: object) -> None: ...
    def listen(
        self,
        name: str,
        priority: int,
        kinds: tuple[str, ...],
        handler: Callable[[SystemEvent], Awaitable[None]],
    ) -> None: ...
    def unsubscribe(self, plugin_id: str) -> None: ...


class MonitorSource(Protocol):
    """The plugins a monitor watches (the runtime's ``PluginManager``)."""

    @property
    def events(self) -> EventSource: ...
    @property
    def state(self) -> StateStore | None: ...
    @property
    def monitor(self) -> Mapping[str, PluginMetrics]: ...
    @property
    def records_by_id(self) -> Mapping[str, PluginView]: ...
    @property
    def roster_changes(self) -> int:
        """How many times a plugin id came into ``records_by_id`` or left it."""
        ...

    #: ids of the plugins called, or whose state changed, since the monitor last looked
    #: (the call path and the state's setter add, the monitor's tick empties it:
    #: ``monitor.tracks``)
    touched: set[str]
    #: set by the monitor while it waits for its next tick; a timed call or a change of
    #: state calls it, and the tick comes as soon as ``interval`` allows (``monitor.monitor``)
    wake_monitor: Callable[[], None] | None

    def list_plugins(self) -> Sequence[PluginView]: ...
    def record(self, plugin_id: str) -> PluginView: ...
    def inflight(self, plugin_id: str) -> int: ...
    def timeout_of(self, plugin_id: str) -> float: ...
    async def call(
        self,
        plugin_id: str,
        command: str,
        params: Mapping[str, Any],
        *,
        strict: bool = True,
        counted: bool = True,
    ) -> Any: ...
    async def disable(
        self,
        plugin_id: str,
        reason: str | None = None,
        *,
        cascade: bool = False,
        by: str | None = None,
    ) -> list[str]: ...
