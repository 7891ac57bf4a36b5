"""The host's side of the requests a worker handle makes: frames out, futures back.

Split from ``process.py`` (one concern: the call path between ``manager.call`` and
the channel). ``call`` is the hot path: one coroutine frame from the manager's to the
request's future, the frame encoded straight into the channel's pending buffer
(``frames.Channel.send``); ``call_many`` sends a batch in one write and wakes its
caller once, when the last answer lands (``requests.Batch``).

Calls come from the channel's loop, in its thread: every caller is checked before it
gets here (``runtime.calling`` compares the caller's thread with the host loop's, a batch
asks ``runtime.serving`` once; the others run in the host's own tasks: health probes,
the broker's host calls, event lanes, shadows' mirrors), so a call from another thread
(``asyncio.run(host.call(...))`` in an application's own) is refused before anything is
sent, not here again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from plugbay.api import CommandSpec
from plugbay.api.errors import PlugbayError
from plugbay.isolation import frames
from plugbay.isolation.affinity import HELD_BATCH, Follow
from plugbay.isolation.heartbeat import Beat
from plugbay.isolation.requests import Requests

__all__ = ["RequestsToWorker"]

_running = asyncio.get_running_loop
_Call = frames.Call


class RequestsToWorker:
    """``call``, ``call_many`` and the other requests of a handle whose plugin answers
    on a ``frames.Channel`` (``process.ProcessHandle``)."""

    _channel: frames.Channel | None
    _dead: PlugbayError | None
    _requests: Requests
    _loop: asyncio.AbstractEventLoop | None
    beat: Beat
    follow: Follow
    _loaded: asyncio.Future[frames.Loaded] | None

    def _on_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, the channel's from now on: its calls come from there."""
        return _running()

    def _crashed(self, reason: str, *, error: PlugbayError | None = None) -> None:
        raise NotImplementedError

    def _load_failed(self, error: PlugbayError) -> None:
        """The worker's answer to its Load, which may come before the Load: a worker that
        cannot apply a sandbox layer says so as it starts (``isolation._child``), and the
        host's initialize then raises that error, which names the layer."""
        if self._loaded is None:
            self._loaded = (self._loop or _running()).create_future()
        if not self._loaded.done():
            self._loaded.set_exception(error)

    def _send(self, message: frames.Message, more: bool = False) -> None:
        if self._channel is None or self._dead is not None:
            return
        try:
            self._channel.send(message, more=more)
        except (ConnectionError, RuntimeError, frames.FrameError) as exc:
            self._crashed(f"writing to its worker failed: {exc}")

    def _send_many(self, messages: list[frames.Message]) -> None:
        try:
            if self._channel is not None and self._dead is None:
                self._channel.send_many(messages)
        except (ConnectionError, RuntimeError, frames.FrameError) as exc:
            self._crashed(f"writing to its worker failed: {exc}")

    def _request(
        self, make: Callable[[int], frames.Message], timeout: float, what: str = "a call"
    ) -> Coroutine[Any, Any, Any]:
        request = self._requests.next_id()
        message = make(request)
        label = getattr(message, "command", type(message).__name__)
        return self._exchange(request, message, timeout, what, label)

    async def _exchange(
        self, request: int, message: frames.Message, timeout: float, what: str, label: str
    ) -> Any:
        if self._dead is not None:
            raise self._dead
        loop = self._loop or _running()
        future, self.beat.last_used = self._requests.open(loop, request, timeout, label, what)
        self.follow.call()  # on its caller's core (isolation.affinity)
        # one of many in flight: it leaves with the others at the end of this loop turn
        self._send(message, len(self._requests.pending) > 1)
        try:  # whatever ends the request (its answer, a failure, its deadline) forgets it
            return await future
        except asyncio.CancelledError:  # the caller gave up: stop the command in the worker
            self._requests.close(request)
            self._send(frames.Cancel(request))
            raise

    async def call(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any:
        """``await handle.call(...)``: ``_exchange`` inlined, one frame from the caller's
        to the request's future (the frame is encoded as it is sent, so the caller's
        own dict goes in it, uncopied)."""
        if self._dead is not None:
            raise self._dead
        calls, name, channel = self._requests, spec.name, self._channel
        request, future, self.beat.last_used = calls.open_call(
            self._loop or _running(), timeout, name
        )
        self.follow.call()  # on its caller's core (isolation.affinity)
        if channel is not None:  # else its worker is gone: the request fails with it
            try:
                channel.send(
                    _Call(
                        request,
                        name,
                        params if isinstance(params, dict) else dict(params),
                        getattr(params, "strict", True),
                    ),
                    more=len(calls.pending) > 1,
                )
            except (ConnectionError, RuntimeError, frames.FrameError) as exc:
                self._crashed(f"writing to its worker failed: {exc}")
        try:
            return await future
        except asyncio.CancelledError:  # the caller gave up: stop the command in the worker
            calls.close(request)
            self._send(frames.Cancel(request))
            raise

    async def call_many(
        self, spec: CommandSpec, params: Sequence[dict[str, Any]], timeout: float
    ) -> list[Any]:
        """The calls leave together (one write per ~64 KiB of frames); each answer lands in
        its place of one list, and the caller wakes once, when the last one lands."""
        if self._dead is not None:
            return [self._dead] * len(params)
        loop, calls = self._loop or _running(), self._requests
        batch, messages = calls.open_many(loop, spec.name, params, timeout)
        self.beat.last_used = loop.time()
        if len(messages) > HELD_BATCH:  # on two cores: see isolation.affinity
            self.follow.release()
        else:
            self.follow.call()
        self._send_many(messages)
        return await calls.answers(batch, lambda r: self._send(frames.Cancel(r)))
