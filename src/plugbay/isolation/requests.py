"""The requests a host has in flight on one worker's channel.

A request is a future, resolved straight from the channel's ``data_received``
when its ``Reply`` or ``Fail`` arrives: no task per call, the caller's own task
awaits it. Its deadline is kept beside it, and one watchdog per channel (a task
that exists only while requests are in flight, waking at the soonest deadline
and at least every 0.25 s) expires those past it, instead of a timer per call,
which costs more than the rest of the host's side of a call.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any, Final

from plugbay.isolation import frames
from plugbay.isolation.sampling import NOT_CALLS

__all__ = ["Requests"]

#: the watchdog looks at the deadlines at least this often, and at most every 5 ms
_LOOK_EVERY: Final = 0.25
_LOOK_AT_MOST: Final = 0.005


class Requests:
    """Ids, futures and deadlines of the requests in flight on one channel.

    ``expire(request, what)`` is called for a request past its deadline (it is already
    out of the deadlines, still in ``pending``): the handle cancels it in the worker and
    fails it."""

    __slots__ = ("_expire", "_ids", "_watchdog", "inflight", "name", "pending")

    def __init__(self, expire: Callable[[int, str], None], name: str = "") -> None:
        #: request → the future its caller awaits
        self.pending: dict[int, asyncio.Future[Any]] = {}
        #: request → (loop-time start, what the monitor calls it, loop-time deadline,
        #: what a timeout report calls it)
        self.inflight: dict[int, tuple[float, str, float, str]] = {}
        self.name = name
        self._ids = itertools.count(1)
        self._expire = expire
        self._watchdog: asyncio.Task[None] | None = None

    def next_id(self) -> int:
        return next(self._ids)

    def open(
        self,
        loop: asyncio.AbstractEventLoop,
        request: int,
        timeout: float,
        what: str,
        label: str,
    ) -> tuple[asyncio.Future[Any], float]:
        """The future of a new request, and the loop time it started."""
        future = loop.create_future()
        self.pending[request] = future
        now = loop.time()
        self.inflight[request] = (now, label, now + timeout, what)
        if self._watchdog is None:
            self._watchdog = loop.create_task(self._watch(loop), name=self.name)
        return future, now

    def open_many(
        self,
        loop: asyncio.AbstractEventLoop,
        command: str,
        params: Sequence[dict[str, Any]],
        timeout: float,
    ) -> tuple[list[int], list[asyncio.Future[Any]], list[frames.Message]]:
        """A batch of calls of ``command``: their ids, futures and frames."""
        requests: list[int] = []
        futures: list[asyncio.Future[Any]] = []
        messages: list[frames.Message] = []
        now = loop.time()
        entry = (now, command, now + timeout, command)  # one deadline for the whole batch
        pending, inflight, ids = self.pending, self.inflight, self._ids
        for p in params:
            request = next(ids)
            future = pending[request] = loop.create_future()
            inflight[request] = entry
            requests.append(request)
            futures.append(future)
            messages.append(frames.Call(request, command, dict(p), getattr(p, "strict", True)))
        if self._watchdog is None and requests:
            self._watchdog = loop.create_task(self._watch(loop), name=self.name)
        return requests, futures, messages

    def close(self, request: int) -> None:
        """The request is over (given up by its caller): forget it."""
        self.pending.pop(request, None)
        self.inflight.pop(request, None)

    def answer(self, request: int, value: Any) -> None:
        """Request ``request`` is answered (the hot path: a ``Reply``); it is over."""
        self.inflight.pop(request, None)
        future = self.pending.pop(request, None)
        if future is not None and not future.done():
            future.set_result(value)

    def settle(self, request: int, value: Any = None, error: BaseException | None = None) -> None:
        """Request ``request`` is over: answered, failed, expired or its worker gone."""
        self.inflight.pop(request, None)
        future = self.pending.pop(request, None)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    async def answers(
        self, requests: list[int], futures: list[asyncio.Future[Any]], cancel: Callable[[int], None]
    ) -> list[Any]:
        """Each request's result, or the exception it failed with, in order (a batch: its
        futures are awaited one after the other, so the caller wakes once per read, not
        once per answer). A caller that gives up cancels those still running."""
        out: list[Any] = []
        try:
            for future in futures:
                try:
                    out.append(await future)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # that call's failure is its item's answer
                    out.append(exc)
        except asyncio.CancelledError:
            for request in requests:  # not answered yet (the one awaited is cancelled, so done)
                if self.pending.pop(request, None) is not None:
                    cancel(request)
            raise
        finally:
            for request in requests:
                self.inflight.pop(request, None)
        return out

    def running(self) -> list[tuple[float, str]]:
        """(loop-time start, command) of each call in flight, for the monitor."""
        return [(v[0], v[1]) for v in list(self.inflight.values()) if v[1] not in NOT_CALLS]

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()

    async def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self.inflight:
                now = loop.time()
                soonest = now + _LOOK_EVERY
                for request, (_start, _label, due, what) in list(self.inflight.items()):
                    if due <= now:
                        del self.inflight[request]
                        self._expire(request, what)
                    elif due < soonest:
                        soonest = due
                await asyncio.sleep(max(_LOOK_AT_MOST, soonest - now))
        finally:
            self._watchdog = None
