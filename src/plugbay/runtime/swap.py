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
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from plugbay.api import PluginContext, SystemPlugin
from plugbay.api.errors import (
    DependentsError,
    PlugbayError,
    PluginReloadError,
    PluginStateError,
    ResolutionError,
)
from plugbay.isolation import CallTimeout, PluginHandle, handover
from plugbay.isolation.base import deadline
from plugbay.isolation.loading import plugin_frame
from plugbay.isolation.policy import Placement
from plugbay.model.manifest import PluginManifest, load_manifest
from plugbay.model.versions import Version
from plugbay.runtime.events import EventBus, Subscriber
from plugbay.runtime.routing import Route, command_table

if TYPE_CHECKING:
    from plugbay.model.registry import PluginRegistry
    from plugbay.monitor import PluginMetrics
    from plugbay.runtime.manager import ManagerSettings, PluginRecord
    from plugbay.runtime.services import ServiceHub
    from plugbay.runtime.store import PluginStore
    from plugbay.state import StateStore

__all__ = ["SwapHost", "Swapper", "UpgradePlan"]

log = logging.getLogger("plugbay.manager")

_EVENTS: Final = {
    "reload": "plugin.reloaded",
    "upgrade": "plugin.upgraded",
    "rollback": "plugin.rolled_back",
}

#: history actions after which a version is the one serving
ACTIVATIONS: Final = frozenset({"load", "reload", "upgrade", "rollback", "restart"})


class SwapHost(Protocol):
    """What the swapper needs of the manager it swaps for, and nothing more
    (:class:`plugbay.runtime.manager.PluginManager` implements it; each member is
    documented there)."""

    settings: ManagerSettings
    registry: PluginRegistry
    services: ServiceHub
    events: EventBus
    state: StateStore | None
    store: PluginStore | None

    @property
    def lifecycle_lock(self) -> asyncio.Lock: ...
    def swap_lock(self, plugin_id: str) -> asyncio.Lock: ...
    def record(self, plugin_id: str) -> PluginRecord: ...
    def list_plugins(self) -> list[PluginRecord]: ...
    def dependents(self, plugin_id: str, *, active_only: bool = True) -> list[str]: ...
    def start_order(self) -> list[str]: ...
    def route_of(self, plugin_id: str) -> Route | None: ...
    def set_route(self, plugin_id: str, route: Route) -> None: ...
    def hold_calls(self, plugin_id: str, until: asyncio.Future[None]) -> None: ...
    def end_hold(self, plugin_id: str, until: asyncio.Future[None]) -> None: ...
    def needs_of(self, manifest: PluginManifest) -> tuple[frozenset[str], list[str]]: ...
    def validated_config(self, manifest: PluginManifest) -> dict[str, Any]: ...
    def place(self, manifest: PluginManifest) -> Placement: ...
    async def launch(
        self,
        rec: PluginRecord,
        manifest: PluginManifest,
        config: dict[str, Any],
        metrics: PluginMetrics,
    ) -> tuple[PluginHandle, PluginContext]: ...
    async def initialize_handle(
        self, handle: PluginHandle, manifest: PluginManifest, context: PluginContext
    ) -> None: ...
    def supervise(self, rec: PluginRecord, handle: PluginHandle) -> None: ...
    def record_history(
        self,
        rec: PluginRecord,
        action: str,
        result: str,
        reason: str | None,
        details: dict[str, Any] | None,
    ) -> None: ...
    def not_active(self, rec: PluginRecord) -> PluginStateError: ...


