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
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from plugbay.isolation import frames
from plugbay.isolation.sampling import NOT_CALLS

__all__ = ["Batch", "Requests"]

#: calls given up on kept at most, per channel (``Requests.abandoned``)
_ABANDONED_KEPT: Final = 1024
#: the watchdog looks at the deadlines at least this often, and at most every 5 ms
_LOOK_EVERY: Final = 0.25
_LOOK_AT_MOST: Final = 0.005


class Batch:
    """The calls of one ``call_many``: ids ``first`` to ``first + n - 1``; each answer
    (a value, or the exception its call failed with) lands at its place in ``results``,
    and the last resolves ``future``, which the caller awaits: one future, one wake-up."""

    __slots__ = ("first", "future", "left", "results")

    def __init__(self, loop: asyncio.AbstractEventLoop, first: int, n: int) -> None:
        self.first = first
        self.left = n
        self.results: list[Any] = [None] * n
        self.future: asyncio.Future[list[Any]] = loop.create_future()

    def put(self, request: int, value: Any) -> None:
        self.results[request - self.first] = value
        self.left -= 1
        if not self.left and not self.future.done():
            self.future.set_result(self.results)


class Requests:
    """Ids, futures and deadlines of the requests in flight on one channel.

    ``expire(request, what)`` is called for a request past its deadline (it is already
    out of the deadlines, still in ``pending``): the handle cancels it in the worker and
    fails it."""

    __slots__ = (
        "_expire", "_ids", "_watchdog", "abandoned", "batched", "inflight", "name", "pending",
    )  # fmt: skip

    def __init__(self, expire: Callable[[int, str], None], name: str = "") -> None:
        #: request → the future its caller awaits
        self.pending: dict[int, asyncio.Future[Any]] = {}
        #: request → the batch it is one call of (``open_many``)
        self.batched: dict[int, Batch] = {}
        #: request → (loop-time start, what the monitor calls it, loop-time deadline,
        #: what a timeout report calls it)
        self.inflight: dict[int, tuple[float, str, float, str]] = {}
        #: requests their callers gave up on, as ``inflight`` kept them, until their answer
        #: or their deadline: the worker may still be running them (``heartbeat.held_by``)
        self.abandoned: dict[int, tuple[float, str, float, str]] = {}
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
        label: str,
        what: str | None = None,
    ) -> tuple[asyncio.Future[Any], float]:
        """The future of a new request, and the loop time it started (``label``: what the
        monitor calls it; ``what``: a timeout report, the label when not given)."""
        future = loop.create_future()
        self.pending[request] = future
        now = loop.time()
        self.inflight[request] = (now, label, now + timeout, what or label)
        if self._watchdog is None:
            self._watchdog = loop.create_task(self._watch(loop), name=self.name)
        return future, now

    def open_call(
        self, loop: asyncio.AbstractEventLoop, timeout: float, label: str
    ) -> tuple[int, asyncio.Future[Any], float]:
        """A new request's id, future and start (``open`` with its id taken here: a call)."""
        request = next(self._ids)
        future = loop.create_future()
        self.pending[request] = future
        now = loop.time()
        self.inflight[request] = (now, label, now + timeout, label)
        if self._watchdog is None:
            watch = self._watch(loop)
            try:
                self._watchdog = loop.create_task(watch, name=self.name)
            except RuntimeError:  # the loop is closed: the caller is told so, this unsaid
                watch.close()
                raise
        return request, future, now

    def open_many(
        self,
        loop: asyncio.AbstractEventLoop,
        command: str,
        params: Sequence[dict[str, Any]],
        timeout: float,
    ) -> tuple[Batch, list[frames.Message]]:
        """A batch of calls of ``command`` (consecutive ids, no future of their own: each
        answer lands in the batch's list, and the last one resolves its one future), and
        their frames."""
        batch = Batch(loop, next(self._ids), len(params))
        if not params:
            return batch, []
        messages: list[frames.Message] = []
        now = loop.time()
        entry = (now, command, now + timeout, command)  # one deadline for the whole batch
        batched, inflight, call = self.batched, self.inflight, frames.Call
        for request, p in enumerate(params, batch.first):
            batched[request] = batch
            inflight[request] = entry
            strict = getattr(p, "strict", True)
            messages.append(call(request, command, p if isinstance(p, dict) else dict(p), strict))
        self._ids = itertools.count(batch.first + len(params))  # the batch's ids are taken
        if self._watchdog is None:
            self._watchdog = loop.create_task(self._watch(loop), name=self.name)
        return batch, messages

    def close(self, request: int) -> None:
        """The request is over for its caller, who gave up: its future is forgotten, and
        what it was is kept in ``abandoned`` until its answer or deadline."""
        self.pending.pop(request, None)
        self._abandon(request, self.inflight.pop(request, None))

    def _abandon(self, request: int, entry: tuple[float, str, float, str] | None) -> None:
        if entry is None:
            return
        if len(self.abandoned) >= _ABANDONED_KEPT:  # those past their deadline go first
            now = time.monotonic()  # the loop's clock
            for old, (_s, _l, due, _w) in list(self.abandoned.items()):
                if due <= now:
                    del self.abandoned[old]
        if len(self.abandoned) < _ABANDONED_KEPT:
            self.abandoned[request] = entry

    def answer(self, request: int, value: Any) -> None:
        """Request ``request`` is answered (the hot path: a ``Reply``); it is over."""
        self.inflight.pop(request, None)
        future = self.pending.pop(request, None)
        if future is not None:
            if not future.done():
                future.set_result(value)
        elif (batch := self.batched.pop(request, None)) is not None:
            batch.put(request, value)
        elif self.abandoned:  # the late answer of a call its caller gave up on
            self.abandoned.pop(request, None)

    def settle(self, request: int, value: Any = None, error: BaseException | None = None) -> None:
        """Request ``request`` is over: answered, failed, expired or its worker gone."""
        self.inflight.pop(request, None)
        future = self.pending.pop(request, None)
        if future is None:
            batch = self.batched.pop(request, None)
            if batch is not None:
                batch.put(request, value if error is None else error)
            elif self.abandoned:
                self.abandoned.pop(request, None)
        elif not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    def fail_all(self, error: BaseException) -> None:
        """Every request in flight fails with ``error`` (its worker is gone)."""
        for request in [*self.pending, *self.batched]:
            self.settle(request, error=error)

    async def answers(self, batch: Batch, cancel: Callable[[int], None]) -> list[Any]:
        """Each request's result, or the exception it failed with, in order; the caller
        wakes once, when the last answer lands. A caller that gives up cancels those
        still running."""
        if not batch.left:
            return batch.results
        try:
            return await batch.future
        except asyncio.CancelledError:
            for request in range(batch.first, batch.first + len(batch.results)):
                if self.batched.pop(request, None) is not None:  # not answered yet
                    self._abandon(request, self.inflight.pop(request, None))
                    cancel(request)
            raise

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
