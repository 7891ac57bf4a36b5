"""Starting a plugin: what it needs running, where the policy places it, its config,
context and Python environment, its ``initialize`` with a timeout, and the undoing
of a start that failed half way. Every failure becomes the plugin's own, recorded
with its reason; it never stops the other plugins.

:class:`Starting` is part of :class:`plugbay.runtime.manager.PluginManager`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from plugbay.api import Environment, Events, PluginConfig, PluginContext, Secrets, SystemPlugin
from plugbay.api.errors import (
    ConfigError,
    PlugbayError,
    PluginInitError,
    PluginStateError,
    PluginTimeout,
)
from plugbay.isolation import Backend, CallTimeout, PluginHandle
from plugbay.isolation.base import EnvironmentPaths
from plugbay.isolation.loading import plugin_frame, raised_at
from plugbay.isolation.policy import Placement
from plugbay.model.manifest import PluginManifest
from plugbay.model.versions import Range
from plugbay.monitor import PluginMetrics
from plugbay.monitor.bounds import Budget
from plugbay.runtime.config_aside import passed
from plugbay.runtime.config_source import at_its_source, in_the_file, validated_config
from plugbay.runtime.deadlines import call_timeout
from plugbay.runtime.environments import (
    EnvironmentBuildError,
    EnvironmentStore,
    check_fits_host,
)
from plugbay.runtime.events import EventBus, Subscriber
from plugbay.runtime.lifecycle import check_descriptors
from plugbay.runtime.plugin_events import PluginEvents
from plugbay.runtime.records import (
    ManagerSettings,
    PluginRecord,
    PluginState,
    Roster,
    optional_only,
    positive,
)
from plugbay.runtime.routing import Route, command_table
from plugbay.runtime.services import ServiceHub, ServiceView
from plugbay.runtime.startup import StartAhead
from plugbay.runtime.store import PluginStore
from plugbay.runtime.swap import Swapper
from plugbay.state import StateStore

__all__ = ["Starting"]

log = logging.getLogger("plugbay.manager")


def _figures(manifest: PluginManifest, crashed: PluginRecord | None) -> PluginMetrics:
    """The figures a start counts in: a restart after a crash counts on in those the
    crashed record had, as a reload does (the calls the crash failed stay in /metrics,
    ``top`` and the error-rate rule); any other start, new ones."""
    kept = crashed.metrics if crashed is not None else None
    return kept if kept is not None else PluginMetrics(manifest.id)


def _fits_no_test(exc: EnvironmentBuildError, manifest: PluginManifest) -> EnvironmentBuildError:
    """An inline plugin whose requirements the host lacks, in a plugin's own tests (the
    PDK's harness): it runs in the Python that runs pytest, and its author, not an
    operator, fixes that, by installing them there or by testing it in a worker."""
    if manifest.path is not None and manifest.path.name == "pyproject.toml":
        install = f"pip install -e '.[test]' in {manifest.root}"
    else:
        install = "pip install " + " ".join(f"'{r}'" for r in manifest.python_dependencies)
    return EnvironmentBuildError(
        exc.message.replace("the host's own interpreter", "the Python that runs the tests"),
        plugin=exc.plugin,
        where=exc.where,
        hint=f"install its requirements in the Python that runs the tests ({sys.executable}): "
        f"{install}; or test it with isolation='process', where the host builds it an "
        "environment of its own",
        details=exc.details,
    )


def _init_hint(plugin_id: str) -> str:
    return f"see the traceback with 'plugbay info {plugin_id} --traceback'"


def _its_own(error: PlugbayError, plugin_id: str) -> bool:
    """``error`` is a worker's report of an exception the plugin's own ``initialize``
    raised (``isolation.worker``, judged by ``isolation.identity``), not a refusal, a
    limit or a crash the host stands behind."""
    details = error.details
    return (
        error.code == "plugin_raised"
        and isinstance(details, dict)
        and details.get("raised_by") == plugin_id
        and "claimed" not in details
        and "exception" in details
    )


def _cycle_through(plugin_id: str, needs: set[str], records: Roster) -> list[str] | None:
    """``[plugin_id, …, plugin_id]`` when something ``needs`` names needs ``plugin_id``
    back (through what each loaded plugin needs), else None: one walk, each plugin
    seen once (a start in a chain of a thousand is not a walk of every path)."""
    came_from: dict[str, str] = dict.fromkeys(needs, plugin_id)
    queue = deque(sorted(needs))
    while queue:
        at = queue.popleft()
        if at == plugin_id:
            path = [at]
            while True:
                at = came_from[at]
                path.append(at)
                if at == plugin_id:
                    return path[::-1]
        rec = records.get(at)
        for further in sorted(rec.needs if rec is not None else ()):
            if further not in came_from:
                came_from[further] = at
                queue.append(further)
    return None


def _its_load_failure(error: PlugbayError, plugin_id: str) -> bool:
    """``error`` is a worker's report that the plugin's code did not import
    (``isolation.loading``), which ``isolation.identity`` marked as the plugin's own."""
    details = error.details
    return (
        error.code == "plugin_load_failed"
        and isinstance(details, dict)
        and details.get("raised_by") == plugin_id
    )


