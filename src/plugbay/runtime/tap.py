"""Taps on a plugin's calls: the flight recorder, a canary and a shadow listen here.

The call path (``PluginManager.call``) knows nothing of them. A plugin with a tap
has a route whose handle is a :class:`TapHandle` around the version that serves;
every other plugin's route is untouched, so a plugin nobody taps pays nothing.
The manager passes each route it installs through :meth:`Taps.wrap` (one line in
``set_route``), so a reload, an upgrade or a restart after a crash keeps the tap.

A :class:`TapHandle` forwards everything to the handle it wraps, except ``call``:

* a call the canary takes goes to the canary's version instead (``runtime.canary``);
* with a recorder or a shadow, the call is timed and its outcome handed to them
  (``runtime.recorder``, ``runtime.shadow``);
* otherwise the wrapped handle's own coroutine is returned as it is: no extra frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from plugbay.api import CommandSpec, PluginContext
from plugbay.isolation.base import CrashListener, PluginHandle, SecurityListener
from plugbay.monitor import CommandStats
from plugbay.monitor.bounds import Budget
from plugbay.runtime.routing import Route

if TYPE_CHECKING:
    from plugbay.api import Plugin

__all__ = ["CallListener", "CanaryArm", "PluginTaps", "TapHandle", "Taps"]

_clock: Final = time.perf_counter


class CallListener(Protocol):
    """Told of each call's outcome (the recorder, the shadow)."""

    def called(
        self,
        spec: CommandSpec,
        params: dict[str, Any],
        result: Any,
        error: BaseException | None,
        seconds: float,
        version: str,
    ) -> None: ...


class CanaryArm(Protocol):
    """Takes a share of the calls (``runtime.canary``): the tap counts ``countdown``
    down for each call; at zero the call is the canary's (:meth:`pick`)."""

    countdown: int
    #: the call at this countdown is the serving version's, timed into ``old`` (0: none)
    timed_at: int
    old: CommandStats

    def pick(
        self, inner: PluginHandle, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> Any:
        """The canary's call (a coroutine; the serving version's once its window is over)."""
        ...

    def old_call(
        self, inner: PluginHandle, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> Any:
        """Run the call on the serving version, timed (a coroutine)."""
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

    def __init__(self, inner: PluginHandle, taps: PluginTaps) -> None:
        self.inner = inner
        self.taps = taps
        self.manifest = inner.manifest
        self.commands = inner.commands
        self.instance: Plugin | None = inner.instance
        self.isolated = inner.isolated
        self.pid = inner.pid
        self.layers = inner.layers
        self._version = str(inner.manifest.version)

    # the one member that differs: see the module docstring
    def call(
        self, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> Coroutine[Any, Any, Any]:
        taps = self.taps
        canary = taps.canary
        timed: CommandStats | None = None
        if canary is not None:
            n = canary.countdown - 1
            if n <= 0:
                return canary.pick(self.inner, spec, params, timeout)  # type: ignore[no-any-return]
            canary.countdown = n
            if n == canary.timed_at:
                if not taps.listeners:
                    return canary.old_call(self.inner, spec, params, timeout)  # type: ignore[no-any-return]
                timed = canary.old
        if taps.listeners:
            return self._heard(spec, params, timeout, timed)
        return self.inner.call(spec, params, timeout)

    async def _heard(
        self,
        spec: CommandSpec,
        params: dict[str, Any],
        timeout: float,
        timed: CommandStats | None,
    ) -> Any:
        started = _clock()
        try:
            result = await self.inner.call(spec, params, timeout)
        except Exception as exc:
            seconds = _clock() - started
            for listener in self.taps.listeners:
                listener.called(spec, params, None, exc, seconds, self._version)
            raise
        seconds = _clock() - started
        if timed is not None:
            timed.pending.append(seconds)
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


def untapped(route: Route) -> Route:
    """``route`` without a tap (the route a swap put away may carry one)."""
    handle = route.handle
    if isinstance(handle, TapHandle):
        return Route(handle.inner, route.metrics, route.timeout, route.inflight, route.table)
    return route


class Taps:
    """Every plugin's taps, by plugin id; the manager asks :meth:`wrap` for each route."""

    def __init__(self) -> None:
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
        return Route(
            TapHandle(route.handle, taps), route.metrics, route.timeout, route.inflight, route.table
        )
