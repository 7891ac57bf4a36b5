"""Watching plugin directories: a saved change reloads the plugin (``plugbay run --watch``).

watchfiles (inotify) reports changes; a burst of writes (an editor saving through a
temporary file, a ``git checkout``) arrives as one batch, because the batch closes
only after ``step`` ms without a new change (at most ``debounce`` ms after it
opened). Each batch becomes at most one reload per plugin:

* a change inside an active plugin's directory reloads it (the old version serves
  until the new one is ready, and keeps serving if the new one is broken);
* dependents follow, in dependency order, only when the version or a provided
  service changed (:meth:`PluginManager.reload_dependents`);
* a plugin that had failed, or a new plugin directory, is loaded;
* a plugin directory whose manifest is gone (deleted, or renamed away) keeps its
  version serving and says so; when it reappears elsewhere with the same id (a
  rename), the plugin is reloaded from there.

Every outcome is a :class:`WatchResult` handed to ``on_change`` and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import watchfiles

from plugbay.api.errors import PlugbayError
from plugbay.model.discover import discover_directory
from plugbay.model.manifest import PluginManifest

if TYPE_CHECKING:
    from plugbay.model.registry import PluginRegistry
    from plugbay.runtime.manager import PluginManager, PluginRecord
    from plugbay.runtime.store import PluginStore

__all__ = ["PluginWatcher", "WatchResult", "WatchedHost"]

log = logging.getLogger("plugbay.watch")

_MANIFESTS: Final = ("plugin.toml", "pyproject.toml")


class WatchedHost(Protocol):
    """What the watcher needs of the host whose plugin directories it watches
    (:class:`plugbay.runtime.host.Host` is one; the watcher does not import it)."""

    @property
    def plugin_dirs(self) -> list[Path]: ...
    @property
    def state_dir(self) -> Path | None: ...
    @property
    def manager(self) -> PluginManager: ...
    @property
    def registry(self) -> PluginRegistry: ...
    @property
    def store(self) -> PluginStore | None: ...


@dataclass(frozen=True, slots=True)
class WatchResult:
    """What one change did to one plugin."""

    plugin_id: str | None
    action: str  # reload, load, rename, missing, skipped
    ok: bool
    message: str
    version: str | None = None
    previous: str | None = None
    seconds: float = 0.0
    dependents: list[str] = field(default_factory=list)


class PluginWatcher:
    """Reloads the plugins of ``host.plugin_dirs`` whose files change."""

    def __init__(
        self,
        host: WatchedHost,
        *,
        on_change: Callable[[WatchResult], None] | None = None,
        step_ms: int = 50,
        debounce_ms: int = 400,
    ) -> None:
        self.host = host
        self.on_change = on_change
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        ignore = [str(host.state_dir)] if host.state_dir is not None else []
        self._filter = watchfiles.DefaultFilter(ignore_paths=ignore)
        #: set once the watcher is listening (a change before that may be missed)
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Watch until ``stop`` is set (or the task is cancelled)."""
        dirs = [d for d in self.host.plugin_dirs if d.is_dir()]
        if not dirs:
            log.warning("no plugin directory to watch")
            self.ready.set()
            if stop is not None:
                await stop.wait()
            return
        stop = stop or asyncio.Event()
        changes_iter = watchfiles.awatch(
            *dirs,
            watch_filter=self._filter,
            step=self.step_ms,
            debounce=self.debounce_ms,
            stop_event=stop,
            rust_timeout=200,
            yield_on_timeout=True,
        )
        async for changes in changes_iter:
            self.ready.set()
            if changes:
                try:
                    await self.apply(sorted({Path(p) for _, p in changes}))
                except Exception:  # a bug here must not end watching for every later save
                    log.exception("handling a change failed")

    # ------------------------------------------------------------------ one batch

    async def apply(self, paths: Iterable[Path]) -> list[WatchResult]:
        """Act on one batch of changed paths; returns what happened to each plugin."""
        started = time.perf_counter()
        touched, unknown = self._sort_paths(paths)
        results: list[WatchResult] = []
        # new directories: a new plugin, or one that was renamed (same id, old root gone)
        for directory in sorted(unknown):
            results += self._adopt(directory, touched)
        ordered = self._in_order(touched)
        cascade: list[str] = []
        for pid in ordered:
            result, changed = await self._one(pid, touched[pid], started)
            results.append(result)
            if changed:
                cascade.append(pid)
        if cascade:
            results += await self._dependents(cascade, ordered)
        results += await self._waiting(results, started)
        return results

    async def _waiting(self, results: list[WatchResult], started: float) -> list[WatchResult]:
        """Load the plugins that failed only because a plugin this batch loaded was not
        there or not active (added beside a running host before what it needs), and then
        those that waited for them."""
        done: list[WatchResult] = []
        came = {r.plugin_id for r in results if r.ok and r.action in ("load", "reload")}
        while came:
            waiting = [
                (rec, rec.manifest.root)
                for rec in self.host.manager.list_plugins()
                if str(rec.state) == "failed"
                and rec.manifest is not None
                and rec.manifest.root is not None
                and rec.error is not None
                and came & set(rec.error.details.get("blocked_by") or ())
            ]
            came = set()
            for rec, root in waiting:
                result, _ = await self._load(rec.id, rec, root, started)
                done.append(result)
                if result.ok:
                    came.add(rec.id)
        return done

    def _sort_paths(self, paths: Iterable[Path]) -> tuple[dict[str, Path], set[Path]]:
        """Changed paths as (plugin id → its directory, directories no known plugin owns)."""
        roots = self._roots()
        touched: dict[str, Path] = {}
        unknown: set[Path] = set()
        for path in paths:
            owner = _owner(path, roots)
            if owner is not None:
                touched[roots[owner]] = owner
            elif path.name in _MANIFESTS:
                unknown.add(path.parent)
            elif path.is_dir():  # a directory moved in: inotify names the directory only
                unknown.add(path)
        return touched, unknown

    def _adopt(self, directory: Path, touched: dict[str, Path]) -> list[WatchResult]:
        """Add the plugins of a new directory to ``touched``; what cannot be, reported."""
        found = discover_directory(directory) if directory.is_dir() else None
        if found is None or not found.manifests:
            problems = found.problems if found else ()
            return [
                self._report(WatchResult(problem.plugin, "load", False, str(problem)))
                for problem in problems
            ]
        results = []
        for manifest in found.manifests:
            old_root = self._other_root(manifest)
            if old_root is not None:
                results.append(
                    self._report(
                        WatchResult(
                            manifest.id,
                            "load",
                            False,
                            f"'{manifest.id}' appeared in {manifest.root}, but "
                            f"{old_root} still provides it; remove one of them",
                        )
                    )
                )
                continue
            touched[manifest.id] = manifest.root or directory
        return results

    def _other_root(self, manifest: PluginManifest) -> Path | None:
        """Another existing directory (not the store) that provides this plugin, if any."""
        rec = self.host.manager.records_by_id.get(manifest.id)
        old_root = rec.manifest.root if rec and rec.manifest else None
        store = self.host.store.root if self.host.store is not None else None
        if old_root is None or not old_root.exists() or old_root == manifest.root:
            return None
        if store is not None and old_root.is_relative_to(store):
            return None
        return old_root

    async def _dependents(self, cascade: list[str], ordered: list[str]) -> list[WatchResult]:
        """Reload the dependents of plugins whose version or services changed."""
        outcome = await self.host.manager.reload_dependents(cascade, "a file change", skip=ordered)
        results = [
            self._report(WatchResult(pid, "reload", False, failure))
            for pid, failure in outcome.items()
            if failure is not None
        ]
        done = [pid for pid, failure in outcome.items() if failure is None]
        if done:
            results.append(
                self._report(
                    WatchResult(
                        None,
                        "dependents",
                        True,
                        f"dependents reloaded after {', '.join(cascade)}: {', '.join(done)}",
                        dependents=done,
                    )
                )
            )
        return results

    async def _one(self, plugin_id: str, root: Path, started: float) -> tuple[WatchResult, bool]:
        """Reload or load one plugin; ``True`` beside the result when its dependents must
        follow (its version or a provided service changed)."""
        rec = self.host.manager.records_by_id.get(plugin_id)
        active = rec is not None and str(rec.state) == "active" and rec.manifest is not None
        if not any((root / name).is_file() for name in _MANIFESTS):
            serving = f"{rec.version} keeps serving" if active and rec else "nothing was loaded"
            return self._report_one(
                WatchResult(
                    plugin_id,
                    "missing",
                    False,
                    f"plugin '{plugin_id}': its manifest in {root} is gone (deleted or renamed); "
                    f"{serving}. Restore it, or move the directory back"
                    + (f"; to stop serving it: 'plugbay unload {plugin_id}'" if active else "")
                    + ".",
                )
            )
        if rec is not None and str(rec.state) == "disabled":
            return self._report_one(
                WatchResult(plugin_id, "skipped", True, f"'{plugin_id}' is disabled; not loaded")
            )
        if active and rec is not None and rec.manifest is not None:
            return await self._reload(plugin_id, rec.manifest, root, started)
        return await self._load(plugin_id, rec, root, started)

    async def _reload(
        self, plugin_id: str, old: PluginManifest, root: Path, started: float
    ) -> tuple[WatchResult, bool]:
        """Swap a serving plugin for what its files say now."""
        # another directory than the one serving: renamed, or the plugin directory of a
        # version the store serves (after a rollback or upgrade)
        elsewhere = old.root is not None and old.root != root
        renamed = elsewhere and old.root is not None and not old.root.exists()
        serving = self.host.manager.records_by_id.get(plugin_id)
        commands = set(serving.commands) if serving is not None else set()
        try:
            new_rec = await self.host.manager.reload_plugin(
                plugin_id, source=root if elsewhere else None, dependents=False
            )
        except PlugbayError as exc:
            return self._report_one(WatchResult(plugin_id, "reload", False, str(exc)))
        new = new_rec.manifest
        assert new is not None
        changed = old.version != new.version or old.provides != new.provides
        return self._report(
            WatchResult(
                plugin_id,
                "rename" if renamed else "reload",
                True,
                f"reloaded {plugin_id} {old.version} → {new.version}"
                + (f" from {root}" if renamed else "")
                + _newly_pending(self.host.manager, new_rec, old)
                + _gone(commands - set(new_rec.commands)),
                version=str(new.version),
                previous=str(old.version),
                seconds=new_rec.load_seconds or time.perf_counter() - started,  # until serving
            )
        ), changed

    async def _load(
        self, plugin_id: str, rec: PluginRecord | None, root: Path, started: float
    ) -> tuple[WatchResult, bool]:
        """Not active (failed, stopped, or new): read it again and load it."""
        manager = self.host.manager
        found = discover_directory(root)
        if found.problems or not found.manifests:
            reason = str(found.problems[0]) if found.problems else f"no manifest in {root}"
            if rec is not None and found.problems:
                manager.note_problem(plugin_id, found.problems[0], rec.manifest)
            return self._report_one(WatchResult(plugin_id, "load", False, reason))
        manifest = found.manifests[0]
        try:
            self.host.registry.replace(manifest)
            loaded = await manager.load_plugin(manifest)
        except PlugbayError as exc:
            return self._report_one(WatchResult(plugin_id, "load", False, str(exc)))
        ok = str(loaded.state) == "active"
        return self._report_one(
            WatchResult(
                plugin_id,
                "load",
                ok,
                f"loaded {plugin_id} {manifest.version}" if ok else (loaded.reason or "failed"),
                version=str(manifest.version),
                seconds=time.perf_counter() - started,
            )
        )

    # ------------------------------------------------------------------ helpers

    def _roots(self) -> dict[Path, str]:
        """Directory → plugin id, for every directory plugin under the watched directories."""
        roots: dict[Path, str] = {}
        store = self.host.store.root if self.host.store is not None else None
        manifests: list[PluginManifest] = list(self.host.registry.manifests())
        # what serves wins over other registered versions of the same directory
        manifests += [r.manifest for r in self.host.manager.list_plugins() if r.manifest]
        for m in manifests:
            if m.origin == "directory" and m.root is not None:
                if store is not None and m.root.is_relative_to(store):
                    continue
                roots[m.root] = m.id
        return roots

    def _in_order(self, touched: dict[str, Path]) -> list[str]:
        """Changed plugins, dependencies before dependents."""
        order = self.host.manager.start_order()
        rank = {pid: i for i, pid in enumerate(order)}
        return sorted(touched, key=lambda pid: (rank.get(pid, len(rank)), pid))

    def _report_one(self, result: WatchResult) -> tuple[WatchResult, bool]:
        return self._report(result), False

    def _report(self, result: WatchResult) -> WatchResult:
        (log.info if result.ok else log.error)("%s", result.message)
        if self.on_change is not None:
            try:
                self.on_change(result)
            except Exception:  # a reporting callback must not stop the watcher
                log.exception("the watch callback failed")
        return result


