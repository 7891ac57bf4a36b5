"""Taps on a plugin's calls: the flight recorder, a canary and a shadow listen here.

The call path (``PluginManager.call``) knows one member of them: a plugin with a
recorder or a shadow has a route whose ``heard`` (:func:`heard_by`) the call path
calls with each call's outcome (parameters, result or error, seconds), as soon as
the version's answer arrives, in the call's own frame: no coroutine, no handle of
the tap's around the call. The version that answered is bound into ``heard``. A
plugin nobody taps has ``heard`` None and pays that one test. The manager passes
each route it installs through :meth:`Taps.wrap` (one line in ``set_route``), so a
reload, an upgrade or a restart after a crash keeps the tap, with the new version.

A canary (``runtime.canary``) leaves the serving route as it is (with or without a
tap): it is told of each route installed (:meth:`CanaryArm.attach`) and puts a route
of its own in the routing table for each call that is its turn. That route's handle
is a :class:`TurnHandle` (:func:`turning`): its ``call`` is the next of its turns,
one C-level ``next()`` and no Python frame; its ``heard`` names the canary's version.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from plugbay.api import CommandSpec, PluginContext
from plugbay.isolation.base import CrashListener, PluginHandle, SecurityListener
from plugbay.monitor.bounds import Budget
from plugbay.runtime.routing import Heard, Route

if TYPE_CHECKING:
    from plugbay.api import Plugin

__all__ = [
    "CallListener",
    "CanaryArm",
    "PluginTaps",
    "Taps",
    "Turn",
    "TurnHandle",
    "heard_by",
    "heard_failing",
    "heard_many",
    "turning",
    "untapped",
]


class CallListener(Protocol):
    """Told of each call's outcome (the recorder, the shadow), from the call path, once
    the answer arrived (``Route.heard``): it must not block. ``params`` is the call's own
    checked copy (the manager's), which nothing else keeps: a listener may keep it."""

    def called(
        self,
        version: str,
        spec: CommandSpec,
        params: dict[str, Any],
        result: Any,
        error: BaseException | None,
        seconds: float,
    ) -> None: ...


_clock: Final = time.perf_counter

#: one call's way to a version: ``(spec, params, timeout)`` → the coroutine to await
Turn = Callable[[CommandSpec, dict[str, Any], float], Coroutine[Any, Any, Any]]


def heard_by(listeners: Sequence[CallListener], version: str) -> Heard | None:
    """What a route of ``version`` calls with each call's outcome: the listener's own
    ``called`` with the version bound (a C-level partial: no frame of its own), or each
    listener's in turn; None when nobody listens."""
    if not listeners:
        return None
    if len(listeners) == 1:
        return functools.partial(listeners[0].called, version)
    return functools.partial(_each, tuple(listeners), version)


def _each(
    listeners: tuple[CallListener, ...],
    version: str,
    spec: CommandSpec,
    params: dict[str, Any],
    result: Any,
    error: BaseException | None,
    seconds: float,
) -> None:
    for listener in listeners:
        listener.called(version, spec, params, result, error, seconds)


def heard_failing(
    heard: Heard | None,
    at: float,
    spec: CommandSpec,
    params: Mapping[str, Any],
    error: BaseException,
) -> None:
    """A call that raised, told to ``heard`` if it reached the version: ``at`` is when it
    left for it (0.0: it did not, or its answer was told already). Off the hot path."""
    if at and heard is not None:
        heard(spec, dict(params), None, error, _clock() - at)


def heard_many(
    heard: Heard, handle: PluginHandle
) -> Callable[[CommandSpec, Sequence[dict[str, Any]], float], Awaitable[list[Any]]]:
    """``handle.call_many`` for a tapped plugin's batch (``host.call_many``): each call on
    its own, timed and told to ``heard`` as the call path tells one."""
    return functools.partial(_call_many_heard, heard, handle)


async def _call_many_heard(
    heard: Heard,
    handle: PluginHandle,
    spec: CommandSpec,
    params: Sequence[dict[str, Any]],
    timeout: float,
) -> list[Any]:
    calls = (_call_heard(heard, handle, spec, p, timeout) for p in params)
    return list(await asyncio.gather(*calls, return_exceptions=True))


async def _call_heard(
    heard: Heard, handle: PluginHandle, spec: CommandSpec, params: dict[str, Any], timeout: float
) -> Any:
    started = _clock()
    try:
        result = await handle.call(spec, params, timeout)
    except Exception as exc:
        heard(spec, params, None, exc, _clock() - started)
        raise
    heard(spec, params, result, None, _clock() - started)
    return result


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


class TurnHandle(PluginHandle):
    """The serving version's handle in a canary's route, each call the next of its turns
    (made by :func:`turning`, whose class gives it its ``call``)."""

    def __init__(self, inner: PluginHandle, plain: Route) -> None:
        self.inner = inner
        #: the route without its taps (what a swap or a retap starts from again)
        self.plain = plain
        self.manifest = inner.manifest
        self.commands = inner.commands
        self.instance: Plugin | None = inner.instance
        self.isolated = inner.isolated
        self.pid = inner.pid
        self.layers = inner.layers

    def call(
        self, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> Coroutine[Any, Any, Any]:
        """The serving version's (a class made by :func:`turning` takes turns instead)."""
        return self.inner.call(spec, params, timeout)

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


def turning(inner: PluginHandle, plain: Route, turns: Iterator[Turn]) -> TurnHandle:
    """``inner`` as a :class:`TurnHandle` whose calls are served by the next of ``turns``
    (an endless iterator).

    ``call`` is a property of a class made for this handle, whose getter is
    ``functools.partial(next, turns)`` (``next(turns, handle)``: the default is never
    used): ``handle.call(...)`` then costs one C-level ``next()`` and no Python frame (a
    method costs a frame on every call, more than all the rest a canary adds). The handle
    is made again at each retap; no live object changes class."""
    namespace = {"call": property(functools.partial(next, turns)), "__slots__": ()}
    cls = cast("type[TurnHandle]", type("TurnHandle", (TurnHandle,), namespace))
    return cls(inner, plain)


def untapped(route: Route) -> Route:
    """``route`` without a tap (the route a swap put away, or a canary's, may carry one)."""
    handle = route.handle
    if isinstance(handle, TurnHandle):
        return handle.plain
    if route.heard is not None:
        return Route(handle, route.metrics, route.timeout, route.inflight, route.table)
    return route


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
        heard = heard_by(taps.listeners, str(route.handle.manifest.version))
        if heard is not None:  # the call path tells them (see the module docstring)
            route = Route(
                route.handle, route.metrics, route.timeout, route.inflight, route.table, heard
            )
        if taps.canary is not None:  # the serving route stays as it is: see runtime.canary
            taps.canary.attach(route, self._routes, taps)
        return route
