"""System events: delivered to system plugins in priority order, off the caller's path.

``emit`` never blocks and never raises: events go on a bounded queue that one
task drains. When the queue is full the oldest event is dropped and counted,
and the drop is logged, so a slow subscriber cannot stall the host.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from plugbay.api import SystemEvent

__all__ = ["EventBus", "Subscriber"]

log = logging.getLogger("plugbay.events")


@dataclass(slots=True)
class Subscriber:
    plugin_id: str
    priority: int
    hooks: tuple[str, ...]
    handler: Callable[[SystemEvent], Awaitable[None]]

    def wants(self, event: SystemEvent) -> bool:
        return not self.hooks or any(event.matches(h) for h in self.hooks)


class EventBus:
    def __init__(self, *, maxsize: int = 10_000, handler_timeout: float = 5.0) -> None:
        self._subscribers: list[Subscriber] = []
        self._queue: collections.deque[SystemEvent] = collections.deque()
        self._maxsize = maxsize
        self._timeout = handler_timeout
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._held = False
        self.dropped = 0
        self.delivered = 0
        self.failures = 0
        self.counts: collections.Counter[str] = collections.Counter()
        #: events delivered to each subscribing plugin
        self.delivered_to: collections.Counter[str] = collections.Counter()

    def subscribe(self, subscriber: Subscriber) -> None:
        self.unsubscribe(subscriber.plugin_id)
        self._subscribers.append(subscriber)
        self._subscribers.sort(key=lambda s: (s.priority, s.plugin_id))

    def listen(
        self,
        name: str,
        priority: int,
        kinds: tuple[str, ...],
        handler: Callable[[SystemEvent], Awaitable[None]],
    ) -> None:
        """Subscribe ``handler`` under ``name`` to the events matching ``kinds`` (the
        host's own listeners, such as the monitor, which does not import this module)."""
        self.subscribe(Subscriber(name, priority, kinds, handler))

    def unsubscribe(self, plugin_id: str) -> None:
        self._subscribers = [s for s in self._subscribers if s.plugin_id != plugin_id]

    def hold(self) -> None:
        """Queue events without delivering them, until :meth:`release` (the host holds them
        while it starts plugins, so a system plugin started late still sees every event)."""
        self._held = True

    def release(self) -> None:
        self._held = False
        self._wakeup.set()

    def emit(self, kind: str, source: str = "host", **data: object) -> None:
        self.publish(SystemEvent(kind, source, dict(data)))

    def publish(self, event: SystemEvent) -> None:
        self.counts[event.kind] += 1
        if len(self._queue) >= self._maxsize:
            lost = self._queue.popleft()
            self.dropped += 1
            log.warning("event queue full (%d): dropped %s", self._maxsize, lost.kind)
        self._queue.append(event)
        self._idle.clear()
        self._wakeup.set()
        if self._task is None:
            with contextlib.suppress(RuntimeError):  # no loop yet: delivered once it runs
                self._task = asyncio.get_running_loop().create_task(
                    self._run(), name="plugbay-events"
                )

    async def drain(self) -> None:
        """Wait until every queued event has been delivered."""
        if self._queue and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="plugbay-events")
        await self._idle.wait()

    async def close(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            while self._queue and not self._held:
                event = self._queue.popleft()
                for sub in list(self._subscribers):
                    if sub.wants(event):
                        await self._deliver(sub, event)
            if not self._queue:
                self._idle.set()
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _deliver(self, sub: Subscriber, event: SystemEvent) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await sub.handler(event)
            self.delivered += 1
            self.delivered_to[sub.plugin_id] += 1
        except Exception as exc:  # a subscriber's failure is its own, never the host's
            self.failures += 1
            log.warning(
                "plugin '%s' failed handling event %s: %s: %s",
                sub.plugin_id,
                event.kind,
                type(exc).__name__,
                exc or "timed out",
            )
