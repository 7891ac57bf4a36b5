"""Starting a resolution plan's plugins concurrently, each once what it needs has started.

Started one after another, a host with many sandboxed plugins spends most of its
start waiting: for the zygote to fork a worker, for the worker to import its
plugin and answer ``initialize``. Those waits overlap here. A plugin starts as
soon as every plugin it needs (``plan.edges``: dependencies, optional ones that
were selected, service providers) has finished starting, whether that ended
active or failed (``PluginManager._start`` then records why it could not
start). Plugins with nothing between them start side by side, at most
``limit`` at a time, so each one's ``initialize`` timeout still measures the
plugin and not a queue of a thousand others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Generator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # plugbay run imports this module before the zygote starts: keep it light
    from plugbay.api.errors import PluginNotFound
    from plugbay.isolation.base import Backend, PluginHandle
    from plugbay.isolation.policy import Placement
    from plugbay.isolation.process import ProcessBackend
    from plugbay.isolation.zygote import Zygote
    from plugbay.isolation.zygote_early import EarlyZygote
    from plugbay.model.manifest import PluginManifest
    from plugbay.model.resolve import ResolutionPlan

log = logging.getLogger("plugbay.host")

__all__ = [
    "CONCURRENT_STARTS",
    "StartAhead",
    "boot_zygote",
    "critical_first",
    "discard_zygote",
    "prepare_storage",
    "probe_storage",
    "spawn_zygote",
    "start_plan",
    "strangers",
    "warm_up",
]

#: plugins starting at once: enough to keep both the zygote and the cores busy
CONCURRENT_STARTS: Final = max(4, 4 * (os.cpu_count() or 1))


async def start_plan(
    plan: ResolutionPlan,
    start: Callable[[str], Awaitable[object]],
    stopping: Callable[[], bool],
    limit: int = CONCURRENT_STARTS,
) -> None:
    """Run ``start(plugin_id)`` for each id of ``plan.order`` once the ids it needs are
    done; none starts after ``stopping()`` says so (those already starting finish)."""
    order = plan.order
    planned = set(order)
    done: dict[str, asyncio.Event] = {pid: asyncio.Event() for pid in order}
    gate = asyncio.Semaphore(limit)

    async def one(plugin_id: str) -> None:
        try:
            for need in plan.edges.get(plugin_id, frozenset()):
                if need in planned:
                    await done[need].wait()
            async with gate:
                if not stopping():
                    await start(plugin_id)
        finally:
            done[plugin_id].set()

    # Created longest chain first: of the plugins whose needs are met at once, the one
    # most others wait for begins first (its worker forks while inline plugins, which
    # hold the loop as they import, start); otherwise in load order.
    tasks = [asyncio.ensure_future(one(pid)) for pid in critical_first(plan)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def critical_first(plan: ResolutionPlan) -> list[str]:
    """``plan.order`` with each plugin before those with a shorter chain of plugins
    waiting on it (transitively); load order among equals. Each plugin still waits for
    what it needs: only which of those ready at the same moment goes first changes."""
    planned = set(plan.order)
    waiting: dict[str, list[str]] = {pid: [] for pid in plan.order}
    for pid in plan.order:
        for need in plan.edges.get(pid, frozenset()):
            if need in planned:
                waiting[need].append(pid)
    chain: dict[str, int] = {}
    for pid in reversed(plan.order):  # load order: whoever waits on pid comes after it
        chain[pid] = 1 + max((chain.get(w, 0) for w in waiting[pid]), default=0)
    rank = {pid: i for i, pid in enumerate(plan.order)}
    return sorted(plan.order, key=lambda pid: (-chain[pid], rank[pid]))


def spawn_zygote() -> EarlyZygote | None:
    """Spawn the process backend's zygote at once, before an event loop runs or the
    host's modules are imported (``plugbay run``'s first moment, once its options are
    read); :func:`boot_zygote` takes it in the loop. The descriptor limit is lifted
    first, as ``Host.open`` would, since the zygote and its workers inherit it. None:
    it could not be spawned (the backend's own start says why, when a worker needs it)."""
    from plugbay.isolation.zygote_early import spawn_zygote as spawn
    from plugbay.runtime.lifecycle import raise_descriptor_limit

    raise_descriptor_limit()
    return spawn()


async def boot_zygote(early: EarlyZygote | None = None) -> Zygote:
    """Start booting a process backend's zygote now, before the host's own modules are
    imported, and return it once its process runs: ``plugbay run`` hands it to its host
    with :func:`warm_up`, so the fresh interpreter's imports overlap the host's imports,
    state and discovery instead of following them. ``early``: the one
    :func:`spawn_zygote` spawned before the loop ran, taken as it is. The descriptor
    limit is lifted first, as ``Host.open`` would, since the zygote and its workers
    inherit it."""
    if early is not None:
        return early.adopt()
    from plugbay.isolation.zygote import Zygote
    from plugbay.runtime.lifecycle import raise_descriptor_limit

    raise_descriptor_limit()
    zygote = Zygote()
    with contextlib.suppress(Exception):  # reported by the first worker that needs it
        await zygote.begin()
    return zygote


def probe_storage() -> asyncio.Future[object]:
    """Find out now, in a thread, whether the kernel can enforce storage quotas here.

    The answer is cached (``isolation.quota.probe``); without this, the first sandboxed
    plugin's start asks, and waits for it: an image made, mounted, filled and removed
    (0.1–0.3 s) on the way to the first active sandboxed plugin. ``plugbay run`` starts
    it beside the zygote, before the host's modules load; await the future before the
    process ends (a probe cut short would leave its test image mounted)."""
    from plugbay.isolation.quota import probe

    return asyncio.ensure_future(asyncio.to_thread(probe))


async def warm_up(backends: Mapping[str, Backend], zygote: Zygote | None = None) -> bool:
    """Start the process backend's zygote now, and return once its process runs, so a
    fresh interpreter importing the worker runtime overlaps what the host does before
    it starts plugins (``plugbay run`` builds its HTTP app meanwhile). ``zygote``, one
    :func:`boot_zygote` started earlier, becomes the backend's when the backend has not
    started its own; whether it did. A zygote that cannot start is reported by the
    first worker that needs it, as without this."""
    from plugbay.isolation.process import ProcessBackend

    backend = backends.get("process")
    if not isinstance(backend, ProcessBackend):
        return False
    adopted = False
    if zygote is not None and zygote.environment is None and backend.zygote.pid is None:
        backend.zygote = zygote
        adopted = True
    with contextlib.suppress(Exception):
        await backend.zygote.begin()
    return adopted


async def discard_zygote(zygote: Zygote) -> None:
    """Stop a zygote :func:`boot_zygote` started that no backend took (the host did not
    open): once it is up, so it sees its control socket close and exits."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(zygote.start(), 30)
    await zygote.stop()


#: storage images made and mounted at once while their plugins wait (the rest of the
#: machine starts plugins)
PREPARING: Final = 2


@dataclass(frozen=True)
class _Waiting:
    """A plugin of the plan that waits for others to start, and what is readied for it."""

    manifest: PluginManifest
    placement: Placement
    data_dir: Path
    needs: frozenset[str]


class StartAhead:
    """What :func:`prepare_storage` readies while plugins wait for others to start: their
    storage images made and mounted, and their workers forked and confined.

    A worker forked ahead runs no plugin code: it waits for the ``Load`` that its
    plugin's own start sends, once every plugin it needs is active (the manager
    takes it with :meth:`claim` then, else starts one as before). It is forked once each
    plugin it needs has a worker or is running (:meth:`launched`), so the zygote forks
    the chain's first plugin before the ones waiting on it.

    Each mount ahead is a hold on the image (``QuotaMounts`` counts them per data
    directory): the plugin's own start takes a second one, which its worker keeps.
    Awaiting this, once the plan's plugins have started, stops the workers nobody
    claimed (a dependency failed, the plugin starts on demand) and lets go of the holds
    taken ahead: an image whose plugin did not start is unmounted then. Should the
    start be cut short, the backend's close stops and unmounts whatever is left."""

    def __init__(self, backend: ProcessBackend, waiting: list[_Waiting]) -> None:
        self._backend = backend
        self._held: list[Path] = []
        self._waiting = {w.manifest.id: w for w in waiting}
        self._ready: dict[str, asyncio.Event] = {}
        self._spawning: set[str] = set()
        self._workers: dict[str, asyncio.Task[PluginHandle | None]] = {}
        self._closed = False
        gate = asyncio.Semaphore(PREPARING)
        mounts: dict[str, asyncio.Future[None]] = {}
        for w in waiting:
            quota = w.placement.limits.get("storage")
            if w.placement.sandboxed and quota is not None:
                mounts[w.manifest.id] = asyncio.ensure_future(self._mount(gate, w, int(quota)))
        self._mounting = asyncio.gather(*mounts.values())
        for w in waiting:
            if w.placement.isolation == "process" and not w.manifest.python_dependencies:
                task = asyncio.ensure_future(self._fork(w, mounts.get(w.manifest.id)))
                self._workers[w.manifest.id] = task

    def _event(self, plugin_id: str) -> asyncio.Event:
        return self._ready.setdefault(plugin_id, asyncio.Event())

    async def _mount(self, gate: asyncio.Semaphore, w: _Waiting, quota: int) -> None:
        async with gate:
            try:
                await asyncio.to_thread(
                    self._backend.quotas.attach, w.data_dir, quota, w.manifest.id
                )
            except Exception as exc:  # its start tries again, and says why it cannot
                log.debug("plugin '%s': storage not mounted ahead: %s", w.manifest.id, exc)
            else:
                self._held.append(w.data_dir)

    async def _fork(self, w: _Waiting, mounted: asyncio.Future[None] | None) -> PluginHandle | None:
        from plugbay.runtime.lifecycle import check_descriptors

        for need in w.needs:
            await self._event(need).wait()
        self._spawning.add(w.manifest.id)
        if mounted is not None:
            await mounted
        try:
            check_descriptors(w.manifest.id)
            return await self._backend.start(w.manifest, w.placement, w.data_dir, None)
        except Exception as exc:  # its own start tries again, and says why it cannot
            log.debug("plugin '%s': worker not forked ahead: %s", w.manifest.id, exc)
            return None
        finally:
            self._event(w.manifest.id).set()

    def launched(self, plugin_id: str) -> None:
        """``plugin_id``'s code is loaded where it runs (or its worker forked): the
        workers of plugins that wait for it may be forked now."""
        self._event(plugin_id).set()

    async def claim(
        self, manifest: PluginManifest, placement: Placement, data_dir: Path
    ) -> PluginHandle | None:
        """The worker forked ahead for this start, when there is one that fits it
        exactly; None: start one as usual."""
        task = self._workers.pop(manifest.id, None)
        if task is None:
            return None
        if manifest.id not in self._spawning:  # still waiting: its start forks its own
            task.cancel()
            return None
        handle = await task
        w = self._waiting[manifest.id]
        fits = w.manifest is manifest and w.placement == placement and w.data_dir == data_dir
        if handle is not None and (not fits or self._closed or handle.alive() is not None):
            handle.release()
            return None
        return handle

    def __await__(self) -> Generator[Any, None, None]:
        return self._release().__await__()

    async def _release(self) -> None:
        self._closed = True
        workers, self._workers = self._workers, {}
        for plugin_id, task in workers.items():
            if plugin_id not in self._spawning:  # waits for a plugin that did not start
                task.cancel()
        for handle in await asyncio.gather(*workers.values(), return_exceptions=True):
            if handle is not None and not isinstance(handle, BaseException):
                handle.release()  # its plugin did not start: no code of it ever ran there
        await self._mounting
        held, self._held = self._held, []
        if held:  # one trip to a thread: the last plugin is active, the host about to say so
            await asyncio.to_thread(self._let_go, held)

    def _let_go(self, held: list[Path]) -> None:
        for data_dir in held:
            self._backend.quotas.detach(data_dir)


