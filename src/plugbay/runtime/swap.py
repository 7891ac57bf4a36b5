"""Swapping a running plugin for another version: reload, upgrade and rollback.

One mechanism serves all three (``PluginManager`` delegates to :class:`Swapper`):

1. read the target manifest (the plugin's files again, or a version in the store);
   refuse a changed id, a version that goes backwards (unless rolling back), a
   host range that excludes this host, and a version an active dependent's range
   or required service range would not accept;
2. start the target beside the running version (a fresh module namespace inline,
   a new worker in the process backend);
3. hold new calls at the router (they wait, they do not fail), drain the calls in
   flight on the old version (bounded: past the bound the swap is refused), then
   ``initialize`` the target, hand over state (``export_state`` → ``import_state``,
   in the host or through the worker's frames), switch the routing table entry and
   let the held calls through. The old version acknowledges nothing after its
   state was taken, and the target's ``initialize`` sees its data directory as the
   old version left it: nothing acknowledged is lost. The hold is measured
   (``held_seconds`` in the history);
4. probation: for a short window the new version must pass its health probe (its
   ``health`` command when it has one; a worker must stay alive), else calls are
   held again, the new version's state is handed back to the old one, never
   stopped, and routing switches back;
5. retire the old version: clean it up (bounded), drop its modules;
6. a rollback hands over what the serving version holds, like any swap; the state
   kept when the target was replaced is used only when the serving version exports
   nothing;
7. record the swap, keep a copy of the new version's files and the old version's
   state in the store (for rollback), and reload dependents in dependency order
   when the version or a provided service changed.

A failure in 1–4 leaves the old version serving and raises
:class:`PluginReloadError` with the reason; it is logged and written to the history.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from plugbay.api import SystemPlugin
from plugbay.api.errors import PlugbayError, PluginReloadError, PluginStateError
from plugbay.isolation import CallTimeout, PluginHandle
from plugbay.isolation.loading import plugin_frame
from plugbay.isolation.policy import Placement
from plugbay.model.manifest import PluginManifest, load_manifest
from plugbay.runtime.command_changes import command_changes
from plugbay.runtime.deadlines import call_timeout
from plugbay.runtime.events import Subscriber
from plugbay.runtime.probation import probation
from plugbay.runtime.rollbacks import plan_rollback
from plugbay.runtime.routing import Route, command_table
from plugbay.runtime.state_handover import carry_back, hand_over, keep_at_stop, restore_at_start
from plugbay.runtime.swap_host import SwapHost
from plugbay.runtime.upgrades import UpgradePlan, check_dependents, check_target, plan_upgrade

if TYPE_CHECKING:
    from plugbay.runtime.records import PluginRecord

__all__ = ["SwapHost", "Swapper", "UpgradePlan"]

log = logging.getLogger("plugbay.manager")

_EVENTS: Final = {
    "reload": "plugin.reloaded",
    "upgrade": "plugin.upgraded",
    "rollback": "plugin.rolled_back",
    "bisect": "plugin.rolled_back",  # a bisect's trial moves by the same swap
}

#: history actions after which a version is the one serving (a bisect's trials are not:
#: a rollback after a bisect returns to the version that served before it)
ACTIVATIONS: Final = frozenset({"load", "reload", "upgrade", "rollback", "restart"})


@dataclass(slots=True)
class _Running:
    """What a swap needs to put back if the new version fails its probation."""

    handle: PluginHandle
    manifest: PluginManifest
    config: dict[str, Any]
    needs: frozenset[str]
    notes: list[str]
    route: Route
    placement: Placement | None
    isolation: str
    #: since when it served (its uptime, put back with it)
    started_at: float | None = None


@dataclass(slots=True)
class _Target:
    """The version a swap started beside the serving one, once it holds the state
    (its calls still held at the router)."""

    manifest: PluginManifest
    handle: PluginHandle
    config: dict[str, Any]
    needs: frozenset[str]
    notes: list[str]
    placement: Placement
    #: what the serving version exported (kept in the store for a rollback)
    exported: tuple[bool, Any]
    hold: _Hold


class Swapper:
    """Reload, upgrade and rollback, on behalf of a :class:`plugbay.manager.PluginManager`
    (which exposes them as its own methods)."""

    def __init__(self, manager: SwapHost) -> None:
        self.m = manager

    # ------------------------------------------------------------------ reload

    async def reload_plugin(
        self,
        plugin_id: str,
        *,
        drain_timeout: float = 5.0,
        source: Path | None = None,
        target: PluginManifest | None = None,
        state: tuple[bool, Any] | None = None,
        action: str = "reload",
        allow_downgrade: bool = False,
        dependents: bool = True,
        together: Collection[str] = (),
    ) -> PluginRecord:
        """Swap an active plugin for what its files say now (or for ``target``), while
        callers keep working; see the module docstring for the steps.

        ``source`` reads the manifest from another directory (a plugin directory that
        was renamed); ``state`` replaces the old version's exported state (rollback).
        Dependents are reloaded after it, in dependency order, when the version or a
        provided service changed (``dependents=False`` skips that).
        """
        if self.m.swap_guard is not None:  # a canary or shadow compares with this version
            self.m.swap_guard(plugin_id)
        lock = self.m.swap_lock(plugin_id)
        async with lock:
            rec, old = await self._swap(
                plugin_id,
                drain_timeout=drain_timeout,
                source=source,
                target=target,
                state=state,
                action=action,
                allow_downgrade=allow_downgrade,
                together=together,
            )
        new = rec.manifest
        assert new is not None
        if dependents and (old.version != new.version or old.provides != new.provides):
            await self.reload_dependents([plugin_id], f"{plugin_id} {old.version} → {new.version}")
        return rec

    async def reload_dependents(
        self, changed: Collection[str], why: str, *, skip: Collection[str] = ()
    ) -> dict[str, str | None]:
        """Reload every active plugin that needs one of ``changed``, dependencies first.
        A dependent that fails to reload keeps its old version. Returns each id reloaded,
        in order, with ``None`` or the reason it failed."""
        wanted: set[str] = set()
        for pid in changed:
            wanted.update(self.m.dependents(pid))
        wanted -= set(changed) | set(skip)
        done: dict[str, str | None] = {}
        for pid in [p for p in self.m.start_order() if p in wanted]:
            try:
                await self.reload_plugin(pid, dependents=False, action="reload")
                done[pid] = None
            except PlugbayError as exc:
                log.error("reloading dependent '%s' after %s failed: %s", pid, why, exc)
                done[pid] = str(exc)
        return done

    async def _swap(
        self,
        plugin_id: str,
        *,
        drain_timeout: float,
        source: Path | None,
        target: PluginManifest | None,
        state: tuple[bool, Any] | None,
        action: str,
        allow_downgrade: bool,
        together: Collection[str],
    ) -> tuple[PluginRecord, PluginManifest]:
        started = time.perf_counter()
        async with self.m.lifecycle_lock:
            rec, running = self._serving(
                plugin_id, reloadable=target is not None or source is not None
            )
            new = await self._start_target(
                rec,
                running,
                target,
                source=source,
                state=state,
                action=action,
                drain_timeout=drain_timeout,
                allow_downgrade=allow_downgrade,
                together=together,
            )
            if self.m.store is not None:  # the copy of what serves is taken before it serves
                await self.m.store.taken(new.manifest)
            self._activate(rec, new.handle, new.manifest, new.config, new.needs, new.notes)
            held = new.hold.release(None)  # the route is the new version's now
            rec.placement, rec.isolation = new.placement, new.placement.isolation
            serving = self.m.route_of(plugin_id)
            assert serving is not None
            running.handle.on_crash = None  # retiring: its death is no longer the plugin's
        # probation, then retire the old version (outside the lock: calls keep flowing)
        swapped = time.perf_counter() - started
        await self._probation(rec, running, new, serving.inflight, action, drain_timeout)
        self.m.supervise(rec, new.handle)
        drained = await self.drain(running.route.inflight, drain_timeout)
        cleanup_problem = await self._dispose(running.handle)
        rec.load_seconds = swapped
        old = running.manifest
        details: dict[str, Any] = {
            "from": str(old.version),
            "to": str(new.manifest.version),
            "seconds": round(swapped, 6),  # until the new version served
            "total_seconds": round(time.perf_counter() - started, 6),  # probation, drain, cleanup
            "drained": drained,
            "held_seconds": round(held, 6),  # new calls waited at the router this long
        }
        if cleanup_problem is not None:
            details["old_cleanup"] = cleanup_problem
        if rec.isolation != running.isolation:
            details["isolation"] = f"{running.isolation} → {rec.isolation}"
        changed = command_changes(running.handle.commands, new.handle.commands)
        if changed:  # a note, as the watch's on a command gone: the operator chose it
            details["command_changes"] = changed
        self._record_swap(rec, action, old, new, cleanup_problem, details)
        return rec, old

    def _serving(self, plugin_id: str, *, reloadable: bool) -> tuple[PluginRecord, _Running]:
        """The plugin's record and its serving version, refused unless it is active (and,
        unless given a target or a source, a plugin directory that can be read again)."""
        rec = self.m.record(plugin_id)
        old = rec.manifest
        route = self.m.route_of(plugin_id)
        if rec.state != "active" or route is None or old is None or rec.handle is None:
            raise self.m.not_active(rec)
        if not reloadable and (old.origin != "directory" or old.path is None):
            raise PluginStateError(
                f"is installed as a package ({old.location}); only a plugin directory "
                "can be reloaded in place",
                plugin=plugin_id,
                hint=f"install the new version, then 'plugbay upgrade {plugin_id}'",
            )
        running = _Running(
            rec.handle, old, rec.config, rec.needs, rec.notes, route, rec.placement, rec.isolation,
            rec.started_at,
        )  # fmt: skip
        return rec, running

    async def _start_target(
        self,
        rec: PluginRecord,
        running: _Running,
        target: PluginManifest | None,
        *,
        source: Path | None,
        state: tuple[bool, Any] | None,
        action: str,
        drain_timeout: float,
        allow_downgrade: bool,
        together: Collection[str],
    ) -> _Target:
        """Start the target beside the serving version, hold new calls, drain the serving
        version, initialize the target and hand the state over. On any failure the
        serving version serves on and the swap is refused (:class:`PluginReloadError`)."""
        old = running.manifest
        handle: PluginHandle | None = None
        hold: _Hold | None = None
        new: PluginManifest | None = target
        try:
            if new is None:
                assert old.path is not None
                new = load_manifest(source if source is not None else old.path)
            check_target(self.m, rec, old, new, allow_downgrade=allow_downgrade)
            check_dependents(self.m, rec.id, new, together)
            needs, notes = self.m.needs_of(new)
            config = self.m.validated_config(new)
            assert rec.metrics is not None
            # where the policy places the new version (it may differ from the old one's)
            placement = self.m.place(new)
            handle, context = await self.m.launch(rec, new, config, rec.metrics)
            # from here new calls wait at the router until the new version serves
            hold = _Hold(self.m, rec.id)
            await self._drain_or_refuse(running.route.inflight, drain_timeout, old)
            # initialize sees the data directory as the old version left it, and
            # export_state everything the old version acknowledged
            await self.m.initialize_handle(handle, new, context)
            exported = await hand_over(
                new, running.handle, handle, state, self.m.settings.init_timeout
            )
        except asyncio.CancelledError:  # the host is stopping: forget the half-started one
            if hold is not None:
                hold.release(running.route if rec.state == "active" else None)
            if handle is not None:
                handle.release()
            raise
        except (Exception, SystemExit) as exc:
            if hold is not None:  # the old version serves on (unless it died meanwhile)
                hold.release(running.route if rec.state == "active" else None)
            if handle is not None:
                await self._dispose(handle)
            if self.m.store is not None and new is not None:
                self.m.store.drop_snapshot(new)  # no copy of a version that never served
            raise self._swap_failed(rec, old, new, action, exc) from exc
        return _Target(new, handle, config, needs, notes, placement, exported, hold)

    async def _probation(
        self,
        rec: PluginRecord,
        running: _Running,
        new: _Target,
        new_inflight: list[int],
        action: str,
        drain_timeout: float,
    ) -> None:
        """The new version's probation (:mod:`plugbay.runtime.probation`). Failed: calls
        are held again, what the new version acknowledged goes back to the old one, which
        serves again, and the swap is refused with the reason."""
        try:
            failure = await probation(rec.id, new.handle, self.m.settings.probation)
        except asyncio.CancelledError:  # the host is stopping: the new version stays
            running.handle.release()
            raise
        if failure is None:
            return
        old = running.manifest
        async with self.m.lifecycle_lock:
            back = _Hold(self.m, rec.id)
            carried = await self._carry_back(
                new.handle, running.handle, new_inflight, drain_timeout
            )
            self._activate(
                rec, running.handle, old, running.config, running.needs, running.notes,
                route=running.route,
            )  # fmt: skip
            if running.started_at is not None and rec.metrics is not None:  # serves again
                rec.started_at = rec.metrics.started = running.started_at
            back.release(None)
            rec.placement, rec.isolation = running.placement, running.isolation
            self.m.supervise(rec, running.handle)
        await self._dispose(new.handle)
        if self.m.store is not None:  # kept only once a swap is done: this one never will be
            self.m.store.drop_snapshot(new.manifest)
        if carried is not None:
            failure += f"; {carried}"
        error = PluginReloadError(
            f"{action} to {new.manifest.version} failed its probation; {old.version} keeps "
            f"serving: {failure}",
            plugin=rec.id,
            where=new.manifest.location,
            hint=f"fix it and {action} again; 'plugbay history {rec.id}' keeps the reason",
        )
        self._record_failure(rec, action, old, new.manifest, error)
        raise error

    def _record_swap(
        self,
        rec: PluginRecord,
        action: str,
        old: PluginManifest,
        new: _Target,
        cleanup_problem: str | None,
        details: dict[str, Any],
    ) -> None:
        """A swap done: in the history, the serving version and the old one's state kept
        (for a rollback), and the event sent."""
        self.m.record_history(rec, action, "ok", cleanup_problem, details)
        self.remember_active(rec)
        if self.m.store is not None and new.exported[0]:
            try:  # encoded now, written off the loop: the new version's callers go on
                self.m.store.save_state_soon(rec.id, old.version, new.exported[1])
            except Exception as exc:  # not JSON (an object, a cycle): the swap is done anyway
                log.warning("the state of %s %s cannot be kept: %s", rec.id, old.version, exc)
        self.m.events.emit(
            _EVENTS.get(action, f"plugin.{action}"),
            plugin=rec.id,
            version=str(new.manifest.version),
            previous=str(old.version),
        )

    def _swap_failed(
        self,
        rec: PluginRecord,
        old: PluginManifest,
        new: PluginManifest | None,
        action: str,
        exc: BaseException,
    ) -> PluginReloadError:
        if isinstance(exc, PlugbayError):
            reason, where, hint, details = exc.message, exc.where, exc.hint, dict(exc.details)
        else:
            reason = f"{type(exc).__name__}: {exc}"
            where = (plugin_frame(exc, new) if new is not None else None) or str(old.path)
            hint, details = None, {"traceback": "".join(traceback.format_exception(exc))}
        error = PluginReloadError(
            f"{action} failed; {old.version} keeps serving: {reason}",
            plugin=rec.id,
            where=where or str(old.path),
            hint=hint
            or f"fix it and {action} again; 'plugbay info {rec.id}' shows the version serving",
            details=details,
        )
        self._record_failure(rec, action, old, new, error)
        return error

    def _record_failure(
        self,
        rec: PluginRecord,
        action: str,
        old: PluginManifest,
        new: PluginManifest | None,
        error: PluginReloadError,
    ) -> None:
        self.m.record_history(
            rec,
            action,
            "failed",
            str(error),
            {"from": str(old.version), "to": str(new.version) if new is not None else None},
        )
        self.m.events.emit(f"plugin.{action}_failed", plugin=rec.id, reason=str(error))
        log.error("%s", error)

    # ------------------------------------------------------------------ the switch

    def _activate(
        self,
        rec: PluginRecord,
        handle: PluginHandle,
        manifest: PluginManifest,
        config: dict[str, Any],
        needs: frozenset[str],
        notes: list[str],
        *,
        route: Route | None = None,
    ) -> None:
        """Route the plugin's calls to ``handle`` from now on (one dict assignment);
        ``route``: put back the route it had (a failed probation)."""
        previous = rec.manifest
        if route is None:
            timeout = call_timeout(manifest, self.m.settings)  # its placement's
            assert rec.metrics is not None
            # the commands' stats are the plugin's: kept across versions (for_command reuses)
            table = command_table(handle, rec.metrics, self.m.settings.monitoring)
            route = Route(handle, rec.metrics, timeout, [0], table)
            # a new version serves: its uptime starts now (docs/operators.md, Monitoring)
            rec.started_at = rec.metrics.started = time.time()
        self.m.set_route(rec.id, route)
        rec.handle, rec.manifest, rec.config = handle, manifest, config
        self.m.record_changed(rec.id)  # its events' listeners may differ
        rec.needs, rec.notes = needs, notes
        if previous is not None:
            gone = set(previous.provides) - set(manifest.provides)
            if gone:
                self.m.services.withdraw(rec.id, names=gone)
        for name, version in manifest.provides.items():
            self.m.services.provide(rec.id, name, version, None)
        instance = handle.instance
        if isinstance(instance, SystemPlugin):
            self.m.events.subscribe(
                Subscriber(
                    rec.id,
                    manifest.priority if manifest.priority is not None else instance.priority,
                    tuple(instance.system_hooks),
                    instance.on_system_event,
                )
            )
        else:
            self.m.events.unsubscribe(rec.id)
        if manifest.path is not None:
            self._register(manifest)

    def _register(self, manifest: PluginManifest) -> None:
        """The registry follows the swap: the serving version's manifest replaces what its
        file said before, and a registration whose file is gone (a renamed directory)."""
        registry = self.m.registry
        try:
            known = registry.get(manifest.id, manifest.version)
            if known.path != manifest.path and (known.path is None or not known.path.exists()):
                registry.unregister(manifest.id, manifest.version)
        except PlugbayError:
            pass  # not registered yet
        try:
            registry.replace(manifest)
        except PlugbayError as exc:  # the same version from two places: keep the first
            log.warning("%s", exc)

    async def _drain_or_refuse(
        self, inflight: list[int], timeout: float, old: PluginManifest
    ) -> None:
        """Wait for the serving version's calls in flight before its state is taken; one
        still running could acknowledge a write after the export, and lose it."""
        if not await self.drain(inflight, timeout):
            raise PlugbayError(
                f"{inflight[0]} call(s) on {old.version} did not finish within {timeout:g} s, "
                "so its state could not be taken whole",
                where=old.location,
                hint="try again when its long calls are done, or make them shorter",
            )

    async def _carry_back(
        self, new: PluginHandle, old: PluginHandle, inflight: list[int], timeout: float
    ) -> str | None:
        """A failed probation: hand what the new version acknowledged back to the old one
        (calls held meanwhile). Returns what could not be carried, or ``None``."""
        if not await self.drain(inflight, timeout):
            return f"{inflight[0]} call(s) on {new.manifest.version} were still running"
        return await carry_back(new, old, self.m.settings.init_timeout)

    async def drain(self, inflight: list[int], timeout: float) -> bool:
        """Wait until no call runs on a retired version (bounded); ``True`` if none does."""
        end = time.monotonic() + timeout
        # polled, not signalled: an Event would cost every call something, for a rare reload
        while inflight[0] > 0 and time.monotonic() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return inflight[0] == 0

    async def _dispose(self, handle: PluginHandle) -> str | None:
        """Bounded cleanup, then forget the code; a failure is reported, never raised."""
        problem = None
        try:
            await handle.cleanup(self.m.settings.cleanup_timeout)
        except CallTimeout:
            problem = (
                f"cleanup of the retired {handle.manifest.version} did not finish within "
                f"{self.m.settings.cleanup_timeout:g} s; abandoned"
            )
        except (Exception, SystemExit) as exc:
            problem = (
                f"cleanup of the retired {handle.manifest.version} raised "
                f"{type(exc).__name__}: {exc}"
            )
        if problem is not None:
            log.warning("plugin '%s': %s", handle.manifest.id, problem)
        handle.release()
        return problem

    def remember_active(self, rec: PluginRecord) -> None:
        """Keep the serving version across restarts, and a copy of its files (rollback)."""
        if self.m.state is None or rec.manifest is None:
            return
        m = rec.manifest
        held = False
        try:
            if self.m.store is not None:
                # the copy is taken in the store's keeper thread, in order: a start or a
                # swap does not wait for it; what reads it waits (PluginStore.settle)
                self.m.store.keep_soon(m)
                held = m.root is not None and m.root.is_relative_to(self.m.store.root)
            self.m.state.set_active_version(rec.id, str(m.version), held=held)
        except PlugbayError as exc:  # losing a copy must not take a plugin down
            log.error("could not keep %s %s: %s", rec.id, m.version, exc)

    # ------------------------------------------------------------------ stop and start

    async def keep_at_stop(self, plugin_id: str, handle: PluginHandle) -> str | None:
        """Before a stop cleans a plugin up: what it holds, kept durably for its next
        start (:func:`plugbay.runtime.state_handover.keep_at_stop`)."""
        timeout = self.m.settings.cleanup_timeout
        return await keep_at_stop(self.m.store, timeout, plugin_id, handle)

    async def restore_at_start(self, plugin_id: str, handle: PluginHandle) -> None:
        """After ``initialize``: give the plugin what it held when it was last stopped
        (:func:`plugbay.runtime.state_handover.restore_at_start`)."""
        await restore_at_start(self.m.store, self.m.settings.init_timeout, plugin_id, handle)

    # ------------------------------------------------------------------ rollback

    def previous_version(self, plugin_id: str) -> str:
        """The version that served before the current one, from the history."""
        rec = self.m.record(plugin_id)
        if self.m.state is None or self.m.store is None:
            raise PluginStateError(
                "rollback needs a state directory, where earlier versions are kept",
                plugin=plugin_id,
                hint="start the host with a state directory (--state DIR)",
            )
        for event in self.m.state.history(plugin_id, limit=1000):
            if (
                event.result == "ok"
                and event.action in ACTIVATIONS
                and event.version
                and event.version != rec.version
            ):
                return event.version
        raise PluginStateError(
            f"has no earlier version to roll back to: its history shows only {rec.version}",
            plugin=plugin_id,
            hint=f"'plugbay history {plugin_id}' shows what it ran",
        )

    async def rollback_plugin(
        self,
        plugin_id: str,
        version: str | None = None,
        *,
        with_dependents: bool = False,
        action: str = "rollback",
    ) -> PluginRecord:
        """Return to the previous version kept in history (or ``version``), with the state
        it had when it was replaced; ``with_dependents``: each active dependent that would
        not accept it goes back to its previous version too
        (:func:`plugbay.runtime.rollbacks.plan_rollback`). The current versions serve until
        their swaps. ``action``: the history's word for it (a bisect's trials are not the
        operator's rollbacks, so a later rollback does not return to one)."""
        wanted = version or self.previous_version(plugin_id)
        assert self.m.store is not None
        await self.m.store.settled(plugin_id)  # a copy still being kept
        try:
            target = self.m.store.manifest(plugin_id, wanted)
            plan = plan_rollback(
                self.m, self.previous_version, plugin_id, target, with_dependents=with_dependents
            )
        except PlugbayError as exc:
            error = PluginReloadError(
                f"{action} failed; {self.m.record(plugin_id).version} keeps serving: {exc.message}",
                plugin=plugin_id,
                where=exc.where,
                hint=exc.hint,
                details=dict(exc.details),
            )
            self.m.record_history(
                self.m.record(plugin_id), action, "failed", str(error), {"to": wanted}
            )
            raise error from None
        await self._move(plan, action)
        return self.m.record(plugin_id)

    # ------------------------------------------------------------------ upgrade

    def upgrade_plan(
        self,
        plugin_id: str,
        version: str | None = None,
        *,
        with_dependents: bool = False,
    ) -> UpgradePlan:
        """Which versions move if ``plugin_id`` moves to ``version``
        (:func:`plugbay.runtime.upgrades.plan_upgrade`)."""
        return plan_upgrade(self.m, plugin_id, version, with_dependents=with_dependents)

    async def upgrade_plugin(
        self,
        plugin_id: str,
        version: str | None = None,
        *,
        with_dependents: bool = False,
    ) -> UpgradePlan:
        """Move ``plugin_id`` to a newer installed version (and, with ``with_dependents``,
        its dependents to versions that accept it), each swapped like a reload."""
        plan = self.upgrade_plan(plugin_id, version, with_dependents=with_dependents)
        return replace(plan, command_changes=await self._move(plan, "upgrade"))

    async def _move(self, plan: UpgradePlan, action: str) -> dict[str, list[dict[str, Any]]]:
        """Swap each plugin of ``plan`` in order (a rollback with the state its version had
        then); when one fails, those already moved go back, newest first. Then the other
        dependents of what moved are reloaded. Returns how each moved plugin's commands
        changed (:func:`plugbay.runtime.command_changes.command_changes`), when they did."""
        moved = set(plan.changes)
        done: list[PluginManifest] = []  # what served before each step, to undo it
        changes: dict[str, list[dict[str, Any]]] = {}
        back = action != "upgrade"
        for pid, (_, target) in plan.changes.items():
            before = self.m.record(pid).manifest
            commands = dict(self.m.record(pid).commands)
            saved = self.m.store.load_state(pid, target.version) if back and self.m.store else None
            try:
                rec = await self.reload_plugin(
                    pid, target=target, state=saved if saved and saved[0] else None,
                    action=action, allow_downgrade=back, dependents=False, together=moved,
                )  # fmt: skip
            except PlugbayError as exc:
                undone = await self._undo(done, moved)
                if undone:
                    exc.message += f" (the {action} was undone: {', '.join(undone)} moved back)"
                raise
            assert before is not None
            done.append(before)
            if found := command_changes(commands, rec.commands):
                changes[pid] = found
        changed = [pid for pid, (old, new) in plan.changes.items() if old != str(new.version)]
        if changed:
            await self.reload_dependents(changed, f"{action} of {next(iter(plan.changes))}")
        return changes

    async def _undo(self, done: list[PluginManifest], moved: Collection[str]) -> list[str]:
        """Put back, newest step first, the versions an upgrade had already moved."""
        undone: list[str] = []
        for previous in reversed(done):
            try:
                await self.reload_plugin(
                    previous.id, target=previous, action="rollback", allow_downgrade=True,
                    dependents=False, together=moved,
                )  # fmt: skip
                undone.append(f"{previous.id} {previous.version}")
            except PlugbayError as exc:
                log.error("undoing the upgrade of %s failed: %s", previous.id, exc)
        return undone


class _Hold:
    """New calls to one plugin wait at the router while its state moves between versions.

    Made by taking the plugin's route away (:meth:`SwapHost.hold_calls`; the hot path
    then finds none and waits on the hold, :meth:`PluginManager.call`); :meth:`release`
    puts a route back (or leaves the one the swap installed) and lets the waiting calls
    through.
    """

    __slots__ = ("_done", "_id", "_m", "_started")

    def __init__(self, manager: SwapHost, plugin_id: str) -> None:
        self._m, self._id = manager, plugin_id
        self._started = time.perf_counter()
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        manager.hold_calls(plugin_id, self._done)

    def release(self, route: Route | None) -> float:
        """Let held calls through (to ``route`` if given); returns the seconds held."""
        if route is not None:
            self._m.set_route(self._id, route)
        self._m.end_hold(self._id, self._done)
        return time.perf_counter() - self._started
