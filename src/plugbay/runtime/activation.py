"""Lazy activation: plugins that start on their first call or their first event.

A manifest's ``activation = "on-call"`` or ``"on-event:NAME"`` (as VS Code's
activation events) makes the host resolve and validate the plugin at start,
and leave it in the state ``on-demand`` ("installed, starts on demand") instead
of starting it. Its first call starts it (any first call, whatever the
trigger: a call must not fail because nobody started the plugin yet), and so
does the first ``NAME`` event for ``on-event:NAME``; concurrent first calls
start it once and all wait for that one start. A plugin an eager plugin needs
is started at host start like any other; a lazy plugin's own lazy
dependencies are started first, when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from plugbay.api.errors import PlugbayError
from plugbay.model.graph import reachable
from plugbay.model.manifest import PluginManifest
from plugbay.model.resolve import ResolutionPlan

if TYPE_CHECKING:
    from plugbay.runtime.manager import PluginManager
    from plugbay.runtime.routing import Route

__all__ = ["ON_DEMAND_REASON", "Activation"]

ON_DEMAND_REASON = "installed, starts on demand"

#: how often a waiting event looks again at a listener that is starting (a start
#: done here wakes it at once); one that waits for its first call looks less often
_LOOK_AGAIN = 0.05
_LOOK_AGAIN_ON_DEMAND = 1.0


class Activation:
    """One per manager (``manager.activation``); see the module docstring."""

    def __init__(self, manager: PluginManager) -> None:
        self._m = manager
        #: plugins waiting for their first call or event: id → (manifest, needs, notes)
        self._deferred: dict[str, tuple[PluginManifest, frozenset[str], list[str]]] = {}
        self._starting: dict[str, asyncio.Task[Route]] = {}
        self._started: dict[str, asyncio.Event] = {}
        #: plugins started on demand since the host started, by id (``plugbay info``)
        self.activations: dict[str, str] = {}

    @staticmethod
    def eager_needs(plan: ResolutionPlan) -> set[str]:
        """Every plugin of ``plan`` that must start at host start: the eager ones and
        everything they need, transitively."""
        eager = [pid for pid in plan.order if not plan.selected[pid].activation]
        return reachable(eager, plan.edges)

    def defer(
        self, manifest: PluginManifest, needs: Iterable[str], notes: list[str], eager: set[str]
    ) -> bool:
        """Leave ``manifest``'s plugin unstarted, on demand, unless an eager one needs it
        (then False: start it now). What can be checked without its code is checked now
        (where the policy places it, its config); a problem there: False, so the start
        that follows fails it with the reason, as it would an eager plugin."""
        if not manifest.activation or manifest.id in eager:
            return False
        from plugbay.runtime.manager import PluginRecord, PluginState

        manager = self._m
        try:
            placement = manager.place(manifest)
            config = manager.validated_config(manifest)
        except PlugbayError:
            return False
        self._deferred[manifest.id] = (manifest, frozenset(needs), list(notes))
        triggers = ", ".join(manifest.activation)
        rec = PluginRecord(manifest.id, manifest, needs=frozenset(needs), notes=list(notes))
        rec.placement, rec.isolation, rec.config = placement, placement.isolation, config
        manager._records[manifest.id] = rec
        self._m._set_state(rec, PluginState.ON_DEMAND)
        rec.reason = f"{ON_DEMAND_REASON} ({triggers})"
        return True

    def starts_on(self, plugin_id: str, event: str) -> bool:
        """Whether event ``event`` starts the (on-demand) plugin."""
        deferred = self._deferred.get(plugin_id)
        return deferred is not None and f"on-event:{event}" in deferred[0].activation

    def is_deferred(self, plugin_id: str) -> bool:
        rec = self._m.records_by_id.get(plugin_id)
        return rec is not None and str(rec.state) == "on-demand" and plugin_id in self._deferred

    async def ensure(self, plugin_id: str) -> None:
        """Start the plugin now if it waits for its first call (before looking up a
        command's spec: an on-demand plugin has none until it runs)."""
        if self.is_deferred(plugin_id):
            await self.start(plugin_id)

    def first_call(self, proxy: object, command: str) -> Callable[..., Awaitable[Any]]:
        """A typed proxy's command of a plugin not started yet: starts it, then calls."""
        plugin_id = getattr(proxy, "_plugin_id", "")

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self.ensure(plugin_id)
            return await getattr(proxy, command)(*args, **kwargs)

        async def many(params: Any) -> Any:
            await self.ensure(plugin_id)
            return await getattr(proxy, command).many(params)

        call.many = many  # type: ignore[attr-defined]
        return call

    async def start(self, plugin_id: str) -> Route:
        """Start an on-demand plugin (once, however many ask at the same time) and return
        its route; raises the reason when it does not become active."""
        task = self._starting.get(plugin_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._start(plugin_id), name=f"plugbay-activate-{plugin_id}"
            )
            self._starting[plugin_id] = task
            task.add_done_callback(lambda _t: self._starting.pop(plugin_id, None))
        return await asyncio.shield(task)

    async def _start(self, plugin_id: str) -> Route:
        manager = self._m
        rec = manager.record(plugin_id)
        if not self.is_deferred(plugin_id):
            route = manager.route_of(plugin_id)
            if route is None:
                raise manager.not_active(rec)
            return route
        manifest, needs, notes = self._deferred[plugin_id]
        for dep in sorted(needs):  # its lazy dependencies first
            if self.is_deferred(dep):
                await self.start(dep)
        started = await manager._start(manifest, needs, notes)
        self._deferred.pop(plugin_id, None)
        self.activations[plugin_id] = "ok" if str(started.state) == "active" else "failed"
        self._started.setdefault(plugin_id, asyncio.Event()).set()
        route = manager.route_of(plugin_id)
        if route is None:
            raise manager.not_active(started)
        return route

    async def changed(self, plugin_id: str) -> None:
        """Return when the plugin may have started (at once when a start here finished)."""
        event = self._started.setdefault(plugin_id, asyncio.Event())
        if event.is_set():  # started here before: whatever happens now is another start
            await asyncio.sleep(_LOOK_AGAIN)
            return
        # an operator's enable or load starts it elsewhere: looked at again now and then
        wait = _LOOK_AGAIN_ON_DEMAND if self.is_deferred(plugin_id) else _LOOK_AGAIN
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await event.wait()
