"""The one call path: ``await host.call(...)``, a typed proxy's methods and the HTTP
API all come through :meth:`Calling.call`.

A call finds the plugin's :class:`~plugbay.runtime.routing.Route` (one dict read; a
swap replaces it in one assignment), checks the parameters against the command's
signature, runs the command on the route's handle within its timeout, checks the
result against its declared type, and counts it in the command's stats: exactly,
with its duration sampled (``monitor.metrics.CommandStats``). A tapped plugin's
listeners (recorder, shadow, canary: ``runtime.tap``) are told the outcome. Every
failure reaches the caller as a :class:`PlugbayError`.

What can be decided once per route is decided when the route is made, not per call
(``Route.entries``): each command's timeout, whether its result needs a check (a
worker's commands are checked in the worker); with monitoring off a command's stats
are a stand-in whose countdown never ends, so the call path asks no setting
(``routing.UNCOUNTED``). Deadlines are the backend's (one watchdog per channel for a
worker, ``isolation.requests``), so no timer is armed here.

:class:`Calling` is part of :class:`plugbay.runtime.manager.PluginManager`.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from plugbay.api import CommandSpec
from plugbay.api.errors import (
    CommandNotFound,
    ParameterError,
    PlugbayError,
    PluginCallError,
    PluginStateError,
    PluginTimeout,
    did_you_mean,
    plugin_not_known,
)
from plugbay.isolation import CallTimeout, PluginHandle
from plugbay.isolation._authors_line import at_the_authors_line
from plugbay.isolation.loading import plugin_frame, raised_at
from plugbay.model.manifest import PluginManifest
from plugbay.monitor import CommandStats
from plugbay.runtime.deadlines import set_where
from plugbay.runtime.origin import mark_origin
from plugbay.runtime.records import ManagerSettings, PluginRecord, PluginState, Roster
from plugbay.runtime.routing import UNCOUNTED, Entry, Route
from plugbay.runtime.supervision import crash_words
from plugbay.runtime.tap import heard_failing

if TYPE_CHECKING:
    from plugbay.runtime.activation import Activation
    from plugbay.runtime.serving import Serving

__all__ = ["Calling", "clock", "count_failure", "deadline_hint", "plugin_raised", "timed_out"]

_FOLD_AT: Final = CommandStats.FOLD_AT
#: the call path's timer (a timed call reads it twice)
clock: Final = time.perf_counter
#: the caller's thread, against the host loop's: one compare per call (not the running
#: loop: asyncio.get_running_loop() asks the OS for the process id, a system call)
_ident: Final = threading.get_ident


class Calling:
    """The manager's part that runs a call: routed, checked, bounded, timed and counted."""

    _records: Roster
    # the hot path's routing table: active plugins only
    _routes: dict[str, Route]
    #: plugins whose new calls wait while a swap moves their state (plugbay.runtime.swap)
    _holds: dict[str, asyncio.Future[None]]
    #: restarts after a crash, by plugin id (``runtime.supervision``): calls wait for them
    _restarts: dict[str, asyncio.Task[None]]
    settings: ManagerSettings
    touched: set[str]  # plugins called, or whose state changed, since the monitor's tick
    #: set while the monitor waits for its next tick: a plugin touched ends the wait
    wake_monitor: Callable[[], None] | None
    activation: Activation
    #: the host's loop, and whether it serves: why a call cannot run (``runtime.serving``)
    serving: Serving

    def touch(self, plugin_id: str) -> None:
        """The monitor's next tick looks at this plugin (``monitor.tracks``), and comes
        soon, though the monitor rests (``monitor.monitor``)."""
        self.touched.add(plugin_id)
        if self.wake_monitor is not None:
            self.wake_monitor()

    async def call(
        self,
        plugin_id: str,
        command: str,
        params: Mapping[str, Any],
        *,
        strict: bool = True,
        counted: bool = True,
    ) -> Any:
        """Check, run, time and count one command call. Every failure is a PlugbayError.

        ``counted=False`` (the monitor's health probes) leaves the plugin's figures alone.
        A caller's bad parameters fail the call but are not counted as the plugin's error."""
        if _ident() != self.serving.ident:  # another thread's loop, or not serving
            self._check_loop(plugin_id, command)
        # what routed() does, inline: one await less per call
        route = self._routes.get(plugin_id)
        if route is None:
            route = await self._held(plugin_id)
        handle = route.handle
        entry = route.entries.get(command)
        if entry is None:
            raise self._no_command(plugin_id, command, handle)
        spec, stats, timeout, check = entry
        if not counted:  # never timed either, so a health probe does not mark the plugin
            stats = UNCOUNTED
        # Counted exactly, timed by sampling (see CommandStats): `started` is 0.0 when
        # this call is not timed. (With monitoring off, `stats` never counts down to 0.)
        started = 0.0
        left = stats.left - 1
        stats.left = left
        if not left:  # a settled plugin's next call is timed (CommandStats.arm)
            started = self._timed(stats, plugin_id, command)
        inflight = route.inflight
        inflight[0] += 1  # what a reload drains before it retires this version
        # a tapped plugin's recorder or shadow is told here, no frame of its own (runtime.tap)
        heard, at, kwargs = route.heard, 0.0, params
        try:
            kwargs = spec.validate_params(params, plugin=plugin_id, strict=strict)
            if heard is None:
                result = await handle.call(spec, kwargs, timeout)
            else:
                at = clock()
                result = await handle.call(spec, kwargs, timeout)
                heard(spec, kwargs, result, None, clock() - at)
                at = 0.0
            if check is not None:
                result = check(result, plugin=plugin_id)
        except PlugbayError as exc:
            self._judge_loop(stats, started, plugin_id, command)  # the caller's loop?
            # a caller's bad parameters are the caller's mistake, not the plugin's
            count_failure(stats, started, None if isinstance(exc, ParameterError) else exc)
            heard_failing(heard, at, spec, kwargs, exc)
            mark_origin(exc, plugin_id, handle.manifest)  # the plugin's, or the request's?
            at_the_authors_line(exc, handle.manifest)  # a context's refusal: the caller's line
            raise
        except CallTimeout as exc:
            count_failure(stats, started, "PluginTimeout")
            heard_failing(heard, at, spec, kwargs, exc)
            raise timed_out(plugin_id, command, timeout, spec, route, self.settings) from None
        except (Exception, SystemExit) as exc:  # sys.exit() in a plugin is its own failure
            self._judge_loop(stats, started, plugin_id, command)
            count_failure(stats, started, exc)
            heard_failing(heard, at, spec, kwargs, exc)
            raise plugin_raised(plugin_id, command, handle, exc) from exc
        except BaseException:  # cancelled (the caller gave up): nobody's error, but a timed
            count_failure(stats, started, None)  # call must end its period, or none is again
            raise
        finally:
            inflight[0] -= 1
        if started:  # a timed call, inlined: one append (see CommandStats)
            stats.pending.append(clock() - started)
            stats.next_period()
            if len(stats.pending) >= _FOLD_AT:
                stats.fold()
        return result

    def _check_loop(self, plugin_id: str, command: str) -> None:
        """Refuse a call awaited on another event loop than the host's, before it runs: an
        inline plugin's command would run there, beside its own state, locks and queues
        (made on the host's loop), and a worker's channel is the host loop's
        (``runtime.serving``). Not serving (never started, stopped): the call path says so.
        The host's loop running in this thread now (run by turns from several): noted,
        unless its shutdown began (it closes next, and no caller is its after that)."""
        serving = self.serving
        refused = serving.off_loop(f"call {plugin_id} {command}")
        if refused is not None:
            raise refused
        if serving.loop is not None and not serving.ending:
            serving.serve_here()

    def _timed(self, stats: CommandStats, plugin_id: str, command: str) -> float:
        """A timed call begins (one in ``CommandStats.EVERY``): the monitor is told, and
        the clock read. Waking the resting monitor fails on the host's loop closed by
        ``loop.close()`` alone (which the host does not notice: ``runtime.serving``): the
        call is refused then, as the caller's mistake, not with asyncio's RuntimeError."""
        try:
            self.touch(plugin_id)
        except RuntimeError:
            self._judge_loop(stats, clock(), plugin_id, command)
            raise
        return clock()

    def _judge_loop(
        self, stats: CommandStats, started: float, plugin_id: str, command: str
    ) -> None:
        """A call that failed on another event loop than the host's failed for that: the
        caller's mistake, not the plugin's (``runtime.serving``), counted as nobody's.
        Another thread's loop, and the next one after the host's closed by its shutdown,
        are refused before the call (:meth:`_check_loop`); what is left comes here: another
        loop in the host loop's thread while that one waits (``asyncio.Runner`` between
        steps) or after it was closed by ``loop.close()`` alone. Refused, it is not one of
        the plugin's calls either, as one refused before it is counted is not."""
        refused = self.serving.off_loop(f"call {plugin_id} {command}")
        if refused is not None:
            count_failure(stats, started, None)  # a timed call still ends its period
            stats.base -= 1  # counted when it began: taken back (calls = base + period - left)
            raise refused from None

    async def routed(self, plugin_id: str, command: str) -> tuple[Route, Entry]:
        """The route a call of ``plugin_id``'s ``command`` takes now, and the command's
        entry in it (waiting for a swap's hold or an on-demand start); raises as a call
        would. :meth:`call` does the same inline, one await less per call."""
        route = self._routes.get(plugin_id)
        if route is None:
            route = await self._held(plugin_id)
        entry = route.entries.get(command)
        if entry is None:
            raise self._no_command(plugin_id, command, route.handle)
        return route, entry

    async def _held(self, plugin_id: str) -> Route:
        """The route of a plugin whose calls are held by a swap, once it lets them through
        (or of a plugin that starts on demand, once this first call started it, or of one
        whose worker crashed, once it is restarted: up to the host's call timeout)."""
        if self.activation.is_deferred(plugin_id):
            return await self.activation.start(plugin_id)
        while (hold := self._holds.get(plugin_id)) is not None:
            await asyncio.shield(hold)
            route = self._routes.get(plugin_id)
            if route is not None:
                return route
        if plugin_id in self._restarts:  # a crash is not the caller's: the call waits it out
            route = await self._restarted(plugin_id)
            if route is not None:
                return route
        raise self._not_callable(plugin_id)

    async def _restarted(self, plugin_id: str) -> Route | None:
        """The plugin's route once a restart brings it back, within the host's call timeout:
        across restarts, since a try that fails (its Ray node not back yet, say) schedules
        the next before it ends; None when the time is up or no restart is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.call_timeout
        while (restart := self._restarts.get(plugin_id)) is not None:
            await asyncio.wait([restart], timeout=max(0.0, deadline - loop.time()))
            route = self._routes.get(plugin_id)
            if route is not None or not restart.done():  # back, or the time is up
                return route
        return None

    # ------------------------------------------------------------------ why a call cannot run

    def _not_found(self, plugin_id: str) -> PlugbayError:
        if (unstarted := self.serving.unstarted(f"reach '{plugin_id}'")) is not None:
            return unstarted  # no plugin is known before the start: say that instead
        return plugin_not_known(plugin_id, self._records)

    def _not_active(self, rec: PluginRecord) -> PluginStateError:
        reason = rec.reason or ""
        reason = reason.removeprefix(f"plugin '{rec.id}': ")  # said once, by the error
        info = f"see 'plugbay info {rec.id}' (host.info in an application)"
        if rec.id in self._restarts:
            hint = (
                f"{crash_words(rec.isolation)} and is being restarted; calls wait for that "
                f"up to the host's call timeout ({self.settings.call_timeout:g} s): call again"
            )
        elif rec.state is PluginState.DISABLED:
            hint = f"'plugbay enable {rec.id}' (host.enable in an application) starts it again"
        elif rec.state is PluginState.FAILED:
            hint = f"{info}; once fixed, 'plugbay load {rec.id}' starts it in a running host"
        elif rec.state is PluginState.STOPPED:
            hint = f"'plugbay load {rec.id}' (host.load in an application) starts it again"
        else:
            hint = info
        return PluginStateError(
            _why_no_calls(rec) + (f": {reason}" if reason else ""), plugin=rec.id, hint=hint
        )

    def _not_callable(self, plugin_id: str) -> PlugbayError:
        refused = self.serving.refusal(f"call '{plugin_id}'")  # not started, stopped, off loop
        if refused is not None:
            return refused
        rec = self._records.get(plugin_id)
        return self._not_found(plugin_id) if rec is None else self._not_active(rec)

    def _no_command(self, plugin_id: str, command: str, handle: PluginHandle) -> CommandNotFound:
        names = sorted(handle.commands)
        suggestion = did_you_mean(command, names, n=1)
        return CommandNotFound(
            f"has no command '{command}'",
            plugin=plugin_id,
            hint=(f"{suggestion} " if suggestion else "")
            + f"commands: {', '.join(names) or 'none'}",
        )


def _why_no_calls(rec: PluginRecord) -> str:
    """Why a plugin takes no calls, in the words of what happened to it."""
    state = rec.state
    if state is PluginState.FAILED:
        served = any(s == PluginState.ACTIVE for _, s in rec.transitions)
        return "failed while it served" if served else "failed to start"
    if state is PluginState.RESTARTING:
        return "is restarting after a crash and takes no calls until it is back"
    if state is PluginState.DISABLED:
        return "is disabled, so it takes no calls"
    if state is PluginState.STOPPED:
        return "is stopped (unloaded), so it takes no calls"
    if state is PluginState.STOPPING:
        return "is stopping, so it takes no more calls"
    return "is still starting and takes no calls yet"  # discovered, resolved, initializing


# The call path's failures, off its hot path: counted, then said in the user's words.


def count_failure(stats: CommandStats, started: float, error: BaseException | str | None) -> None:
    """Count a failed call under its error's label (``monitor.error_labels``; ``None``: not
    the plugin's, only the sampling period moves on); ``started`` is 0.0 when the call
    was not timed."""
    if error is not None:
        stats.error(clock() - started if started else None, error)
    if started:
        stats.next_period()


def timed_out(
    plugin_id: str,
    command: str,
    timeout: float,
    spec: CommandSpec,
    route: Route,
    settings: ManagerSettings,
) -> PluginTimeout:
    """A call past its deadline; the hint names the deadline that fired (``route``: the
    one the call went through, whose timeout is the command's unless its own is shorter)."""
    manifest = route.handle.manifest
    return PluginTimeout(
        f"command '{command}' did not finish within {timeout:g} s",
        plugin=plugin_id,
        hint="the call was cancelled; "
        + deadline_hint(command, timeout, spec, route.timeout, manifest, settings),
    )


def deadline_hint(
    command: str,
    timeout: float,
    spec: CommandSpec,
    route_timeout: float,
    manifest: PluginManifest,
    settings: ManagerSettings,
) -> str:
    """Where the deadline a call ran into is set, and so where to lift it: the command's
    own (``@command(timeout=...)``, a Wasm module's ``[commands.NAME] timeout``), else
    the plugin's (``runtime.deadlines.set_where``: the manifest's ``resources.timeout``,
    the policy's ``[policy.defaults] timeout`` or ``[policy.limits] timeout`` cap, the
    host's call timeout or its cap on every call). Said for whoever meets it: a plugin's
    author and an operator of ``plugbay run`` change the manifest's ``[resources]
    timeout`` or the host config file, an application the ``Host`` argument."""
    plugins = set_where(manifest, route_timeout, settings)
    if spec.timeout is None or spec.timeout != timeout:
        return plugins + " if this command needs longer"
    own = (
        f"timeout under [commands.{command}] in {manifest.location}"
        if manifest.runtime == "wasm"
        else f"@command(timeout={spec.timeout:g}) on '{command}' in the plugin's code"
    )
    if route_timeout > timeout:  # the plugin's longer limit does not lift the command's own
        return (
            f"the limit is the command's own, shorter than the plugin's call timeout "
            f"of {route_timeout:g} s: "
            f"raise {own} if this command needs longer"
        )
    return (
        f"both the command's own limit and the plugin's are {timeout:g} s: raise {own}, "
        f"and {plugins}"
    )


def plugin_raised(
    plugin_id: str, command: str, handle: PluginHandle, exc: BaseException
) -> PluginCallError:
    return PluginCallError(
        f"command '{command}' raised {type(exc).__name__}: {exc}",
        plugin=plugin_id,
        where=plugin_frame(exc, handle.manifest),
        hint="this is the plugin's own error; the host and other plugins are unaffected",
        details={
            "exception": type(exc).__name__,
            "raised_at": raised_at(exc, handle.manifest),
            "traceback": "".join(traceback.format_exception(exc)),
        },
    )
