"""What monitoring adds inside a worker process: stacks on demand, and stdout/stderr as logs.

* :func:`dump_stacks_on_signal` registers ``faulthandler`` for ``SIGUSR1``, writing
  every thread's stack into an anonymous in-memory file (``memfd``). It works even
  when the worker's loop is blocked or deadlocked: the dump is done by a C signal
  handler. The host reads the file through ``/proc/<pid>/fd`` (:func:`read_stacks`),
  so no frame, socket or path of the sandbox is needed.
* :func:`capture_output` points the worker's file descriptors 1 and 2 at pipes and
  forwards each line as a log record (``plugbay.plugin.<id>.stdout`` / ``.stderr``),
  rate-limited at the source so a plugin printing megabytes a second cannot flood
  its channel to the host; what is dropped is counted and said.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from plugbay.monitor.stacks import task_stacks

__all__ = [
    "MEMFD_NAME",
    "capture_output",
    "dump_stacks_on_signal",
    "dump_tasks_on_signal",
    "read_stacks",
    "stacks_fd",
]

MEMFD_NAME: Final = "plugbay-stacks"
#: lines a second forwarded per stream (a burst of twice that is allowed)
LINES_PER_SECOND: Final = 200.0
_MAX_LINE: Final = 8192
#: the most of a worker's stack file read at once (its plugin can write to it too)
_MAX_STACKS: Final = 1 << 20

_keep: list[Any] = []  # faulthandler needs its file kept open
_TASKS_END: Final = "-- end of asyncio tasks --\n"


def dump_stacks_on_signal() -> None:
    """In the worker: SIGUSR1 writes every thread's stack to the ``plugbay-stacks`` memfd."""
    try:
        fd = os.memfd_create(MEMFD_NAME)
    except (AttributeError, OSError):  # no memfd here: stacks will be reported unavailable
        return
    target = os.fdopen(fd, "w")
    _keep.append(target)
    faulthandler.register(signal.SIGUSR1, file=target, all_threads=True, chain=False)


def stacks_fd() -> int:
    """In the worker: the descriptor of the stack file it opened as it started (-1: none),
    which the host prefers to any other memfd of that name (a plugin can make one)."""
    return _keep[0].fileno() if _keep else -1


def dump_tasks_on_signal(loop: asyncio.AbstractEventLoop) -> None:
    """In the worker: SIGUSR2 adds the stacks of its asyncio tasks (when its loop runs,
    which is when an async command waits forever: a deadlock the threads' stacks miss)."""
    if not _keep:
        return
    target = _keep[0]

    def dump() -> None:
        with contextlib.suppress(Exception):
            target.write("asyncio tasks:\n" + task_stacks(None) + "\n" + _TASKS_END)
            target.flush()

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGUSR2, dump)


def read_stacks(
    pid: int, *, seen: int = 0, tasks: bool = True, wait: float = 0.3, fd: int = -1
) -> tuple[str, int]:
    """In the host: ask worker ``pid`` for its stacks and read them (blocks up to ``wait``).

    ``tasks=False`` when its loop is known to be blocked (its tasks cannot answer).
    Returns the new text and the file's length now (pass it back as ``seen`` next
    time, so each call returns only its own dump). ``fd``: the descriptor the worker
    said it opened (``stacks_fd``), tried first."""
    path = _stack_path(pid, fd)
    if path is None:
        raise OSError("the worker has no stack file (faulthandler was not set up)")
    opened = _open_stack_file(path)
    try:
        return _read_stack_file(opened, pid, seen=seen, tasks=tasks, wait=wait)
    finally:
        os.close(opened)


def _stack_path(pid: int, fd: int) -> str | None:
    """The worker's stack file in ``/proc``: descriptor ``fd`` if it is one, else the first
    that is (a plugin can make its own memfd of that name: the worker's is preferred)."""
    entries = ([str(fd)] if fd >= 0 else []) + os.listdir(f"/proc/{pid}/fd")
    for entry in entries:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{entry}").startswith(f"/memfd:{MEMFD_NAME}"):
                return f"/proc/{pid}/fd/{entry}"
    return None


