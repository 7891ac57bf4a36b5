"""The plugin manager: lifecycle, load order, and the one call path.

Each plugin has a :class:`PluginRecord` (:mod:`plugbay.runtime.records`) whose
``state`` moves through::

    discovered → resolved → initializing → active → stopping → stopped
                     ↘ failed (reason kept)        ↘ disabled (by the operator)

(``restarting`` while a crashed worker waits for its restart: ``runtime.supervision``).
Plugins start in dependency order; a plugin whose dependency is not active is
not started, and says which one. A failure is recorded with its reason and
traceback and emitted as an event; it never stops the other plugins.

The manager is made of parts, one concern each: starting a plugin
(:mod:`~plugbay.runtime.starting`), answering its crashes
(:mod:`~plugbay.runtime.supervision`), its security events and bounds
(:mod:`~plugbay.runtime.security`), running a call (:mod:`~plugbay.runtime.calling`,
the one call path); swaps are delegated to :class:`~plugbay.runtime.swap.Swapper`.
The bookkeeping the parts share is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import traceback
import types
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Final

from plugbay.api import CommandSpec, Plugin, PluginContext
from plugbay.api.errors import (
    DependentsError,
    PlugbayError,
    PluginStateError,
)
from plugbay.isolation import Backend, CallTimeout, InlineBackend, PluginHandle
from plugbay.isolation.process import ProcessBackend
from plugbay.isolation.ray import RayBackend
from plugbay.isolation.wasm import WasmBackend
from plugbay.model.manifest import PluginManifest
from plugbay.model.registry import PluginRegistry
from plugbay.model.resolve import ResolutionPlan
from plugbay.monitor import PluginMetrics
from plugbay.monitor.bounds import Budget
from plugbay.runtime.activation import Activation
from plugbay.runtime.broker import Broker
from plugbay.runtime.calling import Calling
from plugbay.runtime.environments import EnvironmentStore
from plugbay.runtime.events import EventBus
from plugbay.runtime.plugin_events import PluginEvents
from plugbay.runtime.records import (
    ManagerSettings,
    PluginRecord,
    PluginState,
    Roster,
    optional_only,
)
from plugbay.runtime.routing import Route
from plugbay.runtime.security import SecurityEvents
from plugbay.runtime.services import ServiceHub
from plugbay.runtime.serving import Serving
from plugbay.runtime.starting import Starting
from plugbay.runtime.startup import prepare_storage, start_plan
from plugbay.runtime.stop_steps import StopSteps
from plugbay.runtime.store import PluginStore
from plugbay.runtime.supervision import Supervision
from plugbay.runtime.swap import Swapper, UpgradePlan
from plugbay.runtime.tap import Taps
from plugbay.state import StateStore

__all__ = ["ManagerSettings", "PluginManager", "PluginRecord", "PluginState"]

log = logging.getLogger("plugbay.manager")

_NO_CONFIG: Final[Mapping[str, Any]] = {}


class PluginManager(Calling, Starting, Supervision, SecurityEvents):
    """The spec's ``PluginManager``: load, unload, get and list plugins, and call them;
    reload, upgrade and roll them back (:mod:`plugbay.swap`)."""

    def __init__(
        self,
        registry: PluginRegistry,
        settings: ManagerSettings,
        *,
        state: StateStore | None = None,
        events: EventBus | None = None,
        config_for: Callable[[str], Mapping[str, Any]] | None = None,
        proxy_for: Callable[[str], Any] | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.state = state
        self.events = events or EventBus()
        process = ProcessBackend(self._host_call)
        self.backends: dict[str, Backend] = {
            "inline": InlineBackend(),
            "process": process,
            "wasm": WasmBackend(
                self._host_call, lambda: self.plugin_events, settings.data_root / ".wasm-cache"
            ),
            "ray": RayBackend(
                self._host_call, lambda: self.settings.policy.ray, quotas=process.quotas
            ),
        }
        self.services = ServiceHub(proxy_for or (lambda plugin_id: None))
        #: checks every request a plugin makes of the host (``runtime.broker``)
        self.broker: Broker = Broker(self)
        #: what each plugin may make the host keep (``monitor.bounds``), by plugin id
        self.budgets: dict[str, Budget] = {}
        self._config_for = config_for or (lambda plugin_id: _NO_CONFIG)
        self._records = Roster()
        # the hot path's routing table: active plugins only
        self._routes: dict[str, Route] = {}
        self.touched: set[str] = set()  # plugins called, or whose state changed (touch)
        #: set while the monitor waits for its next tick: a plugin touched ends the wait
        self.wake_monitor: Callable[[], None] | None = None
        self._lock = asyncio.Lock()
        #: plugins whose new calls wait while a swap moves their state (plugbay.runtime.swap)
        self._holds: dict[str, asyncio.Future[None]] = {}
        self._restarts: dict[str, asyncio.Task[None]] = {}
        #: restarts after a crash, by plugin id, since the host started (/metrics)
        self.restart_counts: dict[str, int] = {}
        #: installed and kept versions (set by the host when it has a state directory)
        self.store: PluginStore | None = None
        #: each plugin's Python environment (set by the host when it has a state directory)
        self.environments: EnvironmentStore | None = None
        #: the host is stopping: start no further plugin of a plan
        self.stop_requested = False
        #: the loop the host serves on, once started (``runtime.serving``)
        self.serving = self.events.serving = Serving()
        #: one swap (reload, upgrade, rollback) at a time per plugin
        self._swapping: dict[str, asyncio.Lock] = {}
        #: raises to refuse a swap of a plugin under trial (set by ``runtime.trials``)
        self.swap_guard: Callable[[str], None] | None = None
        self._swapper = Swapper(self)
        #: plugin events ([events] in manifests) and lazy activation
        self.plugin_events = PluginEvents(self)
        self.activation = Activation(self)
        #: the recorder, canary and shadow listening to a plugin's calls (``runtime.tap``)
        self.taps = Taps(self._routes)

    # ------------------------------------------------------------------ the spec's members

    @property
    def sandbox(self) -> Mapping[str, Backend]:
        """The isolation backends by name (the spec's ``sandbox``)."""
        return self.backends

    @property
    def monitor(self) -> dict[str, PluginMetrics]:
        """Each plugin's metrics (the spec's ``monitor``; the monitoring issue extends it)."""
        return {r.id: r.metrics for r in self._records.values() if r.metrics is not None}

    @property
    def loader(self) -> types.SimpleNamespace:
        """The loader (static discovery, and imports per version), the spec's ``loader``."""
        from plugbay.isolation import loading
        from plugbay.model import discover

        return types.SimpleNamespace(
            discover=discover.discover,
            discover_directory=discover.discover_directory,
            import_plugin=loading.import_plugin,
            unload_code=loading.unload_code,
        )

    # ------------------------------------------------------------------ queries

    def list_plugins(self) -> list[PluginRecord]:
        return sorted(self._records.values(), key=lambda r: r.id)

    def record(self, plugin_id: str) -> PluginRecord:
        rec = self._records.get(plugin_id)
        if rec is None:
            raise self._not_found(plugin_id)
        return rec

    def get_plugin(self, plugin_id: str) -> Plugin:
        """The active plugin object (inline plugins only: others live in a worker)."""
        rec = self.record(plugin_id)
        if rec.state is not PluginState.ACTIVE or rec.handle is None:
            raise self._not_active(rec)
        if rec.handle.instance is None:
            raise PluginStateError(
                f"runs isolated ({rec.isolation}); there is no object in this process",
                plugin=plugin_id,
                hint="call it through host.call() or host.get(PluginClass)",
            )
        return rec.handle.instance

    def monitor_usage(self, plugin_id: str) -> dict[str, Any]:
        """The spec's ``PluginSandbox.monitorUsage``: what one plugin uses now.

        A plugin in a worker is measured alone; an inline plugin shares the host's
        process, whose figures are given with ``shared: True``.
        """
        rec = self.record(plugin_id)
        if rec.handle is None:
            return {"isolation": rec.isolation, "error": f"not running ({rec.state})"}
        usage = rec.handle.usage()
        if usage is not None:
            return {"isolation": rec.isolation, "shared": False, **usage}
        import psutil

        proc = psutil.Process()
        with proc.oneshot():
            memory, cpu = proc.memory_info(), proc.cpu_times()
            return {
                "isolation": rec.isolation,
                "shared": True,
                "pid": proc.pid,
                "rss_bytes": memory.rss,
                "cpu_seconds": cpu.user + cpu.system,
                "open_files": proc.num_fds(),
                "threads": proc.num_threads(),
            }

    def forget(self, plugin_id: str) -> None:
        """Drop the record of a plugin that is stopped and no longer there (uninstalled)."""
        rec = self._records.get(plugin_id)
        if rec is not None and rec.state is not PluginState.ACTIVE:
            del self._records[plugin_id]

    @property
    def records_by_id(self) -> Mapping[str, PluginRecord]:
        """Every record by id (read-only view for the monitor)."""
        return self._records

    @property
    def roster_epoch(self) -> int:
        """Moves whenever a record is set or removed, or its state or manifest changes."""
        return self._records.epoch

    def record_changed(self, plugin_id: str) -> None:
        """A record's manifest was replaced in place (a swap): :attr:`roster_epoch` moves,
        and a listener its new version does not have leaves (``plugin_events``)."""
        self._records.changed()
        self.plugin_events.roster_changed(plugin_id)

    @property
    def roster_changes(self) -> int:
        """How many times a plugin id came or went (``Roster``)."""
        return self._records.changes

    def inflight(self, plugin_id: str) -> int:
        """Calls to a plugin running or waiting now (its queue length)."""
        route = self._routes.get(plugin_id)
        return route.inflight[0] if route is not None else 0

    def calls_in_flight(self) -> int:
        """Calls running or waiting now, on every plugin (held ones not counted)."""
        return sum(route.inflight[0] for route in self._routes.values())

    def timeout_of(self, plugin_id: str) -> float:
        """The per-call timeout a plugin's calls get (a command may ask for less)."""
        route = self._routes.get(plugin_id)
        return route.timeout if route is not None else self.settings.call_timeout

    def dependents(
        self, plugin_id: str, *, active_only: bool = True, required_only: bool = False
    ) -> list[str]:
        """Ids that need ``plugin_id``, transitively, nearest first. With ``required_only``,
        only those that cannot run without it: not a plugin that lists it only under
        ``[optional-dependencies]`` (it keeps running when ``plugin_id`` stops)."""
        out: list[str] = []
        frontier = [plugin_id]
        while frontier:
            current = frontier.pop(0)
            for rec in self.list_plugins():
                wanted = not active_only or rec.state is PluginState.ACTIVE
                if current not in rec.needs or rec.id in out or rec.id == plugin_id or not wanted:
                    continue
                dep = self._records.get(current)
                if required_only and optional_only(
                    rec.manifest, current, dep.manifest if dep else None
                ):
                    continue
                out.append(rec.id)
                frontier.append(rec.id)
        return out

    # ------------------------------------------------------------------ loading

    def note_problem(
        self, plugin_id: str, error: PlugbayError, manifest: PluginManifest | None
    ) -> None:
        """Record a plugin that cannot even be resolved (bad manifest, conflict, cycle)."""
        rec = self._records.get(plugin_id) or PluginRecord(plugin_id, manifest)
        if manifest is not None:
            rec.manifest = manifest
        self._records[plugin_id] = rec
        self._fail(rec, error, action="resolve")

    def note_disabled(self, manifest: PluginManifest, reason: str | None) -> None:
        rec = self._records.get(manifest.id) or PluginRecord(manifest.id, manifest)
        rec.manifest = manifest
        with contextlib.suppress(PlugbayError):  # where it would run, not the record's default
            rec.isolation = self.place(manifest).isolation
        rec.reason = reason or "disabled by the operator"
        self._records[manifest.id] = rec
        self._set_state(rec, PluginState.DISABLED)

    async def load_plan(self, plan: ResolutionPlan) -> None:
        """Start every plugin of a resolution plan, each once what it needs has started
        (``runtime.startup``: independent ones side by side); failures stay local."""
        for plugin_id, error in plan.failures.items():
            manifest = next(iter(self._versions_of(plugin_id)), None)
            self.note_problem(plugin_id, error, manifest)
        eager = self.activation.eager_needs(plan)

        async def start(plugin_id: str) -> None:
            rec = self._records.get(plugin_id)
            if rec is None or rec.state is not PluginState.ACTIVE:
                manifest = plan.selected[plugin_id]
                edges, notes = plan.edges.get(plugin_id, frozenset()), plan.notes.get(plugin_id, [])
                if not self.activation.defer(manifest, edges, notes, eager):  # starts on demand
                    await self._start(manifest, edges, notes)

        # images and workers of process plugins that wait for others are readied meanwhile
        data_root = self.settings.data_root
        preparing = self._ahead = prepare_storage(plan, self.backends, self.place, data_root)
        try:  # SIGTERM during startup: the rest never start
            await start_plan(plan, start, lambda: self.stop_requested)
        finally:  # cut short too: what was readied ahead is let go before the backends close
            self._ahead = None
            if preparing is not None:
                await preparing

    async def load_plugin(self, target: str | PluginManifest) -> PluginRecord:
        """Load one plugin (the newest version the registry resolves) whose dependencies are active."""
        async with self._lock:
            manifest = target if isinstance(target, PluginManifest) else self.registry.get(target)
            rec = self._records.get(manifest.id)
            if rec is not None and rec.state in (PluginState.ACTIVE, PluginState.INITIALIZING):
                raise PluginStateError(
                    f"is already {rec.state} at version {rec.version}",
                    plugin=manifest.id,
                    hint="unload it first, or reload it",
                )
            needs, notes = self._needs_of(manifest)
            return await self._start(manifest, needs, notes)

    # ------------------------------------------------------------------ what the swapper uses
    # (the documented interface of :class:`plugbay.runtime.swap.SwapHost`; the swapper
    # touches nothing else of the manager)

    @property
    def lifecycle_lock(self) -> asyncio.Lock:
        """Held while the set of running plugins changes (load, unload, restart, a switch)."""
        return self._lock

    def swap_lock(self, plugin_id: str) -> asyncio.Lock:
        """One swap (reload, upgrade, rollback) at a time per plugin."""
        return self._swapping.setdefault(plugin_id, asyncio.Lock())

    def route_of(self, plugin_id: str) -> Route | None:
        """Where the plugin's calls go now (None: not active)."""
        return self._routes.get(plugin_id)

    def set_route(self, plugin_id: str, route: Route) -> None:
        """Send the plugin's calls to ``route`` from the next call on (one assignment);
        with the plugin's taps around it, if it has any (``runtime.tap``)."""
        self._routes[plugin_id] = self.taps.wrap(plugin_id, route)

    def hold_calls(self, plugin_id: str, until: asyncio.Future[None]) -> None:
        """New calls to the plugin wait at the router until ``until`` is done (its route
        is taken away meanwhile; :meth:`end_hold` or :meth:`set_route` gives one back)."""
        self._holds[plugin_id] = until
        self._routes.pop(plugin_id, None)

    def end_hold(self, plugin_id: str, until: asyncio.Future[None]) -> None:
        """Let the calls held by ``until`` through (to whatever route is set by then)."""
        if self._holds.get(plugin_id) is until:
            del self._holds[plugin_id]
        if not until.done():
            until.set_result(None)

    def start_order(self) -> list[str]:
        """Active plugin ids, each after everything it needs."""
        return self._start_order()

    def needs_of(self, manifest: PluginManifest) -> tuple[frozenset[str], list[str]]:
        """The ids a manifest needs running (raises when a loaded one is out of range)."""
        return self._needs_of(manifest)

    def validated_config(self, manifest: PluginManifest) -> dict[str, Any]:
        """The host's config for the plugin, checked against the manifest's schema."""
        return self._validated_config(manifest)

    async def launch(
        self,
        rec: PluginRecord,
        manifest: PluginManifest,
        config: dict[str, Any],
        metrics: PluginMetrics,
    ) -> tuple[PluginHandle, PluginContext]:
        """Start ``manifest``'s code where the policy places it; security events are the
        plugin's from the start, crashes only once :meth:`supervise` says so."""
        return await self._launch(rec, manifest, config, metrics)

    async def initialize_handle(
        self, handle: PluginHandle, manifest: PluginManifest, context: PluginContext
    ) -> None:
        """Run ``initialize`` with its timeout; every failure becomes a PlugbayError."""
        await self._initialize(handle, manifest, context)

    def supervise(self, rec: PluginRecord, handle: PluginHandle) -> None:
        """Make ``handle``'s crashes and security events the plugin's (a swap hands the
        listeners to the version that serves)."""
        handle.attach(functools.partial(self._crashed, rec), functools.partial(self._security, rec))

    def record_history(
        self,
        rec: PluginRecord,
        action: str,
        result: str,
        reason: str | None,
        details: dict[str, Any] | None,
    ) -> None:
        """Write one entry of the plugin's history (never raises)."""
        self._history(rec, action, result, reason, details)

    def not_active(self, rec: PluginRecord) -> PluginStateError:
        """The error for a plugin that is not active, saying why and what to do."""
        return self._not_active(rec)

    # ------------------------------------------------------------------ swapping (plugbay.swap)

    async def reload_plugin(
        self,
        plugin_id: str,
        *,
        drain_timeout: float = 5.0,
        source: Path | None = None,
        dependents: bool = True,
    ) -> PluginRecord:
        """Swap an active plugin for what its files say now (``source``: another directory,
        e.g. after a rename), while callers keep working; then reload its dependents when
        its version or a provided service changed. The old version keeps serving if the
        new one fails to load, initialize, take the state or pass its probation
        (:class:`PluginReloadError` says why)."""
        return await self._swapper.reload_plugin(
            plugin_id, drain_timeout=drain_timeout, source=source, dependents=dependents
        )

    async def reload_dependents(
        self, changed: Collection[str], why: str, *, skip: Collection[str] = ()
    ) -> dict[str, str | None]:
        """Reload the active dependents of ``changed`` in dependency order (not ``skip``):
        each id with ``None``, or the reason it failed (it keeps its old version)."""
        return await self._swapper.reload_dependents(changed, why, skip=skip)

    def previous_version(self, plugin_id: str) -> str:
        """The version a rollback with no version given returns to (raises when none)."""
        return self._swapper.previous_version(plugin_id)

    async def rollback_plugin(
        self,
        plugin_id: str,
        version: str | None = None,
        *,
        with_dependents: bool = False,
        action: str = "rollback",
    ) -> PluginRecord:
        """Return to the previous version in the history (or ``version``), with its state;
        ``with_dependents``: the dependents that would not accept it go back too."""
        return await self._swapper.rollback_plugin(
            plugin_id, version, with_dependents=with_dependents, action=action
        )

    def upgrade_plan(
        self, plugin_id: str, version: str | None = None, *, with_dependents: bool = False
    ) -> UpgradePlan:
        """The versions an upgrade would move (raises naming the dependents it would break)."""
        return self._swapper.upgrade_plan(plugin_id, version, with_dependents=with_dependents)

    async def upgrade_plugin(
        self, plugin_id: str, version: str | None = None, *, with_dependents: bool = False
    ) -> UpgradePlan:
        """Move to a newer installed version (with ``with_dependents``, its dependents too)."""
        return await self._swapper.upgrade_plugin(
            plugin_id, version, with_dependents=with_dependents
        )

    # ------------------------------------------------------------------ unloading

    async def unload_plugin(self, plugin_id: str, *, cascade: bool = False) -> list[str]:
        """Stop a plugin. Refused while active plugins depend on it, unless ``cascade``,
        which stops those dependents first (farthest first). Returns the ids stopped."""
        async with self._lock:
            rec = self.record(plugin_id)
            dependents = self._dependents_allowed(plugin_id, cascade)
            stopped: list[str] = []
            for dep in reversed(dependents):
                await self._stop(self._records[dep], action="unload")
                stopped.append(dep)
            if rec.state is PluginState.ACTIVE:
                await self._stop(rec, action="unload")
                stopped.append(plugin_id)
            elif rec.state is PluginState.RESTARTING:
                self._call_off_restart(rec, "unload")
                stopped.append(plugin_id)
            return stopped

    def _dependents_allowed(self, plugin_id: str, cascade: bool, verb: str = "unload") -> list[str]:
        """The active plugins that cannot run without ``plugin_id``; refused unless
        ``cascade`` (the error says what was asked: ``verb``). Those that only optionally
        depend on it keep running: their calls to it fail, as to any plugin that is not
        active, until it is back."""
        dependents = self.dependents(plugin_id, required_only=True)
        if dependents and not cascade:
            raise DependentsError.refusing(plugin_id, verb, dependents)
        return dependents

    async def shutdown(self) -> None:
        """Clean up every active plugin, dependents before their dependencies."""
        restarts = list(self._restarts.values())
        for task in restarts:
            task.cancel()
        await asyncio.gather(*restarts, return_exceptions=True)
        async with self._lock:
            order = self._start_order()
            for plugin_id in reversed(order):
                rec = self._records[plugin_id]
                if rec.state is PluginState.ACTIVE:
                    await self._stop(rec, action="shutdown")

    async def close(self, steps: StopSteps | None = None) -> None:
        """Stop every plugin, then the backends' own processes (the zygote), each step
        whatever an earlier one raised (``runtime.stop_steps``): each failure is logged and
        the first raised at the end, or, given the host's ``steps``, kept there for it."""
        own = StopSteps() if steps is None else steps
        await own.run(
            "stopping the plugins (their cleanup)",
            "a plugin not cleaned up lost what its cleanup() would have saved; its worker "
            "ends with its backend",
            self.shutdown,
        )
        await own.run(
            "closing the plugins' event listeners",
            "events still queued for plugins were not delivered",
            self.plugin_events.close,
        )
        for name, backend in self.backends.items():
            await own.run(
                f"closing the {name!r} isolation backend",
                "its worker processes or zygote may still run ('ps -ef | grep plugbay' shows "
                "them): they end with this process, or end them by pid",
                backend.close,
            )
        if steps is None:
            own.raise_first()

    async def _host_call(
        self, consumer: str, target: str, command: str, params: dict[str, Any]
    ) -> Any:
        """A worker's call out, checked by the broker (``runtime.broker``)."""
        return await self.broker.host_call(consumer, target, command, params)

    def _start_order(self) -> list[str]:
        """Active plugin ids, each after everything it needs."""
        active = {r.id: r for r in self._records.values() if r.state is PluginState.ACTIVE}
        done: list[str] = []
        seen: set[str] = set()

        def visit(pid: str) -> None:
            if pid in seen or pid not in active:
                return
            seen.add(pid)
            for need in sorted(active[pid].needs):
                visit(need)
            done.append(pid)

        for pid in sorted(active, key=lambda p: active[p].started_at or 0):
            visit(pid)
        return done

    async def _stop(self, rec: PluginRecord, *, action: str) -> None:
        route = self._routes.pop(rec.id, None)
        self.events.unsubscribe(rec.id)
        self.services.withdraw(rec.id)
        self._set_state(rec, PluginState.STOPPING)
        handle, rec.handle = rec.handle, None
        result, reason = "ok", None
        if handle is not None:
            if route is not None:  # what it acknowledged is in the state it exports
                await self._swapper.drain(route.inflight, self.settings.cleanup_timeout)
            reason = await self._swapper.keep_at_stop(rec.id, handle)
            try:
                await handle.cleanup(self.settings.cleanup_timeout)
            except CallTimeout:
                result = "failed"
                reason = (
                    f"cleanup did not finish within {self.settings.cleanup_timeout:g} s; abandoned"
                )
                log.warning("plugin '%s': %s", rec.id, reason)
            except Exception as exc:
                result = "failed"
                reason = f"cleanup raised {type(exc).__name__}: {exc}"
                log.warning("plugin '%s': %s", rec.id, reason)
            handle.release()
        rec.started_at = None
        self._set_state(rec, PluginState.STOPPED)
        self.plugin_events.roster_changed(rec.id)  # its listeners' queues leave once passed on
        self._history(rec, action, result, reason, None)
        self.events.emit("plugin.unloaded", plugin=rec.id, version=rec.version, result=result)

    # ------------------------------------------------------------------ enable / disable

    async def disable(
        self,
        plugin_id: str,
        reason: str | None = None,
        *,
        cascade: bool = False,
        by: str | None = None,
    ) -> list[str]:
        """Stop the plugin and keep it off; ``by``: who disables it (the API and its token,
        the monitor), kept in the history and sent with ``plugin.disabled``."""
        rec = self.record(plugin_id)
        if not reason and rec.state is PluginState.DISABLED:
            reason = rec.reason  # disabled again with no reason: the kept one stays
        reason = reason or "disabled by the operator"
        self._dependents_allowed(plugin_id, cascade, "disable")  # refused before anything is kept
        # Durable first, with its history entry: a disable the state cannot keep (a full
        # disk) is refused here and changes nothing, rather than undone by a restart.
        if self.state is not None:
            self.state.set_enabled(
                plugin_id, False, reason, event=("disable", rec.version),
                details={"by": by} if by else None,
            )  # fmt: skip
        stopped = await self.unload_plugin(plugin_id, cascade=cascade)
        rec.reason = reason
        self._set_state(rec, PluginState.DISABLED)
        # after its plugin.unloaded (if it ran): why it is off, and who said so
        self.events.emit(
            "plugin.disabled", plugin=plugin_id, version=rec.version, reason=reason, by=by
        )
        return stopped

    async def enable(self, plugin_id: str) -> PluginRecord:
        rec = self.record(plugin_id)
        if self.state is not None:  # durable first, as disable
            self.state.set_enabled(plugin_id, True, event=("enable", rec.version))
        if rec.state is PluginState.ACTIVE:
            return rec
        return await self.load_plugin(plugin_id)

    # ------------------------------------------------------------------ commands

    def command_spec(self, plugin_id: str, command: str) -> CommandSpec:
        rec = self.record(plugin_id)
        if rec.handle is None:
            raise self._not_active(rec)
        spec = rec.handle.commands.get(command)
        if spec is None:
            raise self._no_command(plugin_id, command, rec.handle)
        return spec

    # ------------------------------------------------------------------ helpers

    def _versions_of(self, plugin_id: str) -> list[PluginManifest]:
        try:
            return [self.registry.get(plugin_id, v) for v in self.registry.versions(plugin_id)]
        except PlugbayError:
            return []

    def _state_of(self, plugin_id: str) -> PluginState | None:
        rec = self._records.get(plugin_id)
        return rec.state if rec else None

    def _describe(self, plugin_id: str) -> str:
        rec = self._records.get(plugin_id)
        if rec is None:
            return "not loaded"
        return f"{rec.state} ({rec.reason})" if rec.reason else str(rec.state)

    def _set_state(self, rec: PluginRecord, state: PluginState) -> None:
        rec.state = state
        self._records.changed()
        rec.transitions.append((time.time(), str(state)))
        if self.settings.monitoring:
            self.touch(rec.id)
        if state in (PluginState.ACTIVE, PluginState.RESOLVED, PluginState.INITIALIZING):
            rec.reason = None
            rec.error = None
            rec.traceback = None

    def _fail(self, rec: PluginRecord, error: PlugbayError, *, action: str) -> None:
        self._routes.pop(rec.id, None)
        rec.error = error
        rec.reason = str(error)
        rec.traceback = error.details.get("traceback") or (
            "".join(traceback.format_exception(error)) if error.__traceback__ else None
        )
        self._set_state(rec, PluginState.FAILED)
        self.plugin_events.roster_changed(rec.id)  # given up on: its queues leave once passed on
        rec.error = error
        rec.reason = str(error)
        log.error("%s", error)
        self._history(rec, action, "failed", str(error), {"code": error.code})
        self.events.emit(
            "plugin.failed", plugin=rec.id, version=rec.version, reason=str(error), code=error.code
        )

    def _history(
        self,
        rec: PluginRecord,
        action: str,
        result: str,
        reason: str | None,
        details: dict[str, Any] | None,
    ) -> None:
        if self.state is None:
            return
        try:
            self.state.add_event(
                rec.id, action, version=rec.version, result=result, reason=reason, details=details
            )
            if action == "load" and result == "ok":
                self._swapper.remember_active(rec)
        except PlugbayError as exc:  # losing history must not take a plugin down
            log.error("could not record %s of %s: %s", action, rec.id, exc)