class _Issuer(Protocol):
    """What starting needs of the host's broker (``runtime.broker``)."""

    def issued(self, consumer: str, token: str) -> bool: ...
    def check_service(
        self, consumer: str, name: str, wanted: Range
    ) -> Callable[[object], object] | None: ...


class Starting:
    """The manager's part that starts a plugin (and undoes a failed start)."""

    settings: ManagerSettings
    state: StateStore | None
    store: PluginStore | None
    environments: EnvironmentStore | None
    events: EventBus
    services: ServiceHub
    backends: dict[str, Backend]
    broker: _Issuer
    _config_for: Callable[[str], Mapping[str, Any]]
    _records: Roster
    _routes: dict[str, Route]
    _swapper: Swapper
    plugin_events: PluginEvents
    #: what ``runtime.startup`` readies for the plugins of a start that wait for others
    _ahead: StartAhead | None = None

    if TYPE_CHECKING:

        def _fail(self, rec: PluginRecord, error: PlugbayError, *, action: str) -> None: ...
        def _set_state(self, rec: PluginRecord, state: PluginState) -> None: ...
        def _state_of(self, plugin_id: str) -> PluginState | None: ...
        def _describe(self, plugin_id: str) -> str: ...
        def _history(
            self,
            rec: PluginRecord,
            action: str,
            result: str,
            reason: str | None,
            details: dict[str, Any] | None,
        ) -> None: ...
        def _crashed(self, rec: PluginRecord, error: PlugbayError) -> None: ...
        def _restart_under_way(self, rec: PluginRecord, crashed: PluginRecord) -> None: ...
        def _security(self, rec: PluginRecord, event: dict[str, Any]) -> None: ...
        def budget_for(self, plugin_id: str) -> Budget | None: ...
        def set_route(self, plugin_id: str, route: Route) -> None: ...
        def _versions_of(self, plugin_id: str) -> list[PluginManifest]: ...

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
        cycle = _cycle_through(manifest.id, needs, self._records)
        if cycle:
            # a reload may bring a dependency the plan never saw: the host would then
            # start neither plugin again (at its next start, or a reload of the other)
            raise PluginStateError(
                f"its dependencies would make a cycle: {' → '.join(cycle)}",
                plugin=manifest.id,
                where=manifest.location,
                hint="break the cycle: one of these plugins must not depend on the next",
            )
        return frozenset(needs), notes

    def _skip_inactive_optional(self, rec: PluginRecord, manifest: PluginManifest) -> None:
        """Drop from ``rec.needs`` the optional dependencies the plan selected that did not
        end active (failed, disabled, stopped), each with a note: the plugin starts without
        them (docs/manifest.md). One whose services it requires still blocks it."""
        skipped = [
            d
            for d in sorted(rec.needs)
            if self._state_of(d) is not PluginState.ACTIVE
            and optional_only(manifest, d, self._manifest_of(d))
        ]
        for dep in skipped:
            state = self._state_of(dep) or "not loaded"
            rec.notes.append(
                f"optional dependency '{dep}' skipped: it is {state} ('plugbay info {dep}' says why)"
            )
        rec.needs = rec.needs.difference(skipped)

    def _manifest_of(self, plugin_id: str) -> PluginManifest | None:
        rec = self._records.get(plugin_id)
        return rec.manifest if rec is not None else None

    def _blocked(self, manifest: PluginManifest, blocked: list[str]) -> PluginStateError:
        """Why ``manifest`` is not started: a dependency not active, or not there at all
        (a plugin added beside a running host, ``--watch``, before what it needs)."""
        absent = [d for d in blocked if d not in self._records]
        reasons = "; ".join(
            f"no plugin '{d}' is installed" if d in absent else f"'{d}' is {self._describe(d)}"
            for d in blocked
        )
        if absent:
            hint = (
                f"add {', '.join(repr(d) for d in absent)} to a plugin directory or "
                f"'plugbay install' it (then 'plugbay load {manifest.id}' starts them; under "
                f"--watch it starts by itself), or remove the dependency from {manifest.id}'s "
                "manifest"
            )
        else:
            hint = f"fix {', '.join(repr(d) for d in blocked)} first; 'plugbay info {blocked[0]}' says why"
        return PluginStateError(
            f"not started because a dependency is not active: {reasons}",
            plugin=manifest.id,
            hint=hint,
            details={"blocked_by": blocked},
        )

    async def _start(
        self,
        manifest: PluginManifest,
        needs: Iterable[str],
        notes: list[str],
        *,
        crashed: PluginRecord | None = None,
    ) -> PluginRecord:
        """Start ``manifest``'s plugin; ``crashed``: the record whose restart this start is
        (the new record reads ``restarting`` until it is active or failed)."""
        rec = PluginRecord(manifest.id, manifest, needs=frozenset(needs), notes=list(notes))
        if crashed is not None:
            self._restart_under_way(rec, crashed)
        try:
            rec.placement = self.place(manifest)
            rec.isolation = rec.placement.isolation
        except PlugbayError as exc:
            self._records[manifest.id] = rec
            self._fail(rec, exc, action="load")
            return rec
        self._records[manifest.id] = rec
        self._enter(rec, PluginState.RESOLVED)
        self._skip_inactive_optional(rec, manifest)
        blocked = [d for d in sorted(rec.needs) if self._state_of(d) is not PluginState.ACTIVE]
        if blocked:
            self._fail(rec, self._blocked(manifest, blocked), action="load")
            return rec
        started = time.perf_counter()
        metrics = rec.metrics = _figures(manifest, crashed)
        try:
            config = self._validated_config(manifest)
            rec.config = config
            self._enter(rec, PluginState.INITIALIZING)
            handle, context = await self._launch(rec, manifest, config, metrics)
            rec.handle = handle
            handle.on_crash = functools.partial(self._crashed, rec)
            await self._initialize(handle, manifest, context)
            await self._ready(manifest, handle)
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
        rec.started_at = metrics.started = time.time()  # its uptime (docs/operators.md)
        timeout = call_timeout(manifest, self.settings)  # its placement's (runtime.deadlines)
        table = command_table(handle, metrics, self.settings.monitoring)
        self.set_route(manifest.id, Route(handle, metrics, timeout, [0], table))
        rec.restart = None
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
        # its history, its kept copy and its active version: one commit (state.batch)
        with self.state.batch() if self.state is not None else contextlib.nullcontext():
            self._history(rec, "load", "ok", None, {"seconds": round(rec.load_seconds, 6)})
        self.events.emit("plugin.loaded", plugin=manifest.id, version=str(manifest.version))
        return rec

    def _enter(self, rec: PluginRecord, state: PluginState) -> None:
        """``state`` (resolved, initializing); ``restarting`` all along the start of a
        restart, which is not over until the plugin is active or failed."""
        self._set_state(rec, PluginState.RESTARTING if rec.restart is not None else state)

    async def _ready(self, manifest: PluginManifest, handle: PluginHandle) -> None:
        """After ``initialize``: what it held at its last stop given back, and the copy of
        its files for rollback taken (in the store's thread) before it serves."""
        await self._swapper.restore_at_start(manifest.id, handle)
        if self.store is not None:
            await self.store.taken(manifest)

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
        data_dir = context.environment.data_dir
        if self.store is not None:  # its files kept for rollback, copied beside its start
            self.store.snapshot_soon(manifest)
        ahead = self._ahead  # a worker forked while the plugins it needs started
        handle = await ahead.claim(manifest, placement, data_dir) if ahead is not None else None
        if handle is None:
            if placement.isolation != "inline":  # say "descriptors" before a socketpair fails
                check_descriptors(manifest.id)
            handle = await backend.start(manifest, placement, data_dir, environment)
        if ahead is not None:
            ahead.launched(manifest.id)
        handle.on_security = functools.partial(self._security, rec)
        budget = self.budget_for(manifest.id)
        handle.bind(budget, functools.partial(self.broker.issued, rec.id))
        if placement.isolation == "inline" and budget is not None:  # its own series, its bound
            metrics.max_total = budget.bounds.metric_series
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
            try:
                check_fits_host(manifest, self.settings.host_version)
            except EnvironmentBuildError as exc:
                if self.settings.mode != "test":
                    raise
                raise _fits_no_test(exc, manifest) from None
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

    async def _initialize(
        self, handle: PluginHandle, manifest: PluginManifest, context: PluginContext
    ) -> None:
        """Run ``initialize`` with its timeout; every failure becomes a PlugbayError."""
        init_timeout = positive(manifest.resources.init_timeout) or self.settings.init_timeout
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
        except PlugbayError as exc:
            if _its_load_failure(exc, manifest.id):
                # its code did not import in its worker: answered as inline (409, not 502)
                exc.details = {k: v for k, v in exc.details.items() if k != "raised_by"}
                raise
            if not _its_own(exc, manifest.id):
                raise
            # a worker's report of the plugin's own exception (``isolation.identity``):
            # answered as an inline plugin's is, below
            details = {k: v for k, v in exc.details.items() if k != "raised_by"}
            raise PluginInitError(
                exc.message,
                plugin=manifest.id,
                where=exc.where or manifest.location,
                hint=_init_hint(manifest.id),
                details=details,
            ) from None
        except (Exception, SystemExit) as exc:  # sys.exit() in a plugin is its own failure
            raise PluginInitError(
                f"initialize raised {type(exc).__name__}: {exc}",
                plugin=manifest.id,
                where=plugin_frame(exc, manifest) or manifest.location,
                hint=_init_hint(manifest.id),
                details={
                    "exception": type(exc).__name__,
                    "raised_at": raised_at(exc, manifest),
                    "traceback": "".join(traceback.format_exception(exc)),
                },
            ) from exc

    def _validated_config(self, manifest: PluginManifest) -> dict[str, Any]:
        # a key only another installed version declares is kept aside for it (config_aside)
        raw = passed(manifest, self._config_for(manifest.id), self._versions_of(manifest.id))
        try:
            return validated_config(manifest, raw)
        except ConfigError as exc:  # a value set with 'plugbay config' is blamed there
            runtime = self.state.get_config(manifest.id) if self.state is not None else None
            blamed = at_its_source(exc, manifest.id, raw, runtime)
            raise in_the_file(blamed, manifest.id, raw, self.settings.config_file) from None

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
            secrets=Secrets(
                placement.secrets if placement else {},
                plugin=manifest.id,
                unset=placement.unset_secrets() if placement else (),
            ),
            # the host's plugin events measure the payload (emit_from), as a worker's
            events=Events(
                self.plugin_events.sink_for(manifest.id), plugin=manifest.id, host_measures=True
            ),
        )

    async def _abandon(self, rec: PluginRecord) -> None:
        """Undo a start that failed half way: bounded cleanup, forget the code."""
        handle, rec.handle = rec.handle, None
        self.services.withdraw(rec.id)
        if self.store is not None and rec.manifest is not None:  # no copy of what never served
            self.store.drop_snapshot(rec.manifest)
        if handle is None:
            return
        try:
            await handle.cleanup(self.settings.cleanup_timeout)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.debug("cleanup after failed start of %s raised %r", rec.id, exc)
        handle.release()