@dataclass(frozen=True, slots=True)
class UpgradePlan:
    """What ``upgrade`` would change: plugin id → (from version, to manifest), in order."""

    changes: dict[str, tuple[str, PluginManifest]]

    @property
    def order(self) -> list[str]:
        return list(self.changes)

    def to_dict(self) -> dict[str, dict[str, str]]:
        """``{id: {"from": version, "to": version}}`` in order (for the CLI and the API)."""
        return {
            pid: {"from": old, "to": str(new.version)} for pid, (old, new) in self.changes.items()
        }


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
            rec = self.m.record(plugin_id)
            old = rec.manifest
            route = self.m.route_of(plugin_id)
            if rec.state != "active" or route is None or old is None or rec.handle is None:
                raise self.m.not_active(rec)
            if (
                target is None
                and source is None
                and (old.origin != "directory" or old.path is None)
            ):
                raise PluginStateError(
                    f"is installed as a package ({old.location}); only a plugin directory "
                    "can be reloaded in place",
                    plugin=plugin_id,
                    hint=f"install the new version, then 'plugbay upgrade {plugin_id}'",
                )
            running = _Running(
                rec.handle,
                old,
                rec.config,
                rec.needs,
                rec.notes,
                route,
                rec.placement,
                rec.isolation,
            )
            handle: PluginHandle | None = None
            hold: _Hold | None = None
            new: PluginManifest | None = target
            try:
                if new is None:
                    assert old.path is not None
                    new = load_manifest(source if source is not None else old.path)
                self._check_target(rec, old, new, allow_downgrade=allow_downgrade)
                self._check_dependents(plugin_id, new, together)
                needs, notes = self.m.needs_of(new)
                config = self.m.validated_config(new)
                assert rec.metrics is not None
                # where the policy places the new version (it may differ from the old one's)
                placement = self.m.place(new)
                handle, context = await self.m.launch(rec, new, config, rec.metrics)
                # from here new calls wait at the router until the new version serves
                hold = _Hold(self.m, plugin_id)
                await self._drain_or_refuse(running.route.inflight, drain_timeout, old)
                # initialize sees the data directory as the old version left it, and
                # export_state everything the old version acknowledged
                await self.m.initialize_handle(handle, new, context)
                exported = await self._hand_over(new, running.handle, handle, state)
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
                raise self._swap_failed(rec, old, new, action, exc) from exc
            assert hold is not None
            self._activate(rec, handle, new, config, needs, notes)
            held = hold.release(None)  # the route is the new version's now
            rec.placement, rec.isolation = placement, placement.isolation
            serving = self.m.route_of(plugin_id)
            assert serving is not None
            new_inflight = serving.inflight
            running.handle.on_crash = None  # retiring: its death is no longer the plugin's
        # probation, then retire the old version (outside the lock: calls keep flowing)
        swapped = time.perf_counter() - started
        try:
            failure = await self._probation(rec, handle)
        except asyncio.CancelledError:  # the host is stopping: the new version stays
            running.handle.release()
            raise
        if failure is not None:
            async with self.m.lifecycle_lock:
                back = _Hold(self.m, plugin_id)
                carried = await self._carry_back(
                    handle, running.handle, new_inflight, drain_timeout
                )
                self._activate(
                    rec, running.handle, old, running.config, running.needs, running.notes,
                    route=running.route,
                )  # fmt: skip
                back.release(None)
                rec.placement, rec.isolation = running.placement, running.isolation
                self.m.supervise(rec, running.handle)
            await self._dispose(handle)
            if carried is not None:
                failure += f"; {carried}"
            error = PluginReloadError(
                f"{action} to {new.version} failed its probation; {old.version} keeps serving: "
                f"{failure}",
                plugin=plugin_id,
                where=new.location,
                hint=f"fix it and {action} again; 'plugbay history {plugin_id}' keeps the reason",
            )
            self._record_failure(rec, action, old, new, error)
            raise error
        self.m.supervise(rec, handle)
        drained = await self.drain(running.route.inflight, drain_timeout)
        cleanup_problem = await self._dispose(running.handle)
        rec.load_seconds = swapped
        details: dict[str, Any] = {
            "from": str(old.version),
            "to": str(new.version),
            "seconds": round(swapped, 6),  # until the new version served
            "total_seconds": round(time.perf_counter() - started, 6),  # probation, drain, cleanup
            "drained": drained,
            "held_seconds": round(held, 6),  # new calls waited at the router this long
        }
        if cleanup_problem is not None:
            details["old_cleanup"] = cleanup_problem
        if rec.isolation != running.isolation:
            details["isolation"] = f"{running.isolation} → {rec.isolation}"
        self.m.record_history(rec, action, "ok", cleanup_problem, details)
        self.remember_active(rec)
        if self.m.store is not None and exported[0]:
            try:
                self.m.store.save_state(plugin_id, old.version, handover.plain_state(exported[1]))
            except (OSError, TypeError, ValueError) as exc:
                log.warning("the state of %s %s cannot be kept: %s", plugin_id, old.version, exc)
        self.m.events.emit(
            _EVENTS.get(action, f"plugin.{action}"),
            plugin=plugin_id,
            version=str(new.version),
            previous=str(old.version),
        )
        return rec, old

    def _check_target(
        self,
        rec: PluginRecord,
        old: PluginManifest,
        new: PluginManifest,
        *,
        allow_downgrade: bool,
    ) -> None:
        where = new.location
        if new.id != rec.id:
            raise PlugbayError(
                f"the manifest now says id '{new.id}'",
                where=where,
                hint="a plugin's id cannot change; install it as a new plugin",
            )
        if new.version < old.version and not allow_downgrade:
            raise PlugbayError(
                f"the version went backwards, from {old.version} to {new.version}",
                where=where,
                hint=f"raise the version, or go back on purpose with 'plugbay rollback {rec.id}'",
            )
        host = Version.parse(self.m.settings.host_version)
        if not new.host.contains(host, include_prerelease=True):
            raise PlugbayError(
                f"{new.version} needs host {new.host}, and this host is {host}",
                where=where,
                hint="use a version made for this host, or upgrade plugbay",
            )

    def _check_dependents(
        self, plugin_id: str, new: PluginManifest, together: Collection[str]
    ) -> None:
        """Refuse a version that an active dependent's range would not accept, naming
        each dependent and its range (plugin ranges and required service ranges)."""
        broken: dict[str, str] = {}
        for dep in self.m.list_plugins():
            m = dep.manifest
            if dep.id == plugin_id or dep.id in together or dep.state != "active" or m is None:
                continue
            rng = m.dependencies.get(plugin_id)
            if rng is None and plugin_id in dep.needs:
                rng = m.optional_dependencies.get(plugin_id)
            if rng is not None and new.version not in rng:
                broken[dep.id] = f"'{dep.id}' {dep.version} requires '{plugin_id}' {rng}"
            for name, wanted in m.requires.items():
                if self.m.services.provider_of(name) != plugin_id:
                    continue
                provided = new.provides.get(name)
                if provided is None:
                    broken[dep.id] = (
                        f"'{dep.id}' {dep.version} requires service '{name}' {wanted}, "
                        f"which {new.version} no longer provides"
                    )
                elif provided not in wanted:
                    broken[dep.id] = (
                        f"'{dep.id}' {dep.version} requires service '{name}' {wanted}, "
                        f"and {new.version} provides {provided}"
                    )
        if broken:
            raise DependentsError(
                f"{new.version} would break its dependents: " + "; ".join(broken.values()),
                plugin=plugin_id,
                where=new.location,
                hint=f"'plugbay upgrade {plugin_id} {new.version} --with-dependents' moves them "
                "too when versions of them accept it; otherwise keep a compatible version",
                details={"dependents": broken},
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
            asked = manifest.resources.timeout
            timeout = min(
                asked if asked is not None and asked > 0 else self.m.settings.call_timeout,
                self.m.settings.max_call_timeout,
            )
            assert rec.metrics is not None
            # the commands' stats are the plugin's: kept across versions (for_command reuses)
            table = command_table(handle, rec.metrics, self.m.settings.monitoring)
            route = Route(handle, rec.metrics, timeout, [0], table)
        self.m.set_route(rec.id, route)
        rec.handle, rec.manifest, rec.config = handle, manifest, config
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
        try:
            async with deadline(self.m.settings.init_timeout):
                exported = await new.export_state(self.m.settings.init_timeout)
                if exported[0]:
                    await old.import_state(exported[1], self.m.settings.init_timeout)
        except (Exception, SystemExit) as exc:  # a dead worker, a refusing import_state
            text = exc.message if isinstance(exc, PlugbayError) else f"{type(exc).__name__}: {exc}"
            log.error(
                "plugin '%s': the state of %s could not be carried back to %s: %s",
                new.manifest.id, new.manifest.version, old.manifest.version, text,
            )  # fmt: skip
            return f"its state could not be carried back ({text})"
        return None

    async def drain(self, inflight: list[int], timeout: float) -> bool:
        """Wait until no call runs on a retired version (bounded); ``True`` if none does."""
        end = time.monotonic() + timeout
        # polled, not signalled: an Event would cost every call something, for a rare reload
        while inflight[0] > 0 and time.monotonic() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return inflight[0] == 0

    async def _hand_over(
        self,
        new: PluginManifest,
        old: PluginHandle,
        handle: PluginHandle,
        state: tuple[bool, Any] | None,
    ) -> tuple[bool, Any]:
        """Move state from the old version to the new one; returns what the old exported
        (kept in the store so a rollback can restore it)."""
        asked = new.resources.init_timeout
        timeout = asked if asked is not None and asked > 0 else self.m.settings.init_timeout
        try:
            async with deadline(timeout):
                exported = await old.export_state(timeout)
        except CallTimeout:
            raise PlugbayError(
                f"export_state did not finish within {timeout:g} s",
                where=old.manifest.location,
                hint="make export_state return promptly",
            ) from None
        except PlugbayError as exc:
            raise PlugbayError(
                f"export_state of {old.manifest.version} {_failed(exc)}",
                where=exc.where or old.manifest.location,
                hint="fix export_state; the old version keeps serving meanwhile",
                details=exc.details,
            ) from None
        except Exception as exc:
            raise PlugbayError(
                f"export_state of {old.manifest.version} raised {type(exc).__name__}: {exc}",
                where=plugin_frame(exc, old.manifest) or old.manifest.location,
                hint="fix export_state; the old version keeps serving meanwhile",
                details={"traceback": "".join(traceback.format_exception(exc))},
            ) from None
        # what the serving version holds now wins over a state kept earlier (rollback):
        # the kept one is used only when the serving version exports nothing
        given = exported if exported[0] or state is None else state
        if given[0]:
            try:
                async with deadline(timeout):
                    await handle.import_state(given[1], timeout)
            except CallTimeout:
                raise PlugbayError(
                    f"import_state did not finish within {timeout:g} s",
                    where=new.location,
                    hint="make import_state return promptly",
                ) from None
            except PlugbayError as exc:
                raise PlugbayError(
                    f"import_state of {new.version} {_failed(exc)}",
                    where=exc.where or new.location,
                    hint="make import_state accept what export_state gives",
                    details=exc.details,
                ) from None
            except Exception as exc:
                raise PlugbayError(
                    f"import_state of {new.version} raised {type(exc).__name__}: {exc}",
                    where=plugin_frame(exc, new) or new.location,
                    hint="make import_state accept what export_state gives",
                    details={"traceback": "".join(traceback.format_exception(exc))},
                ) from None
        return exported

    async def _probation(self, rec: PluginRecord, handle: PluginHandle) -> str | None:
        """The reason the new version failed its probation, or ``None`` if it passed.

        Its ``health`` command (when it has one) must answer truthfully at the start
        and through the window; a worker must stay alive. An inline plugin without a
        ``health`` command has nothing to probe and passes at once.
        """
        window = self.m.settings.probation
        has_health = "health" in handle.commands
        is_worker = handle.isolated
        if window <= 0 or not (has_health or is_worker):
            return None
        crashes: list[PlugbayError] = []
        if is_worker:
            handle.on_crash = crashes.append
        end = time.monotonic() + window
        while True:
            if crashes:
                return f"its worker died: {crashes[0].message}"
            if has_health:
                reason = await self._probe(rec.id, handle, min(window, 5.0))
                if reason is not None:
                    return reason
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, max(window / 4, 0.01)))
        return f"its worker died: {crashes[0].message}" if crashes else None

    async def _probe(self, plugin_id: str, handle: PluginHandle, timeout: float) -> str | None:
        spec = handle.commands["health"]
        try:
            result = spec.validate_result(
                await handle.call(spec, spec.validate_params({}, plugin=plugin_id), timeout),
                plugin=plugin_id,
            )
        except CallTimeout:
            return f"its health probe did not answer within {timeout:g} s"
        except PlugbayError as exc:
            return f"its health probe failed: {exc.message}"
        except (Exception, SystemExit) as exc:
            return f"its health probe raised {type(exc).__name__}: {exc}"
        if isinstance(result, Mapping):
            ok = result.get("ok", result.get("healthy", True))
            status = str(result.get("status", "")).lower()
            if not ok or status in ("failing", "unhealthy", "down", "error"):
                return f"its health probe reported {dict(result)}"
            return None
        if result is False or result is None or (isinstance(result, str) and not result):
            return f"its health probe reported {result!r}"
        return None

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
                self.m.store.keep(m)
                held = m.root is not None and m.root.is_relative_to(self.m.store.root)
            self.m.state.set_active_version(rec.id, str(m.version), held=held)
        except PlugbayError as exc:  # losing a copy must not take a plugin down
            log.error("could not keep %s %s: %s", rec.id, m.version, exc)

    # ------------------------------------------------------------------ stop and start

    async def keep_at_stop(self, plugin_id: str, handle: PluginHandle) -> str | None:
        """Before a stop cleans a plugin up: what it holds (``export_state``), kept
        durably for its next start, so a host restart loses nothing it acknowledged.
        Returns what went wrong (the stop goes on), or ``None``."""
        store = self.m.store
        if store is None:
            return None
        timeout = self.m.settings.cleanup_timeout
        try:
            async with deadline(timeout):
                exported = await handle.export_state(timeout)
            if exported[0]:
                state = handover.plain_state(exported[1])
                await asyncio.to_thread(
                    store.save_handover, plugin_id, handle.manifest.version, state
                )
        except (Exception, SystemExit) as exc:  # a dead worker, a full disk, a refusal
            problem = (
                f"its state could not be kept for its next start: "
                f"{exc.message if isinstance(exc, PlugbayError) else type(exc).__name__}"
                f"{'' if isinstance(exc, PlugbayError) else f': {exc}'}"
            )
            log.error("plugin '%s': %s", plugin_id, problem)
            return problem
        return None

    async def restore_at_start(self, plugin_id: str, handle: PluginHandle) -> None:
        """After ``initialize``: give the plugin what it held when it was last stopped.
        A failure fails the start, and the kept state stays for the next attempt."""
        store = self.m.store
        if store is None:
            return
        found, state, version = store.load_handover(plugin_id)
        if not found:
            return
        timeout = self.m.settings.init_timeout
        where = str(store.handover_file(plugin_id))
        try:
            async with deadline(timeout):
                await handle.import_state(state, timeout)
        except CallTimeout:
            raise PlugbayError(
                f"import_state of the state kept at its last stop did not finish "
                f"within {timeout:g} s",
                plugin=plugin_id,
                where=where,
                hint="make import_state return promptly; the kept state stays for the next start",
            ) from None
        except (Exception, SystemExit) as exc:
            text = _failed(exc) if isinstance(exc, PlugbayError) else (
                f"raised {type(exc).__name__}: {exc}"
            )  # fmt: skip
            raise PlugbayError(
                f"import_state of the state {version} kept at its last stop {text}",
                plugin=plugin_id,
                where=where,
                hint="make import_state accept what export_state gave; the kept state stays "
                "for the next start",
            ) from None
        store.drop_handover(plugin_id)

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

    async def rollback_plugin(self, plugin_id: str, version: str | None = None) -> PluginRecord:
        """Return to the previous version kept in history (or ``version``), with the state
        it had when it was replaced. The current version serves until the swap."""
        wanted = version or self.previous_version(plugin_id)
        assert self.m.store is not None
        try:
            target = self.m.store.manifest(plugin_id, wanted)
        except PlugbayError as exc:
            error = PluginReloadError(
                f"rollback failed; {self.m.record(plugin_id).version} keeps serving: {exc.message}",
                plugin=plugin_id,
                where=exc.where,
                hint=exc.hint,
            )
            self.m.record_history(
                self.m.record(plugin_id), "rollback", "failed", str(error), {"to": wanted}
            )
            raise error from None
        saved = self.m.store.load_state(plugin_id, wanted)
        return await self.reload_plugin(
            plugin_id,
            target=target,
            state=saved if saved[0] else None,
            action="rollback",
            allow_downgrade=True,
        )

    # ------------------------------------------------------------------ upgrade

    def upgrade_plan(
        self,
        plugin_id: str,
        version: str | None = None,
        *,
        with_dependents: bool = False,
    ) -> UpgradePlan:
        """Which versions move if ``plugin_id`` moves to ``version`` (default: the newest
        registered that this host accepts). Raises, naming each dependent and its range,
        when a dependent would break and ``with_dependents`` is off or no consistent set
        of versions exists."""
        from plugbay.model.resolve import resolve

        rec = self.m.record(plugin_id)
        current = rec.manifest
        if rec.state != "active" or current is None:
            raise self.m.not_active(rec)
        host = Version.parse(self.m.settings.host_version)
        known = self.m.registry.versions(plugin_id)
        if version is None:
            fitting = [
                v
                for v in known
                if self.m.registry.get(plugin_id, v).host.contains(host, include_prerelease=True)
            ]
            if not fitting or fitting[0] <= current.version:
                raise PlugbayError(
                    f"{current.version} is the newest version installed for this host"
                    + (f" (known: {', '.join(map(str, known))})" if known else ""),
                    plugin=plugin_id,
                    hint="'plugbay install PATH' adds a newer version",
                )
            wanted = fitting[0]
        else:
            wanted = Version.parse(version)
            if wanted not in known:
                raise PlugbayError(
                    f"version {wanted} is not installed",
                    plugin=plugin_id,
                    hint=f"installed: {', '.join(map(str, known))}; 'plugbay install PATH' adds one",
                )
            if wanted < current.version:
                raise PlugbayError(
                    f"{wanted} is older than {current.version}, which serves now",
                    plugin=plugin_id,
                    hint=f"'plugbay rollback {plugin_id}' goes back on purpose",
                )
        target = self.m.registry.get(plugin_id, wanted)
        self._check_target(rec, current, target, allow_downgrade=False)
        try:
            self._check_dependents(plugin_id, target, ())
            return UpgradePlan({plugin_id: (str(current.version), target)})
        except DependentsError as exc:
            if not with_dependents:
                raise
            broken = exc
        # search for versions of the active plugins that accept the target, keeping
        # every other active plugin where it is when possible
        active = {r.id: r for r in self.m.list_plugins() if r.state == "active" and r.manifest}
        candidates = [
            m
            for m in self.m.registry.manifests()
            if m.id in active and (m.id != plugin_id or m.version == wanted)
        ]
        pins = {pid: r.manifest.version for pid, r in active.items() if r.manifest}
        pins[plugin_id] = wanted
        plan = resolve(candidates, host_version=host, requested=list(active), pinned=pins)
        if plan.failures or plan.selected.get(plugin_id) is not target:
            causes = "; ".join(str(e) for e in plan.failures.values())
            raise ResolutionError(
                f"no consistent set of installed versions accepts {plugin_id} {wanted}: "
                + "; ".join(broken.details.get("dependents", {}).values())
                + (f" ({causes})" if causes else ""),
                plugin=plugin_id,
                hint="install versions of those dependents that accept it, then try again",
                details={"dependents": broken.details.get("dependents", {})},
            ) from None
        changes: dict[str, tuple[str, PluginManifest]] = {}
        for pid in plan.order:
            chosen = plan.selected[pid]
            now = active[pid].manifest
            if now is not None and chosen.version != now.version:
                changes[pid] = (str(now.version), chosen)
        return UpgradePlan(changes)

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
        moved = set(plan.changes)
        done: list[PluginManifest] = []  # what served before each step, to undo it
        for pid, (_, target) in plan.changes.items():
            before = self.m.record(pid).manifest
            try:
                await self.reload_plugin(
                    pid, target=target, action="upgrade", dependents=False, together=moved
                )
            except PlugbayError as exc:
                undone = await self._undo(done, moved)
                if undone:
                    exc.message += f" (the upgrade was undone: {', '.join(undone)} moved back)"
                raise
            assert before is not None
            done.append(before)
        await self.reload_dependents(moved, f"upgrade of {plugin_id}")
        return plan

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


def _failed(exc: PlugbayError) -> str:
    """How a worker's lifecycle step failed: the plugin raised, or the worker broke."""
    return f"raised {exc.message}" if "exception" in exc.details else f"failed: {exc.message}"
