"""Taps on a plugin's calls: the flight recorder, a canary and a shadow listen here.

The call path (``PluginManager.call``) knows nothing of them. A plugin with a tap
has a route whose handle is a :class:`TapHandle` around the version that serves;
every other plugin's route is untouched, so a plugin nobody taps pays nothing.
The manager passes each route it installs through :meth:`Taps.wrap` (one line in
``set_route``), so a reload, an upgrade or a restart after a crash keeps the tap.

A :class:`TapHandle` forwards everything to the handle it wraps, except ``call``,
which is the next of its turns (:meth:`TapHandle.take_turns`): one C-level ``next()``,
no decision and no Python frame. With a recorder or a shadow, each turn is
:meth:`TapHandle._heard`: the call is timed and its outcome handed to them
(``runtime.recorder``, ``runtime.shadow``).

A canary (``runtime.canary``) leaves the serving route as it is (with or without a
tap): it is told of each route installed (:meth:`CanaryArm.attach`) and puts a route
of its own in the routing table for each call that is its turn.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from plugbay.api import CommandSpec, PluginContext
from plugbay.isolation.base import CrashListener, PluginHandle, SecurityListener
from plugbay.monitor.bounds import Budget
from plugbay.runtime.routing import Route

if TYPE_CHECKING:
    from plugbay.api import Plugin

__all__ = ["CallListener", "CanaryArm", "PluginTaps", "TapHandle", "Taps", "Turn"]

_clock: Final = time.perf_counter


class CallListener(Protocol):
    """Told of each call's outcome (the recorder, the shadow). ``params`` is the call's
    own checked copy (the manager's), which nothing else keeps: a listener may keep it."""

    def called(
        self,
        spec: CommandSpec,
        params: dict[str, Any],
        result: Any,
        error: BaseException | None,
        seconds: float,
        version: str,
    ) -> None: ...


#: one call's way to a version: ``(spec, params, timeout)`` → the coroutine to await
Turn = Callable[[CommandSpec, dict[str, Any], float], Coroutine[Any, Any, Any]]


class CanaryArm(Protocol):
    """Takes a share of a plugin's calls (``runtime.canary``)."""

    def attach(self, route: Route, routes: dict[str, Route], taps: PluginTaps) -> None:
        """``route`` serves the plugin from now on; ``routes`` is the manager's routing
        table, where the canary puts its own route for the call that is its turn."""
        ...


class PluginTaps:
    """What listens to one plugin's calls now."""

    __slots__ = ("canary", "listeners")

    def __init__(self) -> None:
        self.listeners: list[CallListener] = []
        self.canary: CanaryArm | None = None

    def __bool__(self) -> bool:
        return bool(self.listeners) or self.canary is not None


class TapHandle(PluginHandle):
    """The serving version's handle, with the plugin's taps around its calls."""

    def __init__(self, inner: PluginHandle, taps: PluginTaps, plain: Route) -> None:
        self.inner = inner
        self.taps = taps
        #: the route without its taps (what a swap or a retap starts from again)
        self.plain = plain
        self.manifest = inner.manifest
        self.commands = inner.commands
        self.instance: Plugin | None = inner.instance
        self.isolated = inner.isolated
        self.pid = inner.pid
        self.layers = inner.layers
        self._version = str(inner.manifest.version)
        #: how the serving version serves one call with these taps
        self.serve: Turn = self._heard if taps.listeners else inner.call

    # the one member that differs: see the module docstring
    def call(
        self, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> Coroutine[Any, Any, Any]:
        """The serving version's (until :meth:`take_turns`)."""
        return self.serve(spec, params, timeout)

    def take_turns(self, turns: Iterator[Turn]) -> None:
        """From now on each call is served by the next of ``turns`` (an endless iterator).

        ``call`` becomes a property of a class of this handle's own whose getter is
        ``functools.partial(next, turns)``: ``handle.call(...)`` then costs one C-level
        ``next()`` and no Python frame. (A method costs a frame on every call, more than
        all the rest a tap or a canary adds; the tap is made again at each retap.)"""
        self.__class__ = _turning(turns)

    async def _heard(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any:
        started = _clock()
        try:
            result = await self.inner.call(spec, params, timeout)
        except Exception as exc:
            seconds = _clock() - started
            for listener in self.taps.listeners:
                listener.called(spec, params, None, exc, seconds, self._version)
            raise
        seconds = _clock() - started
        for listener in self.taps.listeners:
            listener.called(spec, params, result, None, seconds, self._version)
        return result

    # everything else is the wrapped handle's
    async def initialize(self, context: PluginContext, timeout: float) -> None:
        await self.inner.initialize(context, timeout)

    async def cleanup(self, timeout: float) -> None:
        await self.inner.cleanup(timeout)

    def release(self) -> None:
        self.inner.release()

    def attach(self, on_crash: CrashListener | None, on_security: SecurityListener | None) -> None:
        self.inner.attach(on_crash, on_security)

    def bind(self, budget: Budget | None, issued: Callable[[str], bool]) -> None:
        self.inner.bind(budget, issued)

    def usage(self) -> dict[str, Any] | None:
        return self.inner.usage()

    def running(self) -> list[tuple[float, str]]:
        return self.inner.running()

    def alive(self) -> str | None:
        return self.inner.alive()

    def dump_stacks(self, *, tasks: bool = True) -> str | None:
        return self.inner.dump_stacks(tasks=tasks)

    async def export_state(self, timeout: float) -> tuple[bool, Any]:
        return await self.inner.export_state(timeout)

    async def import_state(self, state: Any, timeout: float) -> bool:
        return await self.inner.import_state(state, timeout)

    async def profile(
        self, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        return await self.inner.profile(spec, params, timeout)


def _turning(turns: Iterator[Turn]) -> type[TapHandle]:
    """A TapHandle class whose ``call`` is the next of ``turns`` (``next(turns, handle)``:
    the default is never used, the turns never end)."""
    namespace = {"call": property(functools.partial(next, turns)), "__slots__": ()}
    return cast("type[TapHandle]", type("TapHandle", (TapHandle,), namespace))


def untapped(route: Route) -> Route:
    """``route`` without a tap (the route a swap put away may carry one)."""
    handle = route.handle
    return handle.plain if isinstance(handle, TapHandle) else route


class Taps:
    """Every plugin's taps, by plugin id; the manager asks :meth:`wrap` for each route."""

    def __init__(self, routes: dict[str, Route]) -> None:
        #: the manager's routing table (a canary puts its own route there for its turns)
        self._routes = routes
        self._taps: dict[str, PluginTaps] = {}
        #: asked each time a plugin's route is installed (a start, a swap): may add
        #: listeners to the PluginTaps it is given (the policy's opt-in recording)
        self.on_route: Callable[[str, PluginTaps], None] | None = None

    def of(self, plugin_id: str) -> PluginTaps:
        taps = self._taps.get(plugin_id)
        if taps is None:
            taps = self._taps[plugin_id] = PluginTaps()
        return taps

    def known(self) -> Mapping[str, PluginTaps]:
        return self._taps

    def wrap(self, plugin_id: str, route: Route) -> Route:
        """The route to install for ``plugin_id``: with its taps when it has any."""
        route = untapped(route)
        taps = self._taps.get(plugin_id)
        if self.on_route is not None:
            fresh = taps is None
            if taps is None:
                taps = PluginTaps()
            self.on_route(plugin_id, taps)
            if fresh and taps:
                self._taps[plugin_id] = taps
        if not taps:
            return route
        if taps.listeners:
            tap = TapHandle(route.handle, taps, route)
            tap.take_turns(itertools.repeat(tap.serve))
            route = Route(tap, route.metrics, route.timeout, route.inflight, route.table)
        if taps.canary is not None:  # the serving route stays as it is: see runtime.canary
            taps.canary.attach(route, self._routes, taps)
        return route
