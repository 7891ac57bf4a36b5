"""The Ray cluster's head, watched from the host: when it goes, the host says so and carries on.

The head runs the cluster's control store (GCS). Without it Ray can neither start,
move nor end an actor, and every control call the host would make (placing a
plugin, ending its actor, releasing its placement group, reading its node's
figures) blocks inside Ray until Ray gives up; a driver (the host) is even ended
by Ray once the head has been gone for ``gcs_rpc_server_reconnect_timeout_s``
(60 s by default). So the host watches the head itself, with a TCP connect to the
GCS port every half second (no Ray call; a knock unanswered for 2 s is a miss):
after three misses in a row it declares the head lost, and the Ray backend

* fails every Ray plugin's calls in flight at once with ``PluginCrashed`` naming
  the head, and closes its channel (its worker ends; its node ends its actor
  when the node itself gives up on the head);
* answers a start (the supervisor's restart, ``plugbay enable``) at once with a
  ``PluginLoadError`` saying the head is unreachable (never a wait);
* touches Ray no more: figures, stacks and releases answer from the host, and
  leaving the cluster when the host stops is bounded.

Plugins inline and in local workers never depended on the head and keep serving.
The host's process is kept from Ray's own ending (``keep_driver``). What the
operator does next is in ``docs/scale-out.md`` ("When the head goes").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from plugbay.api.errors import PluginCrashed, PluginLoadError

if TYPE_CHECKING:
    from plugbay.isolation.ray import RayHandle

__all__ = [
    "HeadWatch", "bootstrap_address", "fail_for_lost_head", "head_unreachable", "keep_driver",
    "refuse_without_head",
]  # fmt: skip

log = logging.getLogger("plugbay.isolation.ray")

#: Ray's own setting: how long a driver waits for a lost head before Ray ends its process
_RECONNECT: Final = "RAY_gcs_rpc_server_reconnect_timeout_s"


def head_unreachable(address: str, *, tries: int = 2, timeout: float = 3.0) -> str | None:
    """None when the cluster's head (``[ray] address``: "auto" or "HOST:PORT") takes a
    TCP connection, else what went wrong, said with its address. Asked before joining:
    with the driver kept (``keep_driver``), Ray itself would wait for an absent head for a
    year, and the host's start with it. Blocking (the backend calls it in a thread)."""
    where = bootstrap_address(address)
    if where is None:  # "auto" found nothing: Ray's own error says so at once
        return None
    host, _, port = where.rpartition(":")
    problem = ""
    for attempt in range(tries):
        if attempt:
            time.sleep(0.5)
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            return None
        except TimeoutError:
            problem = f"no answer within {timeout:g} s"
        except (OSError, ValueError) as exc:
            problem = getattr(exc, "strerror", None) or str(exc)
    shown = where if where == address else f"{where} (found for {address!r})"
    return f"the Ray cluster's head at {shown} does not answer: {problem} ({tries} tries)"


def bootstrap_address(address: str) -> str | None:
    """``address`` as HOST:PORT ("auto": the cluster Ray itself would join from here)."""
    if address != "auto":
        return address
    try:
        from ray._private import services

        found = services.canonicalize_bootstrap_address(address)
    except Exception:  # Ray's own lookup; ray.init reports what it finds wrong
        return None
    return str(found) if found else None


def keep_driver() -> None:
    """A lost head must not end the host's process: unless the operator set Ray's own
    setting, the driver waits for the head for a year (the host watches it itself).
    Read by Ray when this process joins a cluster, so it is set before ``ray.init``."""
    os.environ.setdefault(_RECONNECT, str(365 * 86400))


class HeadWatch:
    """Connects to the head's GCS port every ``interval``; ``misses`` failures in a row
    call ``on_lost(reason)`` once."""

    def __init__(
        self,
        gcs_address: str,
        on_lost: Callable[[str], None],
        *,
        interval: float = 0.5,
        misses: int = 3,
        timeout: float = 2.0,
    ) -> None:
        host, _, port = gcs_address.rpartition(":")
        self.address = gcs_address
        self._host = host.strip("[]")
        self._port = int(port)
        self._on_lost = on_lost
        self.interval = interval
        self.misses = misses
        self.timeout = timeout
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="plugbay-ray-head")

    async def _run(self) -> None:
        missed = 0
        last = ""
        while True:
            problem = await self.knock()
            if problem is None:
                missed = 0
            else:
                missed += 1
                last = problem
                if missed >= self.misses:
                    break
            await asyncio.sleep(self.interval)
        reason = (
            f"the Ray cluster's head (GCS at {self.address}) is unreachable: {last} "
            f"({self.misses} tries, {self.interval:g} s apart)"
        )
        log.error("%s; the Ray plugins stop, the other plugins keep serving", reason)
        self._on_lost(reason)

    async def knock(self) -> str | None:
        """None when the GCS port takes a connection now, else what went wrong."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(self._host, self._port)
        except TimeoutError:
            return f"no answer within {time.monotonic() - started:.1f} s"
        except OSError as exc:
            return exc.strerror or str(exc)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


async def refuse_without_head(
    watch: HeadWatch | None, lost: tuple[str, float] | None, plugin: str
) -> None:
    """Placing a plugin asks the head, and Ray blocks while it is gone: a start is refused
    at once when the head is lost, or does not take a connection now."""
    problem = lost[0] if lost is not None else None
    if problem is None and watch is not None:
        knocked = await watch.knock()
        if knocked is not None:  # once more: a busy moment is not a lost head
            await asyncio.sleep(watch.interval)
            knocked = await watch.knock()
        if knocked is not None:
            problem = f"the Ray cluster's head (GCS at {watch.address}) does not answer: {knocked}"
    if problem is not None:
        raise PluginLoadError(
            problem, plugin=plugin,
            hint="start the cluster's head again, then restart this host (plugins inline "
            "and in local workers keep serving meanwhile)",
        )  # fmt: skip


def fail_for_lost_head(handle: RayHandle, reason: str) -> None:
    """The head is lost: the plugin's calls in flight fail now, its channel closes (its
    worker ends), and its node ends what is left of it."""
    handle._crashed(
        reason,
        error=PluginCrashed(
            f"it ran on Ray node {handle.node[:12]} and {reason}",
            plugin=handle.manifest.id,
            hint="start the cluster's head again, then restart this host; plugins "
            "inline and in local workers keep serving",
            details={"node": handle.node, "pid": handle.pid},
        ),
    )
    if handle._channel is not None:
        handle._channel.close()
