"""Crash supervision: a plugin whose worker died is failed at once, then restarted
after a backoff that doubles with each crash, or disabled after too many crashes
in the window (``ManagerSettings``: ``restart_backoff``, ``max_crashes``, …).

:class:`Supervision` is part of :class:`plugbay.runtime.manager.PluginManager`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import PluginManifest
from plugbay.runtime.events import EventBus
from plugbay.runtime.records import ManagerSettings, PluginRecord, PluginState, Roster
from plugbay.runtime.routing import Route
from plugbay.runtime.services import ServiceHub
from plugbay.state import StateStore

__all__ = ["Supervision"]

log = logging.getLogger("plugbay.manager")


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
            self, manifest: PluginManifest, needs: Iterable[str], notes: list[str]
        ) -> PluginRecord: ...

    def _crashed(self, rec: PluginRecord, error: PlugbayError) -> None:
        """A worker died under a plugin: it is failed at once, with the reason, then
        restarted after a backoff that doubles with each crash; too many crashes in
        the window and it is disabled instead, with the reason kept in the state."""
        if rec.state is not PluginState.ACTIVE or self._records.get(rec.id) is not rec:
            return
        self.events.unsubscribe(rec.id)
        self.services.withdraw(rec.id)
        self._routes.pop(rec.id, None)
        rec.started_at = None
        self._fail(rec, error, action="crash")
        now = time.monotonic()
        settings = self.settings
        rec.crashes = [t for t in rec.crashes if now - t < settings.crash_window] + [now]
        if len(rec.crashes) >= settings.max_crashes:
            reason = (
                f"disabled after {len(rec.crashes)} crashes within {settings.crash_window:g} s; "
                f"the last: {error.message}"
            )
            rec.reason = reason
            self._set_state(rec, PluginState.DISABLED)
            rec.reason = reason
            if self.state is not None:
                self.state.set_enabled(rec.id, False, reason)
            self._history(rec, "disable", "ok", reason, {"crashes": len(rec.crashes)})
            self.events.emit("plugin.disabled", plugin=rec.id, reason=reason)
            log.error("plugin '%s' %s; 'plugbay enable %s' brings it back", rec.id, reason, rec.id)
            return
        delay = min(
            settings.restart_backoff * 2 ** (len(rec.crashes) - 1), settings.restart_backoff_max
        )
        task = asyncio.get_running_loop().create_task(self._restart(rec, delay))
        self._restarts[rec.id] = task
        task.add_done_callback(functools.partial(self._forget_restart, rec.id))

    def _forget_restart(self, plugin_id: str, _task: object) -> None:
        self._restarts.pop(plugin_id, None)

    async def _restart(self, crashed: PluginRecord, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._lock:
            if (
                self._records.get(crashed.id) is not crashed
                or crashed.state is not PluginState.FAILED
            ):
                return  # unloaded, disabled or restarted meanwhile
            assert crashed.manifest is not None
            self._history(crashed, "restart", "ok", f"after {delay:g} s", None)
            self.restart_counts[crashed.id] = self.restart_counts.get(crashed.id, 0) + 1
            rec = await self._start(crashed.manifest, crashed.needs, crashed.notes)
            rec.crashes = crashed.crashes
