"""System events: delivered to system plugins in priority order, off the caller's path.

``emit`` never blocks and never raises: events go on a bounded queue that one
task drains. When the queue is full the oldest event is dropped and counted,
and the drop is logged, so a slow subscriber cannot stall the host. Drops and a
subscriber's failures are logged at the first, then at most once a minute with how
many went unsaid (``runtime.log_pace``): a flood does not flood the log, a trickle
is still heard, and what is unsaid when a subscriber leaves or the host stops is said
then (a trickle that ends within the minute is not kept unsaid for ever). Only the
full queue's drops are ``dropped`` (``plugbay_events_dropped_total``).

A subscriber that runs past its time (5 s) on an event is cut short and falls
behind: it gets its next events in a lane of its own, in their order, while the
others get theirs without waiting for it, since one that hangs would otherwise hold
every event, and the host's stop, 5 s each. Once it has caught up, in time, it is
back in line. A host's stop does not wait for a lane. A lane holds :data:`LANE_SIZE`
events, older ones dropped and counted for it (``dropped_for``, in ``/metrics``); its
time-outs are said like its failures (the first, then at most once a minute).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plugbay.api import SystemEvent
from plugbay.api.errors import ParameterError
from plugbay.runtime.log_pace import LogPace

if TYPE_CHECKING:
    from plugbay.runtime.serving import Serving

__all__ = ["EventBus", "Subscriber"]

log = logging.getLogger("plugbay.events")


@dataclass(slots=True)
class Subscriber:
    plugin_id: str
    priority: int
    hooks: tuple[str, ...]
    handler: Callable[[SystemEvent], Awaitable[None]]
    #: the events it has yet to get since it ran past its time (None: it is in line)
    behind: collections.deque[SystemEvent] | None = None
    lane: asyncio.Task[None] | None = None
    #: when its failures, its time-outs and the drops in its lane are said in the log
    failures_said: LogPace = field(default_factory=LogPace)
    late_said: LogPace = field(default_factory=LogPace)
    drops_said: LogPace = field(default_factory=LogPace)

    def wants(self, event: SystemEvent) -> bool:
        return not self.hooks or any(event.matches(h) for h in self.hooks)


#: the most events a subscriber that fell behind is kept waiting for; older ones drop
LANE_SIZE = 1_000


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
        #: events dropped for each subscribing plugin while it was behind (its lane full)
        self.dropped_for: collections.Counter[str] = collections.Counter()
        #: the loop of the host this bus is the bus of (set by its manager): a drain
        #: awaited on another loop is refused there, saying how to reach the host
        self.serving: Serving | None = None
        #: the monotonic clock the log's pace is read on (on a failure path only)
        self.clock: Callable[[], float] = time.monotonic
        self._drops_said = LogPace()

    def subscribe(self, subscriber: Subscriber) -> None:
        self.unsubscribe(subscriber.plugin_id)
        subscriber.behind = subscriber.lane = None
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
        host's own listeners, such as the monitor, which does not import this module).
        Refused, naming the argument, when ``kinds`` is not a tuple of kinds or
        ``handler`` is not an ``async def``: either would fail, unseen, at each event."""
        if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds):
            raise ParameterError(
                f"kinds must be a tuple of event kinds, not {kinds!r}",
                where=f"events.listen({name!r}, ..., kinds=...)",
                hint=f"write kinds=({kinds!r},) for one kind, or () for every kind"
                if isinstance(kinds, str)
                else "write kinds=('plugin.*', 'host.started'), or () for every kind",
            )
        if not (
            inspect.iscoroutinefunction(handler)
            or inspect.iscoroutinefunction(type(handler).__call__)  # an object's async __call__
        ):
            raise ParameterError(
                f"the handler must be an async def taking the event, not {handler!r}",
                where=f"events.listen({name!r}, ..., handler=...)",
                hint="write it 'async def handler(event: SystemEvent) -> None:'; the host "
                "awaits it on its loop, so keep it quick",
            )
        self.subscribe(Subscriber(name, priority, tuple(kinds), handler))

    def unsubscribe(self, plugin_id: str) -> None:
        for sub in self._subscribers:
            if sub.plugin_id == plugin_id:
                if sub.lane is not None:
                    sub.lane.cancel()
                _say_unsaid(sub)
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
            unsaid = self._drops_said.due(self.clock())
            if unsaid is not None:
                log.warning("event queue full (%d): dropped %s%s",
                            self._maxsize, lost.kind, _unsaid(unsaid))  # fmt: skip
        self._queue.append(event)
        self._idle.clear()
        self._wakeup.set()
        if self._task is None:
            with contextlib.suppress(RuntimeError):  # no loop yet: delivered once it runs
                self._task = asyncio.get_running_loop().create_task(
                    self._run(), name="plugbay-events"
                )

    async def drain(self) -> None:
        """Wait until every queued event has been delivered. On the host's loop only
        (its delivery runs there): awaited on another, refused with HostStateError."""
        if self.serving is not None:
            self.serving.check_loop("drain the host's events")
        if self._queue and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="plugbay-events")
        await self._idle.wait()

    async def close(self) -> None:
        await self.drain()
        for sub in self._subscribers:  # a lane that fell behind is not waited for
            if sub.lane is not None:
                sub.lane.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sub.lane
                left = len(sub.behind or ())
                if left:
                    log.warning("listener '%s' missed %d events: the host stopped while "
                                "it was behind", sub.plugin_id, left)  # fmt: skip
                sub.behind = sub.lane = None
            _say_unsaid(sub)
        unsaid = self._drops_said.settle()
        if unsaid:
            log.warning("event queue full (%d): %d more dropped since the last line said, "
                        "not logged until now (the host stopped)", self._maxsize, unsaid)  # fmt: skip
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
                    if not sub.wants(event):
                        continue
                    if sub.behind is not None:  # it ran past its time: it waits in its lane
                        self._queue_behind(sub, event)
                    elif not await self._deliver(sub, event):
                        self._fall_behind(sub)
            if not self._queue:
                self._idle.set()
            self._wakeup.clear()
            await self._wakeup.wait()

    def _fall_behind(self, sub: Subscriber) -> None:
        sub.behind = collections.deque()  # its next events wait for it in its lane

    def _queue_behind(self, sub: Subscriber, event: SystemEvent) -> None:
        assert sub.behind is not None
        if len(sub.behind) >= LANE_SIZE:
            lost = sub.behind.popleft()
            self.dropped_for[sub.plugin_id] += 1
            unsaid = sub.drops_said.due(self.clock())
            if unsaid is not None:
                log.warning("listener '%s' is %d events behind: dropped %s for it%s",
                            sub.plugin_id, LANE_SIZE, lost.kind, _unsaid(unsaid))  # fmt: skip
        sub.behind.append(event)
        if sub.lane is None:
            sub.lane = asyncio.get_running_loop().create_task(
                self._lane(sub), name=f"plugbay-events-{sub.plugin_id}"
            )

    async def _lane(self, sub: Subscriber) -> None:
        """The events of a subscriber that fell behind, one after the other, each within
        its time; back in line once it has them all, the last one in time."""
        in_time = False
        while sub.behind:
            in_time = await self._deliver(sub, sub.behind.popleft())
        sub.lane = None
        if in_time:
            sub.behind = None

    async def _deliver(self, sub: Subscriber, event: SystemEvent) -> bool:
        """Whether the subscriber handled it in time (a failure is its own, and logged)."""
        bound = asyncio.timeout(self._timeout)
        try:
            async with bound:
                await sub.handler(event)
            self.delivered += 1
            self.delivered_to[sub.plugin_id] += 1
        except Exception as exc:  # a subscriber's failure is its own, never the host's
            self.failures += 1
            if isinstance(exc, TimeoutError) and bound.expired():  # its time ran out
                unsaid = sub.late_said.due(self.clock())
                if unsaid is not None:
                    log.warning(
                        "listener '%s' took more than %g s on event %s: cut short; it gets "
                        "its next events in a lane of its own, the other listeners without "
                        "waiting for it. Keep a listener quick: hand slow work to a task of "
                        "its own%s",
                        sub.plugin_id,
                        self._timeout,
                        event.kind,
                        _unsaid(unsaid, "cut short"),
                    )
                return False
            unsaid = sub.failures_said.due(self.clock())
            if unsaid is not None:
                log.warning(
                    "listener '%s' failed handling event %s: %s: %s%s",
                    sub.plugin_id,
                    event.kind,
                    type(exc).__name__,
                    exc,
                    _unsaid(unsaid, "failed"),
                    exc_info=exc,
                )
        return True


def _say_unsaid(sub: Subscriber) -> None:
    """What a subscriber's paced lines have not said yet, said as it leaves (its plugin
    stops, the host stops): a trickle that ended within the minute is heard too."""
    for pace, what in (
        (sub.late_said, "cut short"),
        (sub.failures_said, "failed"),
        (sub.drops_said, "dropped for it"),
    ):
        unsaid = pace.settle()
        if unsaid:
            log.warning("listener '%s': %d more %s since the last line said, not logged until "
                        "now (it stopped listening)", sub.plugin_id, unsaid, what)  # fmt: skip


def _unsaid(count: int, what: str = "dropped") -> str:
    """What a paced log line adds: how many went unsaid since the line before."""
    return f" ({count} more {what} since the last one said, not logged)" if count else ""