def _newly_pending(manager: PluginManager, rec: PluginRecord, old: PluginManifest) -> str:
    """What the reloaded version asks for that the old one did not and nobody granted:
    it serves without it, which a plugin author sees only as a denial at run time."""
    from plugbay.runtime.permissions import permissions_of

    try:
        pending = permissions_of(manager, rec)["pending"]
    except Exception:  # only words: never the reason a reload is reported as failed
        log.debug("reading %s's permissions failed", rec.id, exc_info=True)
        return ""
    before = set(old.permissions.asked())
    new = [p for p in pending if p not in before]
    if not new:
        return ""
    grants = "; ".join(f"'plugbay grant {rec.id} {p}'" for p in new)
    return (
        f"; it now asks for {', '.join(new)}, not granted: it runs without "
        f"{'them' if len(new) > 1 else 'it'} until the operator runs {grants}"
    )


def _gone(commands: set[str]) -> str:
    """The commands the old version had and the new one has not (renamed or removed): a
    caller of one is refused from now on, which the author should hear at the save."""
    if not commands:
        return ""
    names = ", ".join(sorted(commands))
    return (
        f"; its command{'s' if len(commands) > 1 else ''} {names} "
        f"{'are' if len(commands) > 1 else 'is'} gone: a caller of "
        f"{'one' if len(commands) > 1 else 'it'} now gets 'has no command'"
    )


def _owner(path: Path, roots: dict[Path, str]) -> Path | None:
    """The deepest plugin directory that holds ``path``."""
    for parent in (path, *path.parents):
        if parent in roots:
            return parent
    return None
