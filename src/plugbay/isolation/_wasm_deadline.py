"""The running Wasm job's deadline, for the host requests its module waits on.

A call's time-out is a timer on the host's loop (``WasmHandle._job``): it interrupts the
module where it runs (an epoch deadline). A module waiting for the host's loop to answer
a request (an event's check) waits for the loop that runs that timer: when the loop is
blocked (a plugin's blocking code on it) or stopping, neither comes. So the request
waits no longer than the job's deadline, and past it the instance thread stops the job
itself, as its timer would: the caller gets the time-out, the instance is replaced.

Nothing is kept per call for it: the deadline is worked out when a request asks, from
when the job was queued (on the loop's clock: ``time.monotonic``'s, for asyncio's loop
and uvloop's alike) and its timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import NamedTuple

__all__ = ["Deadline", "JobDeadlines"]


class Deadline(NamedTuple):
    """The running job's: ``until`` (``time.monotonic``) and ``overdue``, which stops it
    (on its instance thread, when a wait of its reached ``until``)."""

    until: float
    overdue: Callable[[], None]


class JobDeadlines:
    """The deadlines of a handle's jobs, from what the handle keeps of them."""

    __slots__ = ("_interrupt", "_lock", "_running", "_why")

    def __init__(
        self,
        lock: threading.Lock,
        running: Mapping[int, tuple[float, str]],
        why: dict[int, str],
        interrupt: Callable[[], None],
    ) -> None:
        self._lock = lock
        self._running = running  # job → (queued at, on the loop's clock; what it runs)
        self._why = why  # job → why it was interrupted
        self._interrupt = interrupt  # the program's epoch: stops the job that runs

    def of(self, token: int | None, timeout: float) -> Deadline:
        """Job ``token``'s deadline; already past once its caller has stopped waiting."""
        queued = self._running.get(token) if token is not None else None
        until = queued[0] + timeout if queued is not None else 0.0
        return Deadline(until, lambda: self._overdue(token))

    def _overdue(self, token: int | None) -> None:
        if token is None:
            return
        with self._lock:
            self._why.setdefault(token, "timeout")
            self._interrupt()
