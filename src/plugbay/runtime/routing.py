"""The routing table's entry: where an active plugin's calls go now.

The manager keeps one :class:`Route` per active plugin, in a dict read by every
call (``PluginManager.call``); a swap replaces the entry in one assignment, so
a call sees either the old version or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from plugbay.api import CommandSpec
from plugbay.isolation.base import PluginHandle
from plugbay.monitor import CommandStats, PluginMetrics

__all__ = ["UNCOUNTED", "Entry", "Heard", "Route", "command_table"]

#: what the call path needs of a command, found with one lookup and decided once per
#: route: ``(spec, stats, timeout, check)``; the timeout is the route's or the command's
#: own if shorter, ``check`` the spec's result check, None for a result declared ``Any``
#: (a worker's commands: the worker checks)
Entry: TypeAlias = tuple[CommandSpec, CommandStats, float, Callable[..., Any] | None]

#: told of each call a plugin's version answered, once its outcome is known:
#: ``(spec, params, result, error, seconds)`` (``runtime.tap``: its recorder, its shadow)
Heard: TypeAlias = Callable[[CommandSpec, dict[str, Any], Any, BaseException | None, float], None]


class _Uncounted(CommandStats):
    """Stands in for a command's stats when monitoring is off, and for a call that is not
    counted (a health probe): keeps nothing, and its countdown never reaches zero, so
    the call path times none of its calls without asking whether monitoring is on."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self.period = self.left = 1 << 62

    def error(self, seconds: float | None, error: BaseException | str) -> None:
        pass

    def arm(self) -> None:
        pass

    def pace(self, pacer: Callable[[int], int] | None, first: int = 1) -> None:
        pass


#: the stats of a call nobody counts (``runtime.calling``)
UNCOUNTED: Final = _Uncounted()


@dataclass(frozen=True, slots=True)
class Route:
    """One active plugin's entry in the routing table."""

    #: the running version the calls go to
    handle: PluginHandle
    #: the plugin's metrics (kept across versions)
    metrics: PluginMetrics
    #: the per-call timeout, seconds (a command may ask for less)
    timeout: float
    #: calls running or waiting on this version now, in a one-item list the call path
    #: bumps in place (what a swap drains before it retires the version)
    inflight: list[int]
    #: each command's spec and stats, so a call finds both with one lookup
    table: dict[str, tuple[CommandSpec, CommandStats]]
    #: who hears each call's outcome (``runtime.tap``); None on a plugin nobody taps
    heard: Heard | None = None
    #: ``table`` with what each call would otherwise work out again (:data:`Entry`)
    entries: dict[str, Entry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries = {
            name: _entry(spec, stats, self.timeout) for name, (spec, stats) in self.table.items()
        }
        object.__setattr__(self, "entries", entries)


def _entry(spec: CommandSpec, stats: CommandStats, timeout: float) -> Entry:
    if spec.timeout is not None and spec.timeout < timeout:
        timeout = spec.timeout
    return spec, stats, timeout, None if spec.returns is Any else spec.validate_result


def command_table(
    handle: PluginHandle, metrics: PluginMetrics, monitoring: bool
) -> dict[str, tuple[CommandSpec, CommandStats]]:
    """Each command of a handle with its stats (kept across reloads: they are the plugin's);
    with monitoring off, a stand-in that keeps nothing."""
    return {
        name: (spec, metrics.for_command(name) if monitoring else UNCOUNTED)
        for name, spec in handle.commands.items()
    }
