"""Crash supervision: a plugin whose worker died (or, for a Wasm plugin, whose instance
trapped: :func:`crash_words`) is ``restarting`` at once, and started again after a
backoff that doubles with each crash in the window; after too many crashes in the
window the supervisor gives up and the plugin is ``failed`` (``ManagerSettings``:
``restart_backoff``, ``max_crashes``, ``crash_window``).

What each step tells the rest of the host:

* a crash: the record is ``restarting`` with its :class:`~plugbay.runtime.records.Restart`
  (which attempt, when the next try is) and the crash as its error and reason; the
  history gets a ``crash``; system plugins get ``plugin.crashed``. Calls wait for the
  restart (``runtime.calling``). It is not ``failed``: readiness, health and the
  alert rules on failed plugins leave a normal restart alone.
* the restart: a ``restart`` in the history, then a new record that starts as any
  plugin does (``plugin.loaded``, or ``failed`` with ``plugin.failed`` when it cannot),
  but reads ``restarting`` all along its start, not ``initializing``: the crash, which
  restart, and since when it runs (``Restart.at``), until it is active or failed.
* a restart whose start fails for a reason that may pass (its error's
  ``details["transient"]``: a Ray plugin no node took within ``start-timeout``, its node
  being gone) counts as one more crash: it is tried again after the next backoff.
* giving up: ``failed`` with ``plugin.failed``, the reason naming the crashes;
  ``plugbay enable ID`` (``host.enable``) starts it again, as does the host's next start.

:class:`Supervision` is part of :class:`plugbay.runtime.manager.PluginManager`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import PlugbayError, PluginCrashed
from plugbay.isolation._exit_words import crash_reason
from plugbay.model.manifest import PluginManifest
from plugbay.runtime.events import EventBus
from plugbay.runtime.records import ManagerSettings, PluginRecord, PluginState, Restart, Roster
from plugbay.runtime.routing import Route
from plugbay.runtime.services import ServiceHub
from plugbay.state import StateStore

__all__ = ["CRASHES_KEPT", "Supervision", "crash_words"]

log = logging.getLogger("plugbay.manager")

#: seconds a plugin's crashes are remembered (``PluginRecord.crashes``): the ``restarts``
#: alert rule counts those within its own window, up to this long
CRASHES_KEPT: Final = 86_400.0


class Supervision:
    """The manager's part that answers a plugin's crash."""

    settings: ManagerSettings
    state: StateStore | None
    events: EventBus
    services: ServiceHub
    #: restarts after a crash, by plugin id, since the host started (/metrics)
    restart_counts: dict[str, int]
    _records: Roster
    _routes: dict[str, Route]
    _restarts: dict[str, asyncio.Task[None]]
    _lock: asyncio.Lock

    if TYPE_CHECKING:

        def _fail(self, rec: PluginRecord, error: PlugbayError, *, action: str) -> None: ...
        def _set_state(self, rec: PluginRecord, state: PluginState) -> None: ...
        def _history(
            self,
            rec: PluginRecord,
            action: str,
            result: str,
            reason: str | None,
            details: dict[str, Any] | None,
        ) -> None: ...
        async def _start(
            self,
            manifest: PluginManifest,
            needs: Iterable[str],
            notes: list[str],
            *,
            crashed: PluginRecord | None = None,
        ) -> PluginRecord: ...

    def _crashed(self, rec: PluginRecord, error: PlugbayError) -> None:
        """A worker died under a plugin: it is restarting at once, with the reason, and
        started again after a backoff that doubles with each crash; too many crashes in
        the window and it is failed instead."""
        if rec.state is not PluginState.ACTIVE or self._records.get(rec.id) is not rec:
            return
        self._count_crash(rec, error)

    def _count_crash(self, rec: PluginRecord, error: PlugbayError) -> None:
        """One more crash of ``rec``: its restart after the backoff, or giving up."""
        self.events.unsubscribe(rec.id)
        self.services.withdraw(rec.id)
        self._routes.pop(rec.id, None)
        rec.started_at = None
        now = time.monotonic()
        settings = self.settings
        # the crashes of the last day are kept for the `restarts` alert rule (its window,
        # 300 s by default, is the operator's); the supervisor counts those of its window
        rec.crashes = [t for t in rec.crashes if now - t < max(CRASHES_KEPT, settings.crash_window)]
        rec.crashes.append(now)
        recent = sum(1 for t in rec.crashes if now - t < settings.crash_window)
        if recent >= settings.max_crashes:
            self._give_up(rec, error, recent)
            return
        delay = min(settings.restart_backoff * 2 ** (recent - 1), settings.restart_backoff_max)
        self._restarting(rec, error, delay, recent)
        task = asyncio.get_running_loop().create_task(self._restart(rec, delay))
        self._restarts[rec.id] = task
        task.add_done_callback(functools.partial(self._forget_restart, rec.id))

    def _restarting(
        self, rec: PluginRecord, error: PlugbayError, delay: float, recent: int
    ) -> None:
        """The record waits for its restart: which one (``recent``: its crashes within the
        window), when, and the crash that asked it."""
        restart = Restart(recent, self.settings.max_crashes - 1, time.time() + delay, delay)
        rec.restart = restart
        rec.error = error
        rec.traceback = None
        rec.reason = (
            f"{crash_reason(error)}; restart {restart.attempt} of {restart.attempts} at "
            f"{_clock(restart.at)} (after {delay:g} s)"
        )
        self._set_state(rec, PluginState.RESTARTING)
        log.error("plugin '%s' crashed: %s", rec.id, rec.reason)
        self._history(
            rec, "crash", "failed", str(error),
            {"code": error.code, "restart": restart.attempt, "backoff": delay},
        )  # fmt: skip
        self.events.emit(
            "plugin.crashed", plugin=rec.id, version=rec.version, reason=str(error),
            code=error.code, attempt=restart.attempt, retry_in=delay,
        )  # fmt: skip

    def _restart_under_way(self, rec: PluginRecord, crashed: PluginRecord) -> None:
        """The new record of a restart, before its start begins: ``restarting`` still (not
        ``initializing``), with the crash and which restart, until it is active or failed;
        ``next_try`` is when this try started."""
        if crashed.restart is None or crashed.error is None:
            return
        restart = dataclasses.replace(crashed.restart, at=time.time(), under_way=True)
        rec.restart = restart
        rec.error = crashed.error
        rec.crashes = crashed.crashes
        rec.reason = (
            f"{crash_reason(crashed.error)}; restart {restart.attempt} of {restart.attempts} "
            f"under way since {_clock(restart.at)}"
        )

    def _give_up(self, rec: PluginRecord, error: PlugbayError, recent: int) -> None:
        """Too many crashes (``recent``) within the window: failed, saying so and what
        starts it again. Not kept in the state: the host's next start tries it again, as
        any failed plugin."""
        settings = self.settings
        failure = PluginCrashed(
            f"gave up restarting it after {recent} crashes within "
            f"{settings.crash_window:g} s; the last: {error.message}",
            plugin=rec.id,
            hint=f"'plugbay history {rec.id}' lists the crashes; 'plugbay enable {rec.id}' "
            "(host.enable in an application) starts it again",
            details={"crashes": recent, "last": error.to_dict()},
        )
        rec.restart = None
        self._fail(rec, failure, action="crash")

    def _call_off_restart(self, rec: PluginRecord, action: str) -> None:
        """Unloaded in its backoff: no restart comes, and what is left of the crashed
        worker goes. (The restart would otherwise have started it again later.)"""
        task = self._restarts.pop(rec.id, None)
        if task is not None:
            task.cancel()
        handle, rec.handle = rec.handle, None
        if handle is not None:
            handle.release()
        rec.restart = None
        self._set_state(rec, PluginState.STOPPED)
        self._history(
            rec, action, "ok", "in its restart's backoff: the restart is called off", None
        )
        self.events.emit("plugin.unloaded", plugin=rec.id, version=rec.version, result="ok")

    def _forget_restart(self, plugin_id: str, task: object) -> None:
        if self._restarts.get(plugin_id) is task:  # not the next one a restart scheduled
            del self._restarts[plugin_id]

    async def _restart(self, crashed: PluginRecord, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:  # the host stops: nothing restarts it any more
            if self._records.get(crashed.id) is crashed and crashed.state is PluginState.RESTARTING:
                crashed.restart = None
                self._set_state(crashed, PluginState.STOPPED)
            raise
        async with self._lock:
            if (
                self._records.get(crashed.id) is not crashed
                or crashed.state is not PluginState.RESTARTING
            ):
                return  # unloaded, disabled or restarted meanwhile
            assert crashed.manifest is not None
            self._history(crashed, "restart", "ok", f"after {delay:g} s", None)
            self.restart_counts[crashed.id] = self.restart_counts.get(crashed.id, 0) + 1
            rec = await self._start(crashed.manifest, crashed.needs, crashed.notes, crashed=crashed)
            rec.crashes = crashed.crashes
            rec.restart = None
            error = rec.error
            if (
                rec.state is PluginState.FAILED
                and error is not None
                and error.details.get("transient")
            ):
                # its backend could not place it yet (a Ray plugin whose node is gone): one
                # more crash, so it is tried again after a backoff, not failed for good
                self._count_crash(rec, error)


def _clock(at: float) -> str:
    """A time of day as a restart's reason says it (local time)."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def crash_words(isolation: str) -> str:
    """What a crash is, in the words of what serves the plugin: a Wasm plugin's instance
    traps in the host's Wasm runtime (no worker process dies); a Ray plugin's actor (or
    its node agent's worker) dies; any other's worker crashes."""
    if isolation == "wasm":
        return "its Wasm instance trapped"
    return "its Ray actor or worker died" if isolation == "ray" else "its worker crashed"
