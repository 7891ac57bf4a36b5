"""The storage quota of a sandboxed plugin on Ray, enforced by the kernel where its data lives.

A plugin's data directory is the host's (``docs/scale-out.md``: every node sees the
host's state directory at the same path). So its quota is enforced where the data
is kept, exactly as for a local worker (``isolation.quota``): the host loop-mounts
the plugin's ext4 image at the data directory before the node's agent forks the
worker, and the kernel refuses the write past the quota with ``ENOSPC``, whichever
node the write comes from. A network filesystem carries that answer to the node
(NFS: export the state directory with ``crossmnt`` so the mount is seen through
it). One mount per data directory, counted with the local workers' (one
:class:`~plugbay.isolation.quota.QuotaMounts`), so a plugin moving between nodes,
or between this machine and Ray in a reload, never has its image mounted twice.

The image is let go only once the worker on its node has ended (its agent says
so, or the agent itself is gone with its node): an image is never mounted again
while a worker of the plugin may still write into the previous mount.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from plugbay.isolation._process_parts import bound_file_size
from plugbay.isolation.quota import QuotaStatus

if TYPE_CHECKING:
    from plugbay.isolation.policy import Placement
    from plugbay.isolation.process import ProcessBackend
    from plugbay.isolation.ray import RayHandle
    from plugbay.model.manifest import PluginManifest

__all__ = ["release_after_exit", "release_when_ended", "storage_for"]

#: how long the host waits for a node's agent to say a worker ended, before letting go
_WAIT_FOR_EXIT: Final = 15.0


async def storage_for(
    local: ProcessBackend | None,
    manifest: PluginManifest,
    placement: Placement,
    data_dir: Path | None,
    request: dict[str, Any],
) -> tuple[QuotaStatus, Callable[[], None] | None]:
    """What enforces a sandboxed worker's storage quota, and how to let its image go:
    the host's mount (with the local workers', ``local.quotas``), else sampled, with
    every file bounded by the quota (``request`` is changed so)."""
    storage = QuotaStatus(False, "no storage quota applies")
    if "sandbox" in request and local is not None:
        storage = await local._enforce_storage(manifest, placement, data_dir)
    quota = placement.limits.get("storage")
    if "sandbox" in request and quota is not None and not storage.enforced:
        bound_file_size(request, int(quota))
    if storage.enforced and data_dir is not None and local is not None:
        quotas, where = local.quotas, data_dir
        return storage, lambda: quotas.detach(where)
    return storage, None


async def release_after_exit(agent: Any, pid: int, release: Callable[[], None]) -> None:
    """Call ``release`` (in a thread) once worker ``pid`` of ``agent`` has ended."""
    deadline = time.monotonic() + _WAIT_FOR_EXIT
    while agent is not None and time.monotonic() < deadline:
        try:
            ended = await asyncio.wait_for(agent.exit_status.remote(pid, 1.0), 3.0)
        except TimeoutError:
            continue  # the agent is busy: ask again
        except Exception:  # the agent is gone, and the worker with it
            break
        if ended is not None:
            break
    with contextlib.suppress(Exception):  # a failed unmount is logged by the quota module
        await asyncio.to_thread(release)


def release_when_ended(handle: RayHandle) -> None:
    """Let the plugin's storage image go once its worker has ended (when it has one)."""
    release, handle.on_exited = handle.on_exited, None
    if release is None:
        return
    # how it ended is known (diagnosed), or nobody can be asked: let go at once
    ended = handle._exit is not None and handle._exit.done()
    agent = handle._agent if handle.backend.head_lost is None and not ended else None
    try:
        task = asyncio.get_running_loop().create_task(
            release_after_exit(agent, handle.pid, release)
        )
    except RuntimeError:  # no loop any more (the host is gone): at once
        release()
        return
    handle._tasks.add(task)
    task.add_done_callback(handle._tasks.discard)
