"""``Host``: the one object an application uses.

    async with Host("plugins") as host:
        await host.call("extension.processor", "respond", text="I am sad")
        doctor = host.get(DoctorPlugin)          # typed: mypy checks the call below
        reply = await doctor.respond(text="I am sad")

Starting discovers plugins (directories and the ``plugbay.plugins`` entry
points), registers every version, resolves one per plugin, and starts them in
dependency order. Whatever cannot load is recorded with its reason; the rest
serve. Leaving the ``async with`` cleans up in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.metadata
import logging
import os
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from plugbay.api import Plugin
from plugbay.api.errors import ConfigError, PlugbayError, PluginNotFound, PluginStateError
from plugbay.isolation.policy import IsolationPolicy
from plugbay.model.bundled import bundled_needed
from plugbay.model.discover import Discovery, discover
from plugbay.model.manifest import PluginManifest
from plugbay.model.manifest_cache import CACHE_FILE, ManifestCache
from plugbay.model.registry import PluginRegistry
from plugbay.model.versions import Version
from plugbay.monitor.config import MonitorSettings
from plugbay.monitor.monitor import PluginMonitor
from plugbay.runtime.config_aside import checked_config, versions_of
from plugbay.runtime.config_source import grant_tables, plugin_tables
from plugbay.runtime.environments import EnvironmentStore, IndexSettings
from plugbay.runtime.events import EventBus
from plugbay.runtime.host_args import (
    check_plugin_dirs,
    crash_count,
    missing_dirs,
    plugin_ids,
    seconds,
)
from plugbay.runtime.host_file import read_host_file
from plugbay.runtime.host_loop import on_host_loop
from plugbay.runtime.kept_grants import warn_of_unhonourable_grants
from plugbay.runtime.lifecycle import (
    HostLock,
    HostLockedError,
    Swept,
    descriptor_budget,
    raise_descriptor_limit,
    sweep,
    undo_fully,
)
from plugbay.runtime.live_config import apply_config, audit_config
from plugbay.runtime.loop_closed import stop_off_loop
from plugbay.runtime.manager import ManagerSettings, PluginManager, PluginRecord, PluginState
from plugbay.runtime.permissions import change_grant
from plugbay.runtime.plugin_info import plugin_info
from plugbay.runtime.proxy import PluginProxy
from plugbay.runtime.serving import AsyncOnly
from plugbay.runtime.startup import strangers
from plugbay.runtime.stop_steps import close_host
from plugbay.runtime.store import PluginStore
from plugbay.runtime.swap import UpgradePlan
from plugbay.runtime.trials import UpgradeTrials
from plugbay.state import HistoryEvent, StateStore

if TYPE_CHECKING:
    from plugbay.isolation.sampling import Samples
    from plugbay.runtime.watch import WatchResult

__all__ = ["HOST_VERSION", "Host", "HostInfo", "HostLockedError", "PluginProxy"]

P = TypeVar("P", bound=Plugin)

HOST_VERSION: Final = importlib.metadata.version("plugbay")

logging.getLogger("plugbay").addHandler(logging.NullHandler())


class HostInfo:
    """The read-only view of the host that plugins get as the service ``plugbay.host``."""

    def __init__(self, host: Host) -> None:
        self._host = host

    @property
    def version(self) -> str:
        return self._host.version

    def plugins(self) -> list[dict[str, Any]]:
        """Every plugin's record (id, version, type, state, reason, …) and metrics snapshot."""
        out = []
        for rec in self._host.plugins():
            row = rec.to_dict()
            row["metrics"] = rec.metrics.snapshot() if rec.metrics else None
            out.append(row)
        return out

    def health(self) -> dict[str, Any]:
        """Overall health and each plugin's (empty when monitoring is off)."""
        return self._host.health() if self._host.monitor is not None else {}

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts firing now."""
        return self._host.alerts() if self._host.monitor is not None else []


class Host(AsyncOnly):
    """A plugin host (async context manager). See the module docstring."""

    def __init__(
        self,
        plugins_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = "plugins",
        *,
        state_dir: str | os.PathLike[str] | None = ".plugbay",
        config: Mapping[str, Mapping[str, Any]] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        entry_points: bool = True,
        mode: str = "production",
        call_timeout: float = 30.0,
        init_timeout: float = 10.0,
        cleanup_timeout: float = 5.0,
        restart_backoff: float = 0.5,
        max_crashes: int = 5,
        crash_window: float = 60.0,
        monitoring: bool = True,
        load: Iterable[str] | None = None,
        policy: IsolationPolicy | None = None,
        inline: Iterable[str] = (),
        monitor: MonitorSettings | Mapping[str, Any] | None = None,
        probation: float = 0.5,
        python_index: IndexSettings | None = None,
        missing_plugins_dir: Literal["refuse", "note"] = "refuse",
    ) -> None:
        if plugins_dir is None:
            dirs: list[Path] = []
        elif isinstance(plugins_dir, (str, os.PathLike)):
            dirs = [Path(plugins_dir)]
        else:
            dirs = [Path(d) for d in plugins_dir]
        self.plugin_dirs = [d.resolve() for d in dirs]
        # "note": plugbay run's way, and the default "plugins" an application never named
        # (one on entry points alone starts wherever it runs)
        missing = missing_dirs(missing_plugins_dir)
        self._missing_dirs = "note" if plugins_dir == "plugins" else missing
        self.state_dir = Path(state_dir).resolve() if state_dir is not None else None
        self.version = HOST_VERSION
        self._entry_points = entry_points
        self._load = list(plugin_ids(load, "load")) if load is not None else None
        self._config_arg = {k: dict(v) for k, v in (config or {}).items()}
        self._config_file = Path(config_file) if config_file else None
        self._policy_given = policy is not None
        self._inline = plugin_ids(inline, "inline")
        #: where plugin environments' packages come from ([python] of the host config)
        self._python_index = python_index or IndexSettings()
        self._python_index_given = python_index is not None
        self._file_config: dict[str, dict[str, Any]] = {}
        self.problems: list[PlugbayError] = []
        self.registry = PluginRegistry(Version.parse(HOST_VERSION))
        self.state: StateStore | None = None
        #: installed and kept versions, under the state directory (None without one)
        self.store: PluginStore | None = None
        self.events = EventBus()
        data_root = (self.state_dir / "data") if self.state_dir else Path(".plugbay-data").resolve()
        self.manager = PluginManager(
            self.registry,
            ManagerSettings(
                host_version=HOST_VERSION,
                data_root=data_root,
                mode=mode,
                call_timeout=seconds(call_timeout, "call_timeout"),
                init_timeout=seconds(init_timeout, "init_timeout"),
                cleanup_timeout=seconds(cleanup_timeout, "cleanup_timeout"),
                restart_backoff=seconds(restart_backoff, "restart_backoff", zero="is at once"),
                max_crashes=crash_count(max_crashes),
                crash_window=seconds(crash_window, "crash_window"),
                monitoring=monitoring,
                policy=policy or IsolationPolicy.from_config({}, inline=self._inline),
                plugin_dirs=tuple(self.plugin_dirs),
                probation=seconds(probation, "probation", zero="skips it"),
                config_file=self._config_file,
            ),
            events=self.events,
            config_for=self._config_for,
            proxy_for=self.proxy,
        )
        #: the flight recorder, canaries, shadows and bisect (``runtime.trials``)
        self.trials = UpgradeTrials(self)
        self._started = False
        self._opened = False
        #: "stopped", "starting" (plugins starting), "ready" (every wanted plugin attempted),
        #: "stopping" (draining calls, cleaning up)
        self.phase = "stopped"
        #: the plugins this start wants active (the resolution plan's order)
        self._wanted: list[str] = []
        self._host_lock: HostLock | None = None
        #: what the start found of an earlier host and removed (None before open())
        self.swept: Swept | None = None
        #: [monitor] settings: the argument wins over the config file's table
        self._monitor_arg = monitor
        #: metrics, health, alerts and logs (the spec's PluginMonitor); made in start()
        self.monitor: PluginMonitor | None = None
        self._backups: asyncio.Task[None] | None = None
        self._backed_up: asyncio.Future[None] | None = None  # the backup of open(), a thread

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Host:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def started(self) -> bool:
        """Whether ``start`` ran and ``stop`` has not (every plugin was attempted)."""
        return self._started

    async def open(self) -> None:
        """Claim the state directory and get ready to start plugins, starting none:
        take its lock (refused with :class:`HostLockedError` when another host holds
        it), lift the descriptor limit, sweep what an earlier host left, open the
        state and the monitor. :meth:`start` calls it; ``plugbay run`` calls it first,
        so its HTTP server answers ``/healthz`` while plugins start."""
        if self._opened:
            return
        self.manager.serving.check_start()
        if self._missing_dirs == "refuse":
            check_plugin_dirs(self.plugin_dirs)
        if self.state_dir is not None:
            lock = HostLock(self.state_dir)
            lock.acquire()
            self._host_lock = lock
        try:
            soft, _hard = raise_descriptor_limit()
            logging.getLogger("plugbay.host").debug("descriptor limit: %d", soft)
            self.swept = sweep(self.state_dir)
            if self.state_dir is not None:
                self.state = StateStore.open(self.state_dir)
                self._start_backups(self.state)
                self.manager.state = self.state
                self.store = PluginStore(self.state_dir / "store", self.state)
                self.manager.store = self.store
            self._file_config = self._read_config_file()
            if self.state_dir is not None:
                self.manager.environments = EnvironmentStore(
                    self.state_dir / "envs", self._python_index, host_version=HOST_VERSION
                )
            if self.manager.settings.monitoring:
                self.monitor = PluginMonitor(self.manager, self._monitor_settings())
                await self.monitor.start()
        except BaseException:  # cut short (cancelled) or failed: what it did is undone
            await undo_fully(self._close(), "an open cut short")
            raise
        self._opened = True
        self.manager.serving.open()  # on this loop, until stop() (runtime.serving)
        self.phase = "starting"
        self.manager.stop_requested = False

    def request_stop(self) -> None:
        """Stop starting plugins (the one starting finishes first), and answer new calls
        through the API with 503 (``plugbay run`` on SIGTERM); :meth:`stop` follows."""
        self.manager.stop_requested = True
        if self._opened:
            self.phase = "stopping"

    async def drain_calls(self, timeout: float) -> int:
        """Wait (bounded) until no call runs on any plugin; returns how many still run.
        Used on a stop, after :meth:`request_stop` turned new API calls away."""
        end = asyncio.get_running_loop().time() + timeout
        # polled: a stop is rare, and an Event would cost every call something
        while (running := self.manager.calls_in_flight()) and (  # noqa: ASYNC110
            asyncio.get_running_loop().time() < end
        ):
            await asyncio.sleep(0.01)
        return running

    def readiness(self) -> dict[str, Any]:
        """``{"status": "starting" | "ready" | "degraded" | "stopping" | "stopped",
        "active": n, "wanted": m, "failed": [...]}``: progress while plugins start."""
        records = self.manager.records_by_id
        wanted = self._wanted
        active = sum(
            1 for pid in wanted if (r := records.get(pid)) is not None and r.state == "active"
        )
        failed = sorted(r.id for r in records.values() if r.state == "failed")
        status = self.phase
        if status == "ready" and failed:
            status = "degraded"
        return {"status": status, "active": active, "wanted": len(wanted), "failed": failed}

    def descriptors(self) -> dict[str, int]:
        """The host's descriptor limit, how many are open, and room for sandboxed plugins."""
        return descriptor_budget()

    async def start(self) -> None:
        """Discover, resolve and start every plugin. Problems are kept in
        ``host.problems`` and in each plugin's record; they never raise here
        (a second host on the same state directory does: :class:`HostLockedError`).
        A start cut short (cancelled) or failing undoes everything it did, workers
        to the state directory's lock, then raises."""
        self.manager.serving.check_start()  # a host is bound to the loop it first served
        if self._started:
            return
        await self.open()
        self._started = True
        try:
            await self._start_plugins()
        except BaseException:
            await undo_fully(self._close(), "a start cut short")
            raise

    def discover(self, *, entry_points: bool) -> Discovery:
        """The plugins in the host's directories (and entry points), through the
        manifest cache of its state directory when it has one."""
        cache = ManifestCache(self.state_dir / CACHE_FILE) if self.state_dir else None
        found = discover(self.plugin_dirs, entry_points=entry_points, cache=cache)
        if cache is not None:
            cache.save()
        return found

    async def _start_plugins(self) -> None:
        self.manager.services.provide(
            "plugbay.host", "plugbay.host", Version.parse(HOST_VERSION), HostInfo(self)
        )
        found = self.discover(entry_points=self._entry_points)
        for problem in found.problems:
            self._problem(problem, None)
        for manifest in found.manifests:
            try:
                self.registry.register(manifest)
            except PlugbayError as exc:
                self._problem(exc, manifest)
        self.refresh_installed()
        for manifest in bundled_needed(self.registry.manifests()):  # shipped with plugbay
            self.registry.register(manifest)
        if self.state is not None:  # said once, as it starts (runtime.kept_grants)
            warn_of_unhonourable_grants(self.state, (m.id for m in self.registry.manifests()))
        self.events.hold()
        try:
            await self._resolve_and_load()
        finally:
            self.events.release()
        self.events.emit("host.started", version=HOST_VERSION, plugins=len(self.registry))
        await self.events.drain()
        if self._backed_up is not None:  # taken beside the start: done once it returns
            await asyncio.shield(self._backed_up)
        if self.phase == "starting":
            self.phase = "ready"

    def refresh_installed(self) -> None:
        """Installed versions join the registry; a version kept for rollback only when the
        operator chose it (so an edited plugin directory still wins at the next start).
        A version a plugin directory already provides is taken from the directory."""
        if self.store is None or self.state is None:
            return
        held = self.state.held_versions()
        found = self.store.discover()
        for problem in found.problems:
            logging.getLogger("plugbay.host").warning("plugin store: %s", problem)
        for manifest in found.manifests:
            pid, version = manifest.id, str(manifest.version)
            if self.store.kept(pid, version) and held.get(pid) != version:
                continue
            if pid in self.registry and manifest.version in self.registry.versions(pid):
                continue
            try:
                self.registry.register(manifest)
            except PlugbayError as exc:
                self._problem(exc, manifest)

    async def _resolve_and_load(self) -> None:
        disabled = self.state.disabled() if self.state is not None else {}
        pinned = {}
        if self.state is not None:
            for pid, text in self.state.active_versions().items():
                try:
                    pinned[pid] = Version.parse(text)
                except PlugbayError:
                    continue
        for pid, reason in disabled.items():
            if pid in self.registry:
                self.manager.note_disabled(self.registry.get(pid), reason)
        known = {m.id for m in self.registry.manifests()}
        told = {"Host(load=...)": self._load or (), "Host(config=...)": self._config_arg}
        told |= plugin_tables(self._config_file, self._file_config, known)
        told |= grant_tables(self._config_file, self.manager.settings.policy.grants, known)
        for problem in strangers(told, known):
            self._problem(problem, None)
        plan = self.registry.resolve_all(
            requested=self._load, pinned=pinned, disabled=set(disabled)
        )
        self._wanted = list(plan.order)
        await self.manager.load_plan(plan)

    async def stop(self) -> None:
        """Clean up every plugin in reverse dependency order, then close the state and
        give up the state directory's lock."""
        if self._opened:
            await stop_off_loop(self)  # off its loop: refused, or its loop closed: see there
            await self._close()

    async def _close(self) -> None:
        """What :meth:`stop` does; also the undoing of an open or a start cut short."""
        # each step whatever an earlier one raised, then the first failure (runtime.stop_steps)
        await close_host(self)

    async def _stop_backups(self) -> None:
        """Cancel the periodic backups (before the state they copy closes)."""
        if self._backed_up is not None:  # a thread: it ends before the state closes
            await asyncio.shield(self._backed_up)
            self._backed_up = None
        if self._backups is not None:
            self._backups.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._backups
            self._backups = None

    def _start_backups(self, state: StateStore) -> None:
        """A backup now (the database just passed its check; none when one is younger than
        the interval), then every few minutes. The first is taken in a thread while
        plugins are discovered and start (a copy and its fsync: 10-25 ms the loop waited
        for); :meth:`start` returns once it is taken."""
        from plugbay.state.backups import back_up_every, start_backup

        def first() -> None:
            try:
                start_backup(state)
            except PlugbayError as exc:
                logging.getLogger("plugbay.state").warning("the state backup failed: %s", exc)

        self._backed_up = asyncio.ensure_future(asyncio.to_thread(first))
        self._backups = asyncio.get_running_loop().create_task(back_up_every(state))

    def _problem(self, error: PlugbayError, manifest: PluginManifest | None) -> None:
        self.problems.append(error)
        plugin_id = manifest.id if manifest is not None else error.plugin
        if plugin_id:
            self.manager.note_problem(plugin_id, error, manifest)
        else:
            logging.getLogger("plugbay.host").error("%s", error)

    # ------------------------------------------------------------------ config

    def _read_config_file(self) -> dict[str, dict[str, Any]]:
        path = self._config_file
        if path is None:
            return {}
        read = read_host_file(  # checked as 'plugbay doctor' checks it (runtime.host_file)
            path,
            inline=self._inline,
            policy=not self._policy_given,
            python_index=not self._python_index_given,
        )
        if read.policy is not None:
            self.manager.settings = dataclasses.replace(self.manager.settings, policy=read.policy)
        self._python_index = read.python_index or self._python_index
        self._file_monitor: dict[str, Any] = read.monitor
        return read.plugins

    def _monitor_settings(self) -> MonitorSettings:
        arg = self._monitor_arg
        if isinstance(arg, MonitorSettings):
            return arg
        if arg is not None:
            return MonitorSettings.from_config(arg, where="Host(monitor=...)")
        where = str(self._config_file) if self._config_file else None
        return MonitorSettings.from_config(getattr(self, "_file_monitor", {}), where=where)

    def config_layers(self, plugin_id: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        """The plugin's values under its run-time ones: the host config file's, then
        ``Host(config=...)``'s (which wins)."""
        return self._file_config.get(plugin_id, {}), self._config_arg.get(plugin_id, {})

    def _config_for(self, plugin_id: str) -> Mapping[str, Any]:
        merged: dict[str, Any] = dict(self._file_config.get(plugin_id, {}))
        if self.state is not None:
            merged.update(self.state.get_config(plugin_id) or {})
        merged.update(self._config_arg.get(plugin_id, {}))
        return merged

    # ------------------------------------------------------------------ calling

    def call(self, plugin_id: str, command: str, /, **params: Any) -> Coroutine[Any, Any, Any]:
        """Run a command with keyword parameters (checked against its annotations):
        ``await host.call(...)``. (The manager's call itself, not a coroutine around it.)"""
        return self.manager.call(plugin_id, command, params)

    async def call_many(
        self,
        plugin_id: str,
        command: str,
        params: Iterable[Mapping[str, Any]],
        /,
        *,
        strict: bool = True,
    ) -> list[Any]:
        """Run a command once per parameter set, all at once (``runtime.batch``): each item
        is that call's value or the :class:`PlugbayError` it failed with, in order. Each
        call is checked, bounded and counted as :meth:`call` does one; a sandboxed plugin
        gets the batch in one write, so many calls cost far less than a ``call`` each."""
        from plugbay.runtime.batch import call_many

        return await call_many(self.manager, plugin_id, command, params, strict=strict)

    async def call_with(
        self, plugin_id: str, command: str, params: Mapping[str, Any], *, strict: bool = True
    ) -> Any:
        """Like :meth:`call`; ``strict=False`` converts text and JSON values (CLI, HTTP).
        ``params`` stays the caller's: the call gets a copy."""
        return await self.manager.call(plugin_id, command, dict(params), strict=strict)

    def get(self, cls: type[P], plugin_id: str | None = None) -> P:
        """A typed proxy for the active plugin implemented by ``cls``.

        Only its ``@command`` methods are reachable, each as ``await proxy.name(...)``.
        It is typed as ``cls``, which overstates: mypy also accepts the class's other
        members, which raise CommandNotFound (docs/applications.md, "A typed proxy").
        """
        pid = plugin_id or self._id_for_class(cls)
        rec = self.manager.record(pid)
        if rec.state not in (PluginState.ACTIVE, PluginState.ON_DEMAND):
            raise self.manager.not_active(rec)
        return PluginProxy(self.manager, pid, cls)  # type: ignore[return-value]

    def proxy(self, plugin_id: str) -> Any:
        """An untyped proxy for a plugin (what services hand out)."""
        return PluginProxy(self.manager, plugin_id)

    def _id_for_class(self, cls: type[Plugin]) -> str:
        declared = cls.__dict__.get("id")
        if isinstance(declared, str):
            return declared
        matches = []
        for rec in self.manager.list_plugins():
            if rec.manifest is None:
                continue
            instance = rec.handle.instance if rec.handle is not None else None
            if isinstance(instance, cls) or (
                rec.manifest.attribute.rsplit(".", 1)[-1] == cls.__name__
            ):
                matches.append(rec.id)
        if len(matches) == 1:
            return matches[0]
        raise PluginNotFound(
            f"no single plugin is implemented by {cls.__name__}"
            + (f" (candidates: {', '.join(matches)})" if matches else ""),
            hint="pass the id: host.get(Cls, 'plugin.id'), or set id = '...' on the class",
        )

    # ------------------------------------------------------------------ management

    def plugins(self) -> list[PluginRecord]:
        if (unstarted := self.manager.serving.unstarted("list the plugins")) is not None:
            raise unstarted  # as host.plugin(id) is: [] would read as "none found"
        return self.manager.list_plugins()

    def plugin(self, plugin_id: str) -> PluginRecord:
        return self.manager.record(plugin_id)

    @on_host_loop
    async def load(self, plugin_id: str) -> PluginRecord:
        """Start a plugin that is not running, its required dependencies that are not
        first; what was added to the plugin directories since the start is found."""
        from plugbay.runtime.loading import load_with_needs

        return await load_with_needs(self, plugin_id)

    @on_host_loop
    async def reload(
        self, plugin_id: str, *, source: str | os.PathLike[str] | None = None
    ) -> PluginRecord:
        """Swap a plugin for what its files say now (or what ``source``, another plugin
        directory, says); the old version serves until then, and keeps serving if the new
        one fails. Dependents follow when its version or a provided service changed."""
        return await self.manager.reload_plugin(
            plugin_id, source=Path(source) if source is not None else None
        )

    @on_host_loop
    async def rollback(self, plugin_id: str, version: str | None = None) -> PluginRecord:
        """Return to the version that served before (or ``version``), with the state it
        had then; the current version serves until the swap."""
        return await self.manager.rollback_plugin(plugin_id, version)

    @on_host_loop
    async def upgrade(
        self, plugin_id: str, version: str | None = None, *, with_dependents: bool = False
    ) -> UpgradePlan:
        """Move to a newer installed version; refused, naming each dependent and its range,
        when an active dependent would not accept it (unless ``with_dependents`` finds
        versions of them that do). A version installed since (by another process:
        ``plugbay install`` beside a running host) is found first."""
        self.refresh_installed()
        return await self.manager.upgrade_plugin(
            plugin_id, version, with_dependents=with_dependents
        )

    def install(self, source: str | os.PathLike[str]) -> PluginManifest:
        """Add a plugin directory or wheel to the store, beside the versions already
        there; it serves once chosen (``upgrade``, or a start that resolves to it)."""
        if self.store is None:
            raise PluginStateError(
                "installing needs a state directory, where the plugin store lives",
                hint="create the host with state_dir=..., or pass --state DIR",
            )
        # its Python environment first: when that fails, nothing is installed
        manifest = self.store.install(
            Path(source),
            host_version=Version.parse(HOST_VERSION),
            prepare=self.manager.python_environment,
        )
        if manifest.id not in self.registry or manifest.version not in self.registry.versions(
            manifest.id
        ):
            self.registry.register(manifest)
        return manifest

    @on_host_loop
    async def uninstall(
        self, plugin_id: str, version: str | None = None, *, purge: bool = False
    ) -> dict[str, Any]:
        """Stop and remove installed versions (``runtime.uninstall``); data kept unless purge."""
        from plugbay.runtime.uninstall import uninstall

        return await uninstall(self, plugin_id, version, purge=purge)

    def history(self, plugin_id: str | None = None, *, limit: int = 100) -> list[HistoryEvent]:
        """Installs, loads, reloads, upgrades, rollbacks and failures, newest first."""
        if self.state is None:
            return []
        return self.state.history(plugin_id, limit=limit)

    @on_host_loop
    async def watch(
        self,
        stop: asyncio.Event | None = None,
        *,
        on_change: Callable[[WatchResult], None] | None = None,
    ) -> None:
        """Reload plugins whose files change, until ``stop`` is set (``plugbay run --watch``)."""
        from plugbay.runtime.watch import PluginWatcher

        await PluginWatcher(self, on_change=on_change).run(stop)

    @on_host_loop
    async def unload(self, plugin_id: str, *, cascade: bool = False) -> list[str]:
        return await self.manager.unload_plugin(plugin_id, cascade=cascade)

    @on_host_loop
    async def enable(self, plugin_id: str) -> PluginRecord:
        return await self.manager.enable(plugin_id)

    @on_host_loop
    async def disable(
        self, plugin_id: str, reason: str | None = None, *, cascade: bool = False
    ) -> list[str]:
        return await self.manager.disable(plugin_id, reason, cascade=cascade)

    def runtime_config(self, plugin_id: str) -> dict[str, Any]:
        """The config values set at run time (the state store's layer)."""
        self.manager.record(plugin_id)
        return (self.state.get_config(plugin_id) if self.state is not None else None) or {}

    def config_provided(self, plugin_id: str) -> set[str]:
        """The config keys the host config file and the host's own arguments set for
        ``plugin_id``: run-time values need not set them."""
        return set(self._file_config.get(plugin_id, {})) | set(self._config_arg.get(plugin_id, {}))

    @on_host_loop
    async def set_config(self, plugin_id: str, values: Mapping[str, Any]) -> PluginRecord:
        """Replace a plugin's run-time config values: checked against its schema with every
        other layer first, then kept in the state and applied to an active plugin: by its
        ``on_config_change`` hook when it has one, else by a swap with state handover
        (``runtime.live_config``). On any failure the previous values stay, and the plugin
        keeps its old config. Every change is in the plugin's history."""
        rec = self.manager.record(plugin_id)
        if self.state is None:
            raise ConfigError(
                "this host has no state directory to keep run-time config in",
                plugin=plugin_id,
                hint="start the host with a state directory (--state)",
            )
        manifest = rec.manifest
        layers = self.config_layers(plugin_id)
        # a key only another installed version declares is kept aside for it
        versions = versions_of(self, plugin_id)
        full = checked_config(plugin_id, manifest, values, layers, versions)
        previous = self.state.get_config(plugin_id)
        self.state.set_config(plugin_id, dict(values))
        if rec.state is PluginState.ACTIVE:
            try:  # its on_config_change hook, else a swap (runtime.live_config)
                return await apply_config(self, rec, full, values)
            except BaseException:
                self.state.set_config(plugin_id, previous or {})
                raise
        audit_config(self, plugin_id, manifest, values, "the next start")
        return rec

    @on_host_loop
    async def grant(
        self, plugin_id: str, permission: str, *, by: str | None = None
    ) -> dict[str, Any]:
        """Grant a permission and apply it at once: an active plugin's worker is restarted
        under the new policy (a reload). The grant is bound to this permission for this
        plugin; a later version that asks for more starts without the rest. ``by``: who
        grants it, kept in the history (``runtime.permissions``)."""
        return await change_grant(self, plugin_id, permission, grant=True, by=by)

    @on_host_loop
    async def revoke(
        self, plugin_id: str, permission: str, *, by: str | None = None
    ) -> dict[str, Any]:
        """Take a permission back, applied at once like :meth:`grant`; refused, naming the
        file, when the host config's ``[policy.grants]`` gives it."""
        return await change_grant(self, plugin_id, permission, grant=False, by=by)

    def info(self, plugin_id: str) -> dict[str, Any]:
        """Manifest, state, dependencies, dependents and commands of one plugin
        (:func:`plugbay.runtime.plugin_info.plugin_info`)."""
        return plugin_info(self.manager, self.registry, self.state, plugin_id)

    # ------------------------------------------------------------------ monitoring

    def _monitor(self) -> PluginMonitor:
        if self.monitor is None:
            raise PluginStateError(
                "monitoring is off for this host (Host(monitoring=False)) or it is not started",
                hint="start the host with monitoring on",
            )
        return self.monitor

    def health(self) -> dict[str, Any]:
        """Overall health and each plugin's (liveness, readiness, status, reasons)."""
        return self._monitor().overall_health()

    def alerts(self, plugin_id: str | None = None) -> list[dict[str, Any]]:
        """Alerts firing now."""
        return [a.to_dict() for a in self._monitor().alerts.active(plugin_id)]

    def logs(
        self, plugin_id: str | None = None, *, min_level: int = 0, limit: int = 200
    ) -> list[dict[str, Any]]:
        """The newest log records kept in memory (the state keeps more, see ``plugbay logs``)."""
        if plugin_id is not None:
            self.manager.record(plugin_id)
        return self._monitor().logs.recent(plugin_id, min_level=min_level, limit=limit)

    def snapshot(self) -> dict[str, Any]:
        """What ``plugbay top`` shows: the host's summary and one row per plugin."""
        monitor = self._monitor()
        return {"host": monitor.host_summary(), "plugins": monitor.snapshot()}

    def render_metrics(self) -> bytes:
        """Every metric in the Prometheus text format (what ``/metrics`` serves)."""
        from plugbay.runtime.prometheus import exposition

        return exposition(self.manager, self.monitor)

    @on_host_loop
    async def profile(
        self, plugin_id: str, command: str, params: Mapping[str, Any], *, strict: bool = False
    ) -> tuple[Any, str]:
        """Run one command under the profiler in the plugin's own backend: (result, report)."""
        from plugbay.runtime.profile import profile_call

        return await profile_call(self.manager, plugin_id, command, params, strict=strict)

    @on_host_loop
    async def sample(self, plugin_id: str, seconds: float, interval: float = 0.005) -> Samples:
        """Sample the process serving ``plugin_id`` for ``seconds``, as it serves."""
        from plugbay.runtime.profile import sample_serving

        return await sample_serving(self.manager, plugin_id, seconds, interval)
