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
from collections.abc import Awaitable, Callable, Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # plugbay run imports this module before the zygote starts: keep it light
    from plugbay.isolation.base import Backend
    from plugbay.isolation.policy import Placement
    from plugbay.isolation.process import ProcessBackend
    from plugbay.isolation.zygote import Zygote
    from plugbay.isolation.zygote_early import EarlyZygote
    from plugbay.model.manifest import PluginManifest
    from plugbay.model.resolve import ResolutionPlan

log = logging.getLogger("plugbay.host")

__all__ = [
    "CONCURRENT_STARTS",
    "StorageAhead",
    "boot_zygote",
    "critical_first",
    "discard_zygote",
    "prepare_storage",
    "probe_storage",
    "spawn_zygote",
    "start_plan",
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


class StorageAhead:
    """The storage images :func:`prepare_storage` mounts while their plugins wait.

    Each mount ahead is a hold on the image (``QuotaMounts`` counts them per data
    directory): the plugin's own start takes a second one, which its worker keeps.
    Awaiting this, once the plan's plugins have started, lets go of the holds taken
    ahead: an image whose plugin did not start (a dependency failed, it starts on
    demand) is unmounted then; one whose plugin runs stays mounted. Should the start be
    cut short, the backend's close unmounts whatever is left."""

    def __init__(self, backend: ProcessBackend, waiting: list[tuple[Path, int, str]]) -> None:
        self._backend = backend
        self._held: list[Path] = []
        gate = asyncio.Semaphore(PREPARING)

        async def one(data_dir: Path, quota: int, plugin_id: str) -> None:
            async with gate:
                try:
                    await asyncio.to_thread(backend.quotas.attach, data_dir, quota, plugin_id)
                except Exception as exc:  # its start tries again, and says why it cannot
                    log.debug("plugin '%s': storage image not mounted ahead: %s", plugin_id, exc)
                else:
                    self._held.append(data_dir)

        self._mounting = asyncio.ensure_future(asyncio.gather(*(one(*w) for w in waiting)))

    def __await__(self) -> Generator[Any, None, None]:
        return self._release().__await__()

    async def _release(self) -> None:
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
) -> StorageAhead | None:
    """Make and mount, in the background, the storage images of the sandboxed plugins
    that wait for others to start, so that their own start finds them mounted; await
    the result once the plan's plugins have started (:class:`StorageAhead`).

    A sandboxed plugin with a storage quota has its data directory on an ext4 image
    (``isolation.quota``), made the first time it starts: the probe of the mechanism
    (an image made, mounted, filled, removed: some 0.3 s) and ``mkfs.ext4``, then
    mounted at each start (a loop device, 5-30 ms). A chain of such plugins
    (``plugbay run``'s bundled formatters → processor → irc) paid them one after
    another, each waiting for the one before. Here they are made and mounted while the
    chain's first plugins start; a plugin nothing waits for is not concerned (its start
    mounts its image at once, as before). Nothing runs a plugin's code here."""
    from plugbay.isolation.process import ProcessBackend

    backend = backends.get("process")
    if not isinstance(backend, ProcessBackend):
        return None
    planned = set(plan.order)
    waiting: list[tuple[Path, int, str]] = []
    for plugin_id in plan.order:
        if not any(need in planned for need in plan.edges.get(plugin_id, frozenset())):
            continue
        try:
            placement = place(plan.selected[plugin_id])
        except Exception:  # judged again, and reported, when the plugin starts
            continue
        quota = placement.limits.get("storage")
        if placement.sandboxed and quota is not None:
            waiting.append((data_root / plugin_id, int(quota), plugin_id))
    if not waiting:
        return None
    return StorageAhead(backend, waiting)
