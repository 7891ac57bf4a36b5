"""The routing table's entry: where an active plugin's calls go now.

The manager keeps one :class:`Route` per active plugin, in a dict read by every
call (``PluginManager.call``); a swap replaces the entry in one assignment, so
a call sees either the old version or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from plugbay.api import CommandSpec
from plugbay.isolation.base import PluginHandle
from plugbay.monitor import CommandStats, PluginMetrics

__all__ = ["Heard", "Route", "command_table"]

#: told of each call a plugin's version answered, once its outcome is known:
#: ``(spec, params, result, error, seconds)`` (``runtime.tap``: its recorder, its shadow)
Heard: TypeAlias = Callable[[CommandSpec, dict[str, Any], Any, BaseException | None, float], None]


class _Uncounted(CommandStats):
    """Stands in for a command's stats when monitoring is off: keeps nothing."""

    __slots__ = ()

    def error(self, seconds: float | None, error: str) -> None:
        pass


_UNCOUNTED: Final = _Uncounted()


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


def command_table(
    handle: PluginHandle, metrics: PluginMetrics, monitoring: bool
) -> dict[str, tuple[CommandSpec, CommandStats]]:
    """Each command of a handle with its stats (kept across reloads: they are the plugin's);
    with monitoring off, a stand-in that keeps nothing."""
    return {
        name: (spec, metrics.for_command(name) if monitoring else _UNCOUNTED)
        for name, spec in handle.commands.items()
    }
