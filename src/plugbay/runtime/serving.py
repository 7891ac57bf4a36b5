"""Where a host serves: the event loop it started on, and whether it serves at all.

A host's plugins, workers' channels and tasks belong to the event loop that started it
(``await host.start()``, ``async with Host(...)``), until its stop. A call awaited on
another loop (another thread's, or a second ``asyncio.run``'s: the first closed the
host's loop when it returned, cancelling the host's tasks) cannot reach them, and
without a word here it would fail deep in a backend, as if the plugin had raised.

The call path asks nothing of this on a call that succeeds (a check would cost every
call); a call that cannot run, or that fails, asks :meth:`Serving.refusal` whether the
host, not the plugin, is why, and raises :class:`~plugbay.api.errors.HostStateError`
saying so, and how to reach the host from there (docs/applications.md, "From
synchronous code and other threads"). A sandboxed plugin's call fails, before anything
is sent, when it comes from another thread than its worker channel's loop
(``isolation._calls``: one integer compared, against a round trip of tens of
microseconds): sent from there, it would write to the channel beside the host's own
thread, reach the worker although refused, and even seem to work whenever the answer
came back before the caller awaited it. An inline plugin's call is not asked (that
compare would cost 4-8% of such a call): from another thread's loop it runs there.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Final

from plugbay.api.errors import HostStateError

__all__ = ["SYNC_USE", "AsyncOnly", "Serving"]

#: where the applications guide shows a host used from synchronous code or another thread
SYNC_USE: Final = 'docs/applications.md, "From synchronous code and other threads"'


class Serving:
    """What the manager knows of its host's life: the loop it serves on (None before its
    start and after its stop), the thread running that loop, and whether it stopped."""

    __slots__ = ("loop", "stopped", "thread")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = ""
        self.stopped = False

    def open(self) -> None:
        """The host starts on the running loop: it serves there until :meth:`close`."""
        self.loop = asyncio.get_running_loop()
        self.thread = threading.current_thread().name
        self.stopped = False

    def close(self) -> None:
        if self.loop is not None:
            self.stopped = True
        self.loop = None

    def unstarted(self, doing: str) -> HostStateError | None:
        """The refusal when the host was never started (a plugin looked up then is not
        unknown: nothing is known yet), else None."""
        return self._not_serving(doing) if self.loop is None and not self.stopped else None

    def off_loop(self, doing: str) -> HostStateError | None:
        """The refusal when the host serves on another loop than the running one (a
        failed call asks: was the caller's loop the reason?), else None."""
        return self.refusal(doing) if self.loop is not None else None

    def check_loop(self, doing: str) -> None:
        """Raise :meth:`off_loop`'s refusal, if any."""
        if (refused := self.off_loop(doing)) is not None:
            raise refused from None

    def refusal(self, doing: str) -> HostStateError | None:
        """Why the host cannot ``doing`` from here (not started, stopped, or on another
        loop than its own), or None when it can."""
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
        return HostStateError(
            f"cannot {doing} from this event loop: the host runs on another one, "
            f"in thread '{self.thread}'",
            hint="its plugins, workers and tasks belong to the loop it started on: await "
            "the call there, or from another thread hand it over and wait for it: "
            "asyncio.run_coroutine_threadsafe(host.call(...), host_loop).result() "
            f"({SYNC_USE})",
        )

    def _not_serving(self, doing: str) -> HostStateError:
        if self.stopped:
            return HostStateError(
                f"cannot {doing}: this host was stopped",
                hint="make the call before the host stops (inside 'async with Host(...) "
                "as host:'), or start the host again: await host.start()",
            )
        return HostStateError(
            f"cannot {doing}: this host is not started",
            hint="start it first: 'async with Host(...) as host:', or await host.start() "
            "(and await host.stop() at the end)",
        )


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
