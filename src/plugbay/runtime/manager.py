"""The plugin manager: lifecycle, load order, and the one call path.

Each plugin has a :class:`PluginRecord` whose ``state`` moves through::

    discovered → resolved → initializing → active → stopping → stopped
                     ↘ failed (reason kept)        ↘ disabled (by the operator)

Plugins start in dependency order; a plugin whose dependency is not active is
not started, and says which one. A failure is recorded with its reason and
traceback and emitted as an event; it never stops the other plugins.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import time
import traceback
import types
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from plugbay.api import (
    CommandSpec,
    Environment,
    Events,
    Plugin,
    PluginConfig,
    PluginContext,
    Secrets,
    SystemPlugin,
)
from plugbay.api.errors import (
    CommandNotFound,
    ConfigError,
    DependentsError,
    ParameterError,
    PlugbayError,
    PluginCallError,
    PluginInitError,
    PluginNotFound,
    PluginStateError,
    PluginTimeout,
    did_you_mean,
)
from plugbay.isolation import Backend, CallTimeout, InlineBackend, PluginHandle
from plugbay.isolation.base import EnvironmentPaths
from plugbay.isolation.loading import plugin_frame
from plugbay.isolation.policy import IsolationPolicy, Placement
from plugbay.isolation.process import ProcessBackend
from plugbay.model.manifest import PluginManifest
from plugbay.model.registry import PluginRegistry
from plugbay.model.resolve import ResolutionPlan
from plugbay.monitor import CommandStats, PluginMetrics
from plugbay.monitor.bounds import Budget
from plugbay.runtime.activation import Activation
from plugbay.runtime.broker import Broker
from plugbay.runtime.environments import (
    EnvironmentBuildError,
    EnvironmentStore,
    check_fits_host,
)
from plugbay.runtime.events import EventBus, Subscriber
from plugbay.runtime.lifecycle import check_descriptors
from plugbay.runtime.plugin_events import PluginEvents
from plugbay.runtime.routing import Route, command_table
from plugbay.runtime.services import ServiceHub, ServiceView
from plugbay.runtime.store import PluginStore
from plugbay.runtime.swap import Swapper, UpgradePlan
from plugbay.state import StateStore

__all__ = ["ManagerSettings", "PluginManager", "PluginRecord", "PluginState"]

log = logging.getLogger("plugbay.manager")
#: denials and limit hits in sandboxed workers
security_log = logging.getLogger("plugbay.security")


class PluginState(enum.StrEnum):
    DISCOVERED = "discovered"
    RESOLVED = "resolved"
    INITIALIZING = "initializing"
    ACTIVE = "active"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    DISABLED = "disabled"
    #: resolved and validated, not started: its first call or event starts it
    ON_DEMAND = "on-demand"


@dataclass(slots=True)
class PluginRecord:
    """Everything the host knows about one plugin id right now."""

    id: str
    manifest: PluginManifest | None
    state: PluginState = PluginState.DISCOVERED
    reason: str | None = None
    error: PlugbayError | None = None
    traceback: str | None = None
    handle: PluginHandle | None = None
    metrics: PluginMetrics | None = None
    needs: frozenset[str] = frozenset()
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    isolation: str = "inline"
    #: where the host's policy put it, with its limits and effective permissions
    placement: Placement | None = None
    load_seconds: float | None = None
    started_at: float | None = None
    transitions: list[tuple[float, str]] = field(default_factory=list)
    #: monotonic times of recent crashes, for the restart policy
    crashes: list[float] = field(default_factory=list)

    @property
    def version(self) -> str | None:
        return str(self.manifest.version) if self.manifest else None

    @property
    def commands(self) -> Mapping[str, CommandSpec]:
        return self.handle.commands if self.handle is not None else {}

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "id": self.id,
            "version": self.version,
            "type": m.type if m else None,
            "state": str(self.state),
            "reason": self.reason,
            "error": self.error.to_dict() if self.error else None,
            "isolation": self.isolation,
            "load_seconds": self.load_seconds,
            "uptime_seconds": (time.time() - self.started_at)
            if self.started_at and self.state is PluginState.ACTIVE
            else None,
            "needs": sorted(self.needs),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class ManagerSettings:
    host_version: str
    data_root: Path
    mode: str = "production"
    #: default and maximum per-call timeout, seconds (a manifest may ask for less, or more up to max)
    call_timeout: float = 30.0
    max_call_timeout: float = 300.0
    init_timeout: float = 10.0
    cleanup_timeout: float = 5.0
    #: a crashed worker is restarted after backoff, doubling up to the maximum ...
    restart_backoff: float = 0.5
    restart_backoff_max: float = 30.0
    #: ... unless it crashed this many times within the window: then it is disabled
    max_crashes: int = 5
    crash_window: float = 60.0
    #: count every call (calls, errors by type, latency histogram); off only to measure its cost
    monitoring: bool = True
    #: the operator's isolation policy: who runs inline, limits, grants, secrets
    policy: IsolationPolicy = field(default_factory=IsolationPolicy)
    #: the host's plugin directories (a core/ folder directly inside one is trusted)
    plugin_dirs: tuple[Path, ...] = ()
    #: after a swap, seconds in which the new version must pass its health probe (0: none)
    probation: float = 0.5


_NO_CONFIG: Final[Mapping[str, Any]] = {}


_FOLD_AT: Final = CommandStats.FOLD_AT
_clock = time.perf_counter


class PluginManager:
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
        self.backends: dict[str, Backend] = {
            "inline": InlineBackend(),
            "process": ProcessBackend(self._host_call),
        }
        self.services = ServiceHub(proxy_for or (lambda plugin_id: None))
        #: checks every request a plugin makes of the host (``runtime.broker``)
        self.broker = Broker(self)
        #: what each plugin may make the host keep (``monitor.bounds``), by plugin id
        self.budgets: dict[str, Budget] = {}
        self._config_for = config_for or (lambda plugin_id: _NO_CONFIG)
        self._records: dict[str, PluginRecord] = {}
        # the hot path's routing table: active plugins only
        self._routes: dict[str, Route] = {}
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
        #: one swap (reload, upgrade, rollback) at a time per plugin
        self._swapping: dict[str, asyncio.Lock] = {}
        self._swapper = Swapper(self)
        #: plugin events ([events] in manifests) and lazy activation
        self.plugin_events = PluginEvents(self)
        self.activation = Activation(self)

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

    @property
    def records_by_id(self) -> Mapping[str, PluginRecord]:
        """Every record by id (read-only view for the monitor)."""
        return self._records

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

    def dependents(self, plugin_id: str, *, active_only: bool = True) -> list[str]:
        """Ids that need ``plugin_id``, transitively, nearest first."""
        out: list[str] = []
        frontier = [plugin_id]
        while frontier:
            current = frontier.pop(0)
            for rec in self.list_plugins():
                wanted = not active_only or rec.state is PluginState.ACTIVE
                if current in rec.needs and rec.id not in out and rec.id != plugin_id and wanted:
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
        rec.reason = reason or "disabled by the operator"
        self._records[manifest.id] = rec
        self._set_state(rec, PluginState.DISABLED)

    async def load_plan(self, plan: ResolutionPlan) -> None:
        """Start every plugin of a resolution plan in order; failures stay local."""
        for plugin_id, error in plan.failures.items():
            manifest = next(iter(self._versions_of(plugin_id)), None)
            self.note_problem(plugin_id, error, manifest)
        eager = self.activation.eager_needs(plan)
        for plugin_id in plan.order:
            if self.stop_requested:  # SIGTERM during startup: the rest never start
                break
            manifest = plan.selected[plugin_id]
            rec = self._records.get(plugin_id)
            if rec is not None and rec.state is PluginState.ACTIVE:
                continue
            edges, notes = plan.edges.get(plugin_id, frozenset()), plan.notes.get(plugin_id, [])
            if self.activation.defer(manifest, edges, notes, eager):
                continue
            await self._start(
                manifest, plan.edges.get(plugin_id, frozenset()), plan.notes.get(plugin_id, [])
            )

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

    def _needs_of(self, manifest: PluginManifest) -> tuple[frozenset[str], list[str]]:
        needs: set[str] = set()
        notes: list[str] = []
        for dep, rng in manifest.dependencies.items():
            needs.add(dep)
            rec = self._records.get(dep)
            if rec is not None and rec.manifest is not None and rec.manifest.version not in rng:
                raise PluginStateError(
                    f"requires '{dep}' {rng}, but '{dep}' {rec.version} is loaded",
                    plugin=manifest.id,
                    hint=f"load a version of '{dep}' that matches {rng}",
                )
        for dep in manifest.optional_dependencies:
            rec = self._records.get(dep)
            if rec is not None and rec.state is PluginState.ACTIVE:
                needs.add(dep)
            else:
                notes.append(f"optional dependency '{dep}' skipped: not active")
        for service in manifest.requires:
            provider = self.services.provider_of(service)
            if provider is not None:
                needs.add(provider)
        return frozenset(needs), notes

    async def _start(
        self, manifest: PluginManifest, needs: Iterable[str], notes: list[str]
    ) -> PluginRecord:
        rec = PluginRecord(manifest.id, manifest, needs=frozenset(needs), notes=list(notes))
        try:
            rec.placement = self.place(manifest)
            rec.isolation = rec.placement.isolation
        except PlugbayError as exc:
            self._records[manifest.id] = rec
            self._fail(rec, exc, action="load")
            return rec
        self._records[manifest.id] = rec
        self._set_state(rec, PluginState.RESOLVED)
        blocked = [d for d in sorted(rec.needs) if self._state_of(d) is not PluginState.ACTIVE]
        if blocked:
            reasons = "; ".join(f"'{d}' is {self._describe(d)}" for d in blocked)
            self._fail(
                rec,
                PluginStateError(
                    f"not started because a dependency is not active: {reasons}",
                    plugin=manifest.id,
                    hint=f"fix {', '.join(repr(d) for d in blocked)} first; 'plugbay info {blocked[0]}' says why",
                    details={"blocked_by": blocked},
                ),
                action="load",
            )
            return rec
        started = time.perf_counter()
        metrics = PluginMetrics(manifest.id)
        rec.metrics = metrics
        try:
            config = self._validated_config(manifest)
            rec.config = config
            self._set_state(rec, PluginState.INITIALIZING)
            handle, context = await self._launch(rec, manifest, config, metrics)
            rec.handle = handle
            handle.on_crash = functools.partial(self._crashed, rec)
            await self._initialize(handle, manifest, context)
            await self._swapper.restore_at_start(manifest.id, handle)  # kept at its last stop
            for name, version in manifest.provides.items():
                self.services.provide(manifest.id, name, version, None)
        except PlugbayError as exc:
            await self._abandon(rec)
            self._fail(rec, exc, action="load")
            return rec
        except (Exception, SystemExit) as exc:  # a plugin constructor raising, or sys.exit()
            await self._abandon(rec)
            self._fail(
                rec,
                PluginInitError(
                    f"could not be started: {type(exc).__name__}: {exc}",
                    plugin=manifest.id,
                    where=plugin_frame(exc, manifest) or manifest.location,
                    details={"traceback": "".join(traceback.format_exception(exc))},
                ),
                action="load",
            )
            return rec
        rec.load_seconds = time.perf_counter() - started
        metrics.init_seconds = rec.load_seconds
        rec.started_at = time.time()
        timeout = min(
            _positive(manifest.resources.timeout) or self.settings.call_timeout,
            self.settings.max_call_timeout,
        )
        self._routes[manifest.id] = Route(
            handle, metrics, timeout, [0], command_table(handle, metrics, self.settings.monitoring)
        )
        self._set_state(rec, PluginState.ACTIVE)
        instance = handle.instance
        if isinstance(instance, SystemPlugin):
            self.events.subscribe(
                Subscriber(
                    manifest.id,
                    manifest.priority if manifest.priority is not None else instance.priority,
                    tuple(instance.system_hooks),
                    instance.on_system_event,
                )
            )
        self._history(rec, "load", "ok", None, {"seconds": round(rec.load_seconds, 6)})
        self.events.emit("plugin.loaded", plugin=manifest.id, version=str(manifest.version))
        return rec

    def place(self, manifest: PluginManifest) -> Placement:
        """Where the host's policy runs this plugin, with its limits and permissions."""
        granted = self.state.grants(manifest.id) if self.state is not None else []
        if self.store is not None:  # a copy the host kept is judged where it came from
            manifest = self.store.as_kept_from(manifest)
        return self.settings.policy.place(manifest, self.settings.plugin_dirs, granted)

    async def _launch(
        self,
        rec: PluginRecord,
        manifest: PluginManifest,
        config: dict[str, Any],
        metrics: PluginMetrics,
    ) -> tuple[PluginHandle, PluginContext]:
        """Start the plugin's code where its placement says (``initialize`` is separate)."""
        placement = (
            rec.placement if rec.placement and manifest is rec.manifest else self.place(manifest)
        )
        context = self._context_for(manifest, config, metrics, placement.isolation, placement)
        environment = await self._python_environment(manifest, placement)
        backend = self.backends[placement.isolation]
        if placement.isolation != "inline":  # say "descriptors" before a socketpair fails
            check_descriptors(manifest.id)
        handle = await backend.start(manifest, placement, context.environment.data_dir, environment)
        handle.on_security = functools.partial(self._security, rec)
        handle.bind(self.budget_for(manifest.id), functools.partial(self.broker.issued, rec.id))
        return handle, context

    async def _python_environment(
        self, manifest: PluginManifest, placement: Placement
    ) -> EnvironmentPaths | None:
        if not manifest.python_dependencies:
            return None
        return await asyncio.to_thread(self.python_environment, manifest, placement)

    def python_environment(
        self, manifest: PluginManifest, placement: Placement | None = None
    ) -> EnvironmentPaths | None:
        """The plugin's own Python environment, built now if need be (before any of its code
        runs; blocking); an inline plugin's requirements must fit the host's instead."""
        if not manifest.python_dependencies:
            return None
        if (placement or self.place(manifest)).isolation == "inline":
            check_fits_host(manifest, self.settings.host_version)
            return None
        if self.environments is None:
            raise EnvironmentBuildError(
                "has Python requirements, and this host has no state directory to keep "
                "environments in",
                plugin=manifest.id,
                hint="start the host with a state directory (--state DIR)",
            )
        progress = logging.getLogger("plugbay.environments").info
        env = self.environments.ensure(manifest, progress)
        return None if env is None else self.environments.worker_paths(env)

    def budget_for(self, plugin_id: str) -> Budget | None:
        """The plugin's bounds as it runs (made on first use, from the policy)."""
        budget = self.budgets.get(plugin_id)
        if budget is None and plugin_id in self._records:
            budget = self.budgets[plugin_id] = Budget(
                plugin_id, self.settings.policy.bounds_for(plugin_id), _report_dropped
            )
        return budget

    def security_event(self, plugin_id: str, event: dict[str, Any]) -> None:
        """A security event the host made about a plugin (the broker's refusals)."""
        rec = self._records.get(plugin_id)
        if rec is not None:
            self._security(rec, event)

    def _security(self, rec: PluginRecord, event: dict[str, Any]) -> None:
        """A denial or a limit hit in a sandboxed worker: logged, recorded, sent to system plugins."""
        budget = self.budget_for(rec.id)
        if (
            event.get("source") == "host"
            and event.get("kind") in ("denied", "timeout")
            and budget is not None
            and not budget.security.allow()  # a flood of refusals: counted, not each kept
        ):
            budget.drop("security_rate")
            return
        kind = str(event.get("kind", "denied"))
        what = event.get("operation") or event.get("detail") or event.get("limit") or kind
        if kind == "limit":
            text = f"plugin '{rec.id}' hit its {event.get('limit')} limit: {event.get('detail')}"
        elif kind == "killed":
            text = f"plugin '{rec.id}': its worker was stopped by the {event.get('layer')} ({what})"
        elif kind == "timeout":
            text = f"plugin '{rec.id}': {event.get('operation')} ran past its time limit and was cancelled"
        else:
            text = f"plugin '{rec.id}': the sandbox denied {what}"
            if event.get("layer") == "broker":
                text = f"plugin '{rec.id}': the host's broker refused {what}"
            if event.get("permission"):
                text += f" (permission '{event['permission']}' not granted)"
            if event.get("source") == "worker":
                text += " [reported by its worker]"
        security_log.warning("%s", text)
        fields = {k: v for k, v in event.items() if k not in ("kind", "plugin")}
        self.events.emit(f"security.{kind}", plugin=rec.id, **fields)
        self._history(
            rec, f"security.{kind}", "denied" if kind == "denied" else "stopped", text, event
        )

    async def _initialize(
        self, handle: PluginHandle, manifest: PluginManifest, context: PluginContext
    ) -> None:
        """Run ``initialize`` with its timeout; every failure becomes a PlugbayError."""
        init_timeout = _positive(manifest.resources.init_timeout) or self.settings.init_timeout
        try:
            await handle.initialize(context, init_timeout)
        except CallTimeout:
            raise PluginTimeout(
                f"initialize did not finish within {init_timeout:g} s",
                plugin=manifest.id,
                where=manifest.location,
                hint="make initialize return promptly (start long work in a task), "
                "or raise resources.init-timeout in the manifest",
            ) from None
        except PlugbayError:
            raise
        except (Exception, SystemExit) as exc:  # sys.exit() in a plugin is its own failure
            raise PluginInitError(
                f"initialize raised {type(exc).__name__}: {exc}",
                plugin=manifest.id,
                where=plugin_frame(exc, manifest) or manifest.location,
                hint=f"see the traceback with 'plugbay info {manifest.id} --traceback'",
                details={"traceback": "".join(traceback.format_exception(exc))},
            ) from exc

    def _validated_config(self, manifest: PluginManifest) -> dict[str, Any]:
        raw = self._config_for(manifest.id)
        if manifest.config is None:
            if raw:
                raise ConfigError(
                    f"config was given ({', '.join(sorted(raw))}) but the plugin declares none",
                    plugin=manifest.id,
                    where=manifest.location,
                    hint="remove it from the host config, or add a [config] schema to the manifest",
                )
            return {}
        return manifest.config.validate(raw, source="host config")

    def _context_for(
        self,
        manifest: PluginManifest,
        config: dict[str, Any],
        metrics: PluginMetrics,
        isolation: str,
        placement: Placement | None = None,
    ) -> PluginContext:
        data_dir = self.settings.data_root / manifest.id
        data_dir.mkdir(parents=True, exist_ok=True)
        return PluginContext(
            environment=Environment(
                host_version=self.settings.host_version,
                plugin_id=manifest.id,
                plugin_version=str(manifest.version),
                data_dir=data_dir,
                mode=self.settings.mode,  # type: ignore[arg-type]
                isolation=isolation,
            ),
            services=ServiceView(self.services, manifest.id, self.broker.check_service),
            config=PluginConfig(config),
            logger=logging.getLogger(f"plugbay.plugin.{manifest.id}"),
            metrics=metrics,
            secrets=Secrets(placement.secrets if placement else {}, plugin=manifest.id),
            events=Events(self.plugin_events.sink_for(manifest.id), plugin=manifest.id),
        )

    async def _abandon(self, rec: PluginRecord) -> None:
        """Undo a start that failed half way: bounded cleanup, forget the code."""
        handle, rec.handle = rec.handle, None
        self.services.withdraw(rec.id)
        if handle is None:
            return
        try:
            await handle.cleanup(self.settings.cleanup_timeout)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.debug("cleanup after failed start of %s raised %r", rec.id, exc)
        handle.release()

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
        """Send the plugin's calls to ``route`` from the next call on (one assignment)."""
        self._routes[plugin_id] = route

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

    async def rollback_plugin(self, plugin_id: str, version: str | None = None) -> PluginRecord:
        """Return to the previous version in the history (or ``version``), with its state."""
        return await self._swapper.rollback_plugin(plugin_id, version)

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
            return stopped

    def _dependents_allowed(self, plugin_id: str, cascade: bool) -> list[str]:
        """The active plugins depending on ``plugin_id``; refused unless ``cascade``."""
        dependents = self.dependents(plugin_id)
        if dependents and not cascade:
            raise DependentsError(
                f"cannot be unloaded: {', '.join(dependents)} depend on it",
                plugin=plugin_id,
                hint="unload those first, or ask for a cascade (--cascade / cascade=True)",
                details={"dependents": dependents},
            )
        return dependents

    async def shutdown(self) -> None:
        """Clean up every active plugin, dependents before their dependencies."""
        for task in list(self._restarts.values()):
            task.cancel()
        async with self._lock:
            order = self._start_order()
            for plugin_id in reversed(order):
                rec = self._records[plugin_id]
                if rec.state is PluginState.ACTIVE:
                    await self._stop(rec, action="shutdown")

    async def close(self) -> None:
        """Stop every plugin, then the backends' own processes (the zygote)."""
        await self.shutdown()
        await self.plugin_events.close()
        for backend in self.backends.values():
            await backend.close()

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
        self._history(rec, action, result, reason, None)
        self.events.emit("plugin.unloaded", plugin=rec.id, version=rec.version, result=result)

    # ------------------------------------------------------------------ enable / disable

    async def disable(
        self, plugin_id: str, reason: str | None = None, *, cascade: bool = False
    ) -> list[str]:
        rec = self.record(plugin_id)
        reason = reason or "disabled by the operator"
        self._dependents_allowed(plugin_id, cascade)  # refused before anything is kept
        # Durable first, with its history entry: a disable the state cannot keep (a full
        # disk) is refused here and changes nothing, rather than undone by a restart.
        if self.state is not None:
            self.state.set_enabled(plugin_id, False, reason, event=("disable", rec.version))
        stopped = await self.unload_plugin(plugin_id, cascade=cascade)
        rec.reason = reason
        self._set_state(rec, PluginState.DISABLED)
        return stopped

    async def enable(self, plugin_id: str) -> PluginRecord:
        rec = self.record(plugin_id)
        if self.state is not None:  # durable first, as disable
            self.state.set_enabled(plugin_id, True, event=("enable", rec.version))
        if rec.state is PluginState.ACTIVE:
            return rec
        return await self.load_plugin(plugin_id)

    # ------------------------------------------------------------------ the call path

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
        route = self._routes.get(plugin_id)
        if route is None:
            route = await self._held(plugin_id)
        handle = route.handle
        entry = route.table.get(command)
        if entry is None:
            raise self._no_command(plugin_id, command, handle)
        spec, stats = entry
        if not counted:
            stats = CommandStats()
        # Counted exactly, timed by sampling (see CommandStats): `started` is 0.0 when
        # this call is not timed.
        started = 0.0
        if self.settings.monitoring:
            left = stats.left - 1
            stats.left = left
            if not left:
                started = _clock()
        timeout = route.timeout
        if spec.timeout is not None and spec.timeout < timeout:
            timeout = spec.timeout
        inflight = route.inflight
        inflight[0] += 1  # what a reload drains before it retires this version
        try:
            kwargs = spec.validate_params(params, plugin=plugin_id, strict=strict)
            result = await handle.call(spec, kwargs, timeout)
            result = spec.validate_result(result, plugin=plugin_id)
        except PlugbayError as exc:
            if not isinstance(exc, ParameterError):  # the caller's mistake, not the plugin's
                stats.error(_clock() - started if started else None, type(exc).__name__)
            if started:
                stats.next_period()
            raise
        except CallTimeout:
            stats.error(_clock() - started if started else None, "PluginTimeout")
            if started:
                stats.next_period()
            raise PluginTimeout(
                f"command '{command}' did not finish within {timeout:g} s",
                plugin=plugin_id,
                hint="the call was cancelled; raise resources.timeout in the manifest "
                "if this command needs longer",
            ) from None
        except (Exception, SystemExit) as exc:  # sys.exit() in a plugin is its own failure
            stats.error(_clock() - started if started else None, type(exc).__name__)
            if started:
                stats.next_period()
            raise PluginCallError(
                f"command '{command}' raised {type(exc).__name__}: {exc}",
                plugin=plugin_id,
                where=plugin_frame(exc, handle.manifest),
                hint="this is the plugin's own error; the host and other plugins are unaffected",
                details={
                    "exception": type(exc).__name__,
                    "traceback": "".join(traceback.format_exception(exc)),
                },
            ) from exc
        finally:
            inflight[0] -= 1
        if started:  # a timed call, inlined: one append (see CommandStats)
            stats.pending.append(_clock() - started)
            stats.next_period()
            if len(stats.pending) >= _FOLD_AT:
                stats.fold()
        return result

    async def _held(self, plugin_id: str) -> Route:
        """The route of a plugin whose calls are held by a swap, once it lets them through
        (or of a plugin that starts on demand, once this first call started it)."""
        if self.activation.is_deferred(plugin_id):
            return await self.activation.start(plugin_id)
        while (hold := self._holds.get(plugin_id)) is not None:
            await asyncio.shield(hold)
            route = self._routes.get(plugin_id)
            if route is not None:
                return route
        raise self._not_callable(plugin_id)

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
        rec.transitions.append((time.time(), str(state)))
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

    def _not_found(self, plugin_id: str) -> PluginNotFound:
        return PluginNotFound(
            f"no plugin '{plugin_id}' is known to this host",
            plugin=plugin_id,
            hint=did_you_mean(plugin_id, self._records)
            or "'plugbay list' shows the plugins this host knows",
        )

    def _not_active(self, rec: PluginRecord) -> PluginStateError:
        return PluginStateError(
            f"is {rec.state}, not active" + (f": {rec.reason}" if rec.reason else ""),
            plugin=rec.id,
            hint=f"'plugbay info {rec.id}' shows why; 'plugbay enable {rec.id}' if it was disabled",
        )

    def _not_callable(self, plugin_id: str) -> PlugbayError:
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


def _report_dropped(plugin_id: str, lost: dict[str, int]) -> None:
    """Once per window: what a plugin lost to its bounds, in its own log (never whole)."""
    what = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(lost.items()))
    logging.getLogger(f"plugbay.plugin.{plugin_id}").warning(
        "over its bounds: %s (see plugbay_plugin_dropped_total)",
        what,
        extra={"fields": {"dropped": lost, "source": "host"}, "plugbay_owner": plugin_id},
    )


def _positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None