def prepare_storage(
    plan: ResolutionPlan,
    backends: Mapping[str, Backend],
    place: Callable[[PluginManifest], Placement],
    data_root: Path,
) -> StartAhead | None:
    """Ready, in the background, what the process plugins that wait for others to start
    will need: their storage images made and mounted, their workers forked and confined
    (no plugin code runs); await the result once the plan's plugins have started
    (:class:`StartAhead`).

    A sandboxed plugin with a storage quota has its data directory on an ext4 image
    (``isolation.quota``), made the first time it starts: the probe of the mechanism
    (an image made, mounted, filled, removed: some 0.3 s) and ``mkfs.ext4``, then
    mounted at each start (a loop device, 5-30 ms); then the zygote forks its worker,
    which confines itself (10-25 ms). A chain of such plugins (``plugbay run``'s
    bundled formatters → processor → irc) paid them one after another, each waiting
    for the one before; here they are done while the chain's first plugins start, and
    each link's start only loads and initializes its plugin. A plugin nothing waits
    for is not concerned (its start does them at once, as before); nor is one that
    starts on demand, or has its own Python environment."""
    from plugbay.isolation.process import ProcessBackend

    backend = backends.get("process")
    if not isinstance(backend, ProcessBackend):
        return None
    planned = set(plan.order)
    waiting: list[_Waiting] = []
    # the longest chain first: its first link's image is mounted (and worker forked) first
    for plugin_id in critical_first(plan):
        needs = frozenset(n for n in plan.edges.get(plugin_id, frozenset()) if n in planned)
        manifest = plan.selected[plugin_id]
        if not needs or manifest.activation:  # starts at once, or maybe never
            continue
        try:
            placement = place(manifest)
        except Exception:  # judged again, and reported, when the plugin starts
            continue
        if placement.isolation == "process":
            waiting.append(_Waiting(manifest, placement, data_root / plugin_id, needs))
    if not waiting:
        return None
    return StartAhead(backend, waiting)


def strangers(named: Mapping[str, Iterable[str]], known: Collection[str]) -> list[PluginNotFound]:
    """The plugin ids the host was told about (``named``: where → ids: ``Host(load=...)``,
    ``Host(config=...)``, the config file's ``[plugins.ID]`` tables) that no plugin found
    has: each one a problem with the closest ids, where a typo was ignored without a word
    (nothing loaded, or a config that never applied)."""
    from plugbay.api.errors import PluginNotFound, did_you_mean

    return [
        PluginNotFound(
            f"'{pid}' is not the id of any plugin found",
            where=where,
            hint=did_you_mean(pid, known) or "'plugbay list' shows the plugins found",
            details={"plugin": pid},
        )
        for where, ids in named.items()
        for pid in ids
        if pid not in known
    ]
