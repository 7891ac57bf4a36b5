"""Where a host serves: the event loop it started on, and whether it serves at all.

A host's plugins, workers' channels and tasks belong to the event loop that started it
(``await host.start()``, ``async with Host(...)``), until its stop. A call awaited on
another loop (another thread's, or a second ``asyncio.run``'s: the first closed the
host's loop when it returned, cancelling the host's tasks) cannot reach them, and
without a word here it would fail deep in a backend, as if the plugin had raised.

A call awaited on another thread's loop than the host's is refused before it runs
(``runtime.calling``: the caller's thread compared with the loop's, once per call, as
``asyncio.get_running_loop()`` costs a system call), with
:class:`~plugbay.api.errors.HostStateError` saying so, and how to reach the host from
there (docs/applications.md, "From synchronous code and other threads"): an inline
plugin's command would otherwise run on the caller's loop, beside the plugin's own
locks, queues and tasks made on the host's, and a sandboxed plugin's call would write
to its worker's channel beside the host's own thread (``isolation._calls`` relies on
this check). A call that fails asks :meth:`Serving.refusal` whether the host, not the
plugin, is why: so is one awaited on another loop in the host loop's own thread, which
that compare lets through, while the host's loop waits between an ``asyncio.Runner``'s
steps (told to await it in a step: handed over to a loop that does not run, it would
wait for ever) or after ``loop.close()`` alone closed it.

A host's loop that closes without its stop (``asyncio.run(main())`` returning with the
host started) is noticed as its shutdown begins: the host holds an async generator first
iterated on that loop, which ``loop.shutdown_asyncgens()`` (awaited by ``asyncio.run``
and ``asyncio.Runner.close`` once the main task is done and the others cancelled)
closes. From then on no thread is the host loop's, so a call awaited on the next loop in
the same thread takes the refusing path too, and is told that the host's loop is closed,
before an inline plugin's command runs there or a sandboxed one's is sent. (A loop
closed by ``loop.close()`` alone, without that shutdown, is not noticed so.)

A thread that ran the host's loop and ends without the host's stop (its
``loop.run_forever()`` stopped, the host left serving) is noticed as it ends: the thread
holds an object in a thread-local of the host's, which the thread's end frees, before the
system can give its ident to a later thread. From then on no thread is the host loop's, so
a call from a later thread given the same ident is refused too (the compare costs a call
nothing more), saying the host loop's thread has ended.

A host serves one event loop for its life: its event bus, locks and workers' channels
are made on the first loop it starts on and stay bound to it, so a start on another
loop (a second ``asyncio.run``, after the first closed the host's loop) is refused,
saying to make a new ``Host`` there (:meth:`Serving.check_start`). A stopped host
starts again on the loop it served.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, Coroutine
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import HostStateError

__all__ = ["SYNC_USE", "AsyncOnly", "Serving"]

#: where the applications guide shows a host used from synchronous code or another thread
SYNC_USE: Final = 'docs/applications.md, "From synchronous code and other threads"'


class Serving:
    """What the manager knows of its host's life: the loop it serves on (None before its
    start and after its stop), the thread running that loop, and whether it stopped."""

    __slots__ = (
        "__weakref__", "_shutdown", "_threads", "ended", "ending", "first", "ident", "loop",
        "stopped", "thread",
    )  # fmt: skip

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        #: the loop the host first served on, the one it is bound to (weakly: once it is
        #: gone, any loop is another)
        self.first: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self.thread = ""
        #: the thread running the loop, by its ident (0: none): what a call compares with
        self.ident = 0
        self.stopped = False
        #: the loop's shutdown began (it closes next): its thread is no caller's any more
        self.ending = False
        #: what the loop's shutdown closes (see the module doc), while the host serves
        self._shutdown: AsyncGenerator[None, None] | None = None
        #: each thread that ran the host's loop holds a _ServedThread here: its end frees it
        self._threads = threading.local()
        #: the thread running the host's loop ended, without the host's stop
        self.ended = False

    def open(self) -> None:
        """The host starts on the running loop: it serves there until :meth:`close`."""
        self.loop = asyncio.get_running_loop()
        if self.first is None:
            self.first = weakref.ref(self.loop)
        self.serve_here()
        self.stopped = False
        self.ending = False
        self._shutdown = _loop_shutdown(self)
        _step(self._shutdown.asend(None))  # first iterated here: this loop's to close

    def serve_here(self) -> None:
        """The host's loop runs in this thread (its start, or a turn of a loop run by several
        threads): calls from here pass the compare, until this thread ends (see the module
        doc), when a later thread may be given its ident."""
        self.thread = threading.current_thread().name
        self.ident = threading.get_ident()
        self.ended = False
        if getattr(self._threads, "held", None) is None:
            self._threads.held = _ServedThread(self, self.ident)

    def close(self) -> None:
        if self.loop is not None:
            self.stopped = True
        self.loop = None
        self.ident = 0
        if self._shutdown is not None:  # closed now, not left to the loop's shutdown
            shutdown, self._shutdown = self._shutdown, None
            _step(shutdown.aclose())

    def check_start(self) -> None:
        """Refuse a start on another loop than the one the host is bound to (see the
        module doc): serving there still, or stopped after serving there."""
        if self.loop is not None:
            self.check_loop("start the host")  # started already: on its loop, nothing to do
            return
        first = self.first() if self.first is not None else None
        if self.first is None or first is asyncio.get_running_loop():
            return
        where = f"in thread '{self.thread}'"
        where += ", now closed" if first is None or first.is_closed() else ""
        raise HostStateError(
            "cannot start this host on this event loop: it was started before on another "
            f"one ({where}), and a host is bound to the loop it first started on",
            hint="its event bus, locks and workers' channels were made on that loop and "
            "cannot move: make a new Host(...) on this loop (the state directory is free "
            "once this one stopped), or start, use and stop one host in one "
            "asyncio.run(main()) ('async with Host(...) as host:' in main)",
        )

    def unstarted(self, doing: str) -> HostStateError | None:
        """The refusal when the host was never started (a plugin looked up then is not
        unknown: nothing is known yet), else None."""
        return self._not_serving(doing) if self.loop is None and not self.stopped else None

    def off_loop(self, doing: str, via: str = "host.call(...)") -> HostStateError | None:
        """The refusal when the host serves on another loop than the running one (a
        failed call asks: was the caller's loop the reason?), else None."""
        return self.refusal(doing, via) if self.loop is not None else None

    def check_loop(self, doing: str, via: str = "host.call(...)") -> None:
        """Raise :meth:`off_loop`'s refusal, if any."""
        if (refused := self.off_loop(doing, via)) is not None:
            raise refused from None

    def refusal(self, doing: str, via: str = "host.call(...)") -> HostStateError | None:
        """Why the host cannot ``doing`` from here (not started, stopped, or on another
        loop than its own), or None when it can; ``via``: the coroutine the hint says to
        hand over to the host's loop."""
        loop = self.loop
        if loop is None:
            return self._not_serving(doing)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # awaited with no loop running: not from the host's
            running = None
        if running is loop:
            return None
        if loop.is_closed():
            return HostStateError(
                f"cannot {doing}: the event loop this host started on (in thread "
                f"'{self.thread}') is closed",
                hint="a host lives on one event loop from its start to its stop, and "
                "asyncio.run() closes its loop, with the host's tasks and workers' channels, "
                "when it returns. Start, use and stop the host in one asyncio.run(main()) "
                "('async with Host(...) as host:' in main), or from synchronous code run it "
                f"on a loop of its own in a thread ({SYNC_USE}). This host can no longer "
                "be used: await host.stop() ends its workers and releases its state "
                "directory, though its plugins' cleanup() cannot run",
            )
        if self.ended and not loop.is_running():
            return HostStateError(
                f"cannot {doing}: the thread that ran this host's event loop "
                f"('{self.thread}') has ended, and the host was not stopped",
                hint="its plugins, workers and tasks belong to that loop: keep it running in "
                "its thread for as long as the host serves, and stop the host on it before "
                f"the thread ends (asyncio.run_coroutine_threadsafe(host.stop(), host_loop), "
                f"{SYNC_USE}); to stop this host now, run that loop again in any thread: "
                "host_loop.run_until_complete(host.stop())",
            )
        if not loop.is_running():  # idle: handed over there, the call would wait forever
            return HostStateError(
                f"cannot {doing} from this event loop: the host's own, in thread "
                f"'{self.thread}', is not running now (an asyncio.Runner between its steps?)",
                hint="its plugins, workers and tasks belong to that loop, and handed over to it "
                "while it does not run, the call would wait for ever: await it in a step of "
                f"that loop (runner.run({via})), or keep the host's loop running in a "
                f"thread of its own ({SYNC_USE})",
            )
        return HostStateError(
            f"cannot {doing} from this event loop: the host runs on another one, "
            f"in thread '{self.thread}'",
            hint="its plugins, workers and tasks belong to the loop it started on: await "
            "the call there, or from another thread hand it over and wait for it: "
            f"asyncio.run_coroutine_threadsafe({via}, host_loop).result() "
            f"({SYNC_USE})",
        )

    def _not_serving(self, doing: str) -> HostStateError:
        if self.stopped:
            return HostStateError(
                f"cannot {doing}: this host was stopped",
                hint="make the call before the host stops (inside 'async with Host(...) "
                "as host:'), or start the host again on the event loop it served: "
                "await host.start()",
            )
        return HostStateError(
            f"cannot {doing}: this host is not started",
            hint="start it first: 'async with Host(...) as host:', or await host.start() "
            "(and await host.stop() at the end)",
        )


async def _loop_shutdown(serving: Serving) -> AsyncGenerator[None, None]:
    """Waits at its one ``yield`` while the host serves; closed by the host's stop, or by
    its loop's shutdown (see the module doc): then no thread is the host loop's."""
    try:
        yield
    finally:
        serving.ending = True
        serving.ident = 0


class _ServedThread:
    """Held by the thread-local of a thread that ran the host's loop, so freed when that
    thread ends (its thread-local data goes before its ident can be given to another):
    from then on no thread is the host loop's until it runs again (see the module doc)."""

    __slots__ = ("ident", "serving")

    def __init__(self, serving: Serving, ident: int) -> None:
        self.serving = weakref.ref(serving)
        self.ident = ident

    def __del__(self) -> None:
        serving = self.serving()
        if serving is not None and serving.ident == self.ident:
            serving.ident = 0
            serving.ended = True


def _step(step: Coroutine[Any, Any, None]) -> None:
    """Run one step of :func:`_loop_shutdown` now: to its ``yield``, or to its end (it
    awaits nothing, so no loop turn is needed)."""
    with contextlib.suppress(StopIteration):
        step.send(None)


class AsyncOnly:
    """``with Host(...)``, without ``async``, refused with what to write instead (hidden
    from type checkers, which already refuse it: ``Host`` has no ``__enter__`` for them)."""

    if not TYPE_CHECKING:

        def __enter__(self):
            raise TypeError(
                f"{type(self).__name__} is an async context manager: write 'async with "
                f"{type(self).__name__}(...) as host:' in an async def (run it with "
                "asyncio.run(main())); from synchronous code, run the host on an event "
                f"loop of its own in a thread ({SYNC_USE})"
            )

        def __exit__(self, *exc_info):
            return None