def _open_stack_file(path: str) -> int:
    """The worker's stack file, opened once before it is signalled, and only if it is a
    file: the plugin owns its descriptor table, and a pipe it puts in the memfd's place
    (from a SIGUSR1 handler of its own) would hold the host's read for good."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"its stack file ({path}) is no longer a file: the plugin replaced it")
    return fd


def _read_stack_file(fd: int, pid: int, *, seen: int, tasks: bool, wait: float) -> tuple[str, int]:
    os.kill(pid, signal.SIGUSR1)  # threads, at once, even if its loop is blocked
    tasks = tasks and _catches(pid, signal.SIGUSR2)  # (its default action would kill it)
    if tasks:
        os.kill(pid, signal.SIGUSR2)  # tasks, when its loop runs
    deadline = time.monotonic() + wait
    fresh, length, size = b"", seen, -1
    while time.monotonic() < deadline:
        time.sleep(0.01)
        length = os.fstat(fd).st_size
        # the plugin can write to its own stack file: read a bounded part of it
        fresh = os.pread(fd, min(max(length - seen, 0), _MAX_STACKS), seen)
        if tasks and _TASKS_END.encode() in fresh:
            break
        if not tasks and length > seen and length == size:
            break  # faulthandler is done: the file stopped growing
        size = length
    # a blocked loop never adds its tasks: the threads' stacks are what there is
    text = fresh.decode("utf-8", "replace")
    if not text:
        raise OSError(f"the worker did not write its stacks within {wait:g} s")
    return text, length


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (``SigCgt`` in its status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


class _Stream:
    """One captured stream: its pipe, its partial line and its rate limit."""

    __slots__ = ("dropped", "last", "level", "name", "pending", "read_end", "tokens")

    def __init__(self, read_end: int, name: str, level: int) -> None:
        self.read_end, self.name, self.level = read_end, name, level
        self.pending = b""
        self.tokens, self.last, self.dropped = LINES_PER_SECOND * 2, time.monotonic(), 0

    def lines(self, chunk: bytes) -> list[tuple[str, dict[str, Any] | None]]:
        """The lines to forward from this chunk, within the rate limit."""
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()
        if len(self.pending) > _MAX_LINE:
            lines.append(self.pending)
            self.pending = b""
        now = time.monotonic()
        self.tokens = min(LINES_PER_SECOND * 2, self.tokens + (now - self.last) * LINES_PER_SECOND)
        self.last = now
        out: list[tuple[str, dict[str, Any] | None]] = []
        for line in lines:
            if self.tokens < 1:
                self.dropped += 1
                continue
            self.tokens -= 1
            if self.dropped:
                out.append((f"{self.dropped} lines of {self.name} dropped "
                            f"(over {LINES_PER_SECOND:g} a second)", {"dropped": self.dropped}))  # fmt: skip
                self.dropped = 0
            out.append((line[:_MAX_LINE].decode("utf-8", "replace"), None))
        return out


def capture_output(
    loop: asyncio.AbstractEventLoop,
    send: Callable[[Any], None],
    plugin_id: Callable[[], str | None],
) -> None:
    """In the worker: forward what is written to fd 1 and 2 as log frames.

    One thread reads both pipes (a sandboxed worker's threads are counted against
    its limit, so monitoring takes one, not two). It is not the event loop's job: a
    command blocking the loop while it prints more than a pipe holds would wait on its
    own output forever."""
    import select

    from plugbay.isolation import frames

    streams: dict[int, _Stream] = {}
    for fd, name, level in ((1, "stdout", logging.INFO), (2, "stderr", logging.WARNING)):
        try:
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
        except OSError:
            continue
        streams[read_end] = _Stream(read_end, name, level)

    def forward() -> None:
        while streams:
            try:
                ready, _, _ = select.select(list(streams), [], [])
            except OSError:
                return
            for read_end in ready:
                stream = streams[read_end]
                try:
                    chunk = os.read(read_end, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    del streams[read_end]
                    continue
                logger = f"plugbay.plugin.{plugin_id() or 'unknown'}.{stream.name}"
                for text, fields in stream.lines(chunk):
                    message = frames.Log(stream.level, logger, text, fields)
                    with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                        loop.call_soon_threadsafe(send, message)

    if streams:
        # a bare thread, not a threading.Thread: it needs no join, name or registry,
        # and threading's Python (its Event, Condition, the start handshake) would be
        # pages each worker copies from the zygote (about 0.1 MiB of an idle worker)
        _thread.start_new_thread(forward, ())
    with contextlib.suppress(Exception):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
