"""The thread a Wasm instance runs on (``isolation.wasm``), and how a caller waits for it.

One daemon thread per instance runs its jobs in order (a queue, not an executor: a
module stuck in a host request cannot keep the host from exiting). A job's answer
used to reach its caller through the loop: ``call_soon_threadsafe`` woke the loop
through its self-pipe, a callback settled a future, a task step resumed the caller.
On the 2-vCPU virtual machine of docs/architecture.md that round of wake-ups was
some 170 µs of a Wasm call's 180; the module's own work was 8.5 µs.

So a caller whose job is the only one waits for it **in place**: the loop's thread
blocks on the job's lock for at most :data:`IN_PLACE` seconds, the GIL released, so
the instance thread runs the job at once and hands the answer straight back. A job
that takes longer (a slow command, or one whose host request needs the loop, such as
a service call) is not waited for past that bound: its caller then awaits a future
as before, and the loop runs on; the next job of an instance whose last one was slow
is not waited for in place at all. The loop is so never held for more than
:data:`IN_PLACE` by a call, and only when the instance is otherwise idle.

While its calls come one at a time and are short, the instance thread is also held
to its caller's core (:class:`~plugbay.isolation.affinity.Follow`, as a worker is):
the two take turns on one core, and neither waits for the other's core to wake from
its halt. A slow job, or two at once, lets it go.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from plugbay.isolation.inline import settle

__all__ = ["IN_PLACE", "Closed", "InstanceThread"]

#: seconds a caller's loop thread may block for the answer of an idle instance's job
IN_PLACE: Final = 0.0003


class Closed(Exception):
    """The instance's thread was closed (the handle released)."""


class _Job:
    __slots__ = ("answered", "done", "future", "loop", "ok", "value", "work")

    def __init__(self, loop: asyncio.AbstractEventLoop, work: Callable[[], Any]) -> None:
        self.loop, self.work = loop, work
        #: released by the instance thread once the job is answered (in-place waits)
        self.done = threading.Lock()
        self.done.acquire()
        #: where the answer goes once its caller stopped waiting in place
        self.future: asyncio.Future[Any] | None = None
        self.answered = self.ok = False
        self.value: Any = None

    def result(self) -> Any:
        if self.ok:
            return self.value
        raise self.value


class InstanceThread:
    """The one thread an instance runs on: :meth:`run` a job there and get its answer."""

    __slots__ = ("_at_exit", "_busy", "_closed", "_jobs", "_lock", "_thread", "slow")

    def __init__(self, name: str, at_exit: Callable[[], None]) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._at_exit = at_exit  # run on the thread once its last job is done
        self._lock = threading.Lock()
        #: jobs queued or running
        self._busy = 0
        #: the last job outlasted ``IN_PLACE``: the next is awaited, not waited for in place
        self.slow = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def tid(self) -> int:
        """The thread's id in the kernel (for its placement: ``isolation.affinity``)."""
        return self._thread.native_id or 0

    def cpu_seconds(self) -> float | None:
        """The CPU time the thread has used so far (the clock ``time.thread_time`` reads
        on it), from any thread; None where the system cannot tell."""
        ident = self._thread.ident
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(ident)) if ident else None
        except (AttributeError, OSError):  # no per-thread CPU clock here, or it has ended
            return None

    async def run(
        self,
        loop: asyncio.AbstractEventLoop,
        work: Callable[[], Any],
        awaited: Callable[[asyncio.Future[Any]], None] | None = None,
    ) -> Any:
        """``work()`` on the instance thread: its value, or what it raised. ``awaited``
        is handed the future its caller awaits once it stops waiting in place: settling
        that future answers the caller before the job ends (a job the host cannot stop)."""
        if self._closed:
            raise Closed()
        job = _Job(loop, work)
        with self._lock:
            self._busy += 1
            alone = self._busy == 1
        self._jobs.put(job)
        if alone and not self.slow and job.done.acquire(timeout=IN_PLACE):
            return job.result()
        with self._lock:  # the answer may have come since
            if not job.answered:
                job.future = loop.create_future()
        if job.future is None:
            return job.result()
        if awaited is not None:
            awaited(job.future)
        return await job.future

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            started = time.perf_counter()
            try:
                value, ok = job.work(), True
            except BaseException as exc:  # the job's own failures are values (wasm._run)
                value, ok = exc, False
            self.slow = time.perf_counter() - started > IN_PLACE
            self._answer(job, ok, value)
        self._at_exit()
        while not self._jobs.empty():  # jobs queued behind the close: answered, not run
            job = self._jobs.get()
            if job is not None:
                self._answer(job, False, Closed())

    def _answer(self, job: _Job, ok: bool, value: Any) -> None:
        with self._lock:
            self._busy -= 1
            job.ok, job.value, job.answered = ok, value, True
            future = job.future
        if future is None:  # its caller waits in place, or will find it answered
            job.done.release()
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            job.loop.call_soon_threadsafe(settle, future, ok, value)
