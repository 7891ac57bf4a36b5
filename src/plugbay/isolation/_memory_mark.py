"""The mark a worker leaves when its memory limit ends its start, which a plugin's own
``os._exit(83)`` cannot leave.

A worker whose memory limit ends it outside any call exits with
:data:`~plugbay.isolation._start_memory.OUT_OF_MEMORY`, and so does a plugin that calls
``os._exit(83)``: the status alone cannot tell them apart. So the zygote hands each
worker the write end of a pipe whose read end only the host holds (``zygote.Child``).
The worker keeps it through its start (the thread that forwards its output, its loop),
which is where its memory limit ends it, and writes one byte on it before it exits
(:func:`leave`); it closes it before the plugin's code first runs (:func:`disarm`, as
``Load`` imports the plugin), so the plugin never holds it and cannot write on it. The
host reads it once the worker has exited (:func:`left`): a byte is the worker's memory;
none, the plugin's own exit with that code.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["arm", "disarm", "kept", "leave", "left"]

#: the write end in this worker, until the plugin's code may run
_fd: int | None = None


def arm(fd: int) -> None:
    """In the forked worker, before its sandbox: the write end it was handed."""
    global _fd
    _fd = fd


def kept() -> tuple[int, ...]:
    """The descriptor to keep open while the sandbox closes the others."""
    return () if _fd is None else (_fd,)


def disarm() -> None:
    """Before the plugin's code first runs: close the write end (for good)."""
    global _fd
    fd, _fd = _fd, None
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def leave() -> None:
    """The worker's memory limit ended its start: say so to the host (no allocation)."""
    if _fd is not None:
        with contextlib.suppress(OSError):
            os.write(_fd, b"m")


def left(read_end: int) -> bool:
    """In the host, once the worker has exited: whether it left the mark (its write end
    is closed by then, so this never waits)."""
    with contextlib.suppress(OSError):
        return os.read(read_end, 1) == b"m"
    return False
