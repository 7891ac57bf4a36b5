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
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final

from plugbay.model.resolve import ResolutionPlan

if TYPE_CHECKING:
    from plugbay.isolation.base import Backend

__all__ = ["CONCURRENT_STARTS", "start_plan", "warm_up"]

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

    # Created in load order, so plugins with nothing between them begin in that order.
    tasks = [asyncio.ensure_future(one(pid)) for pid in order]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def warm_up(backends: Mapping[str, Backend]) -> None:
    """Start the process backend's zygote now, and return once its process runs, so a
    fresh interpreter importing the worker runtime overlaps what the host does before
    it starts plugins (``plugbay run`` builds its HTTP app meanwhile). A zygote that
    cannot start is reported by the first worker that needs it, as without this."""
    from plugbay.isolation.process import ProcessBackend

    backend = backends.get("process")
    if isinstance(backend, ProcessBackend):
        with contextlib.suppress(Exception):
            await backend.zygote.begin()
