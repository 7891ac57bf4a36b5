"""Reads and writes that block the calling thread on a non-blocking socket, up to a deadline.

For ``frames.Channel.round_trip``: a synchronous exchange on the loop's own thread (a
plugin on a Ray node calling ``context.storage``), which cannot await the transport.
"""

from __future__ import annotations

import os
import select
import time

__all__ = ["read_some", "write_all"]


def write_all(fd: int, data: bytes, deadline: float) -> None:
    """Write all of ``data`` to ``fd`` by ``deadline`` (``time.monotonic``) or raise
    ``TimeoutError``."""
    view = memoryview(data)
    while view:
        _wait(fd, deadline, write=True)
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue


def read_some(fd: int, deadline: float) -> bytes:
    """What ``fd`` has to read by ``deadline``; ``ConnectionError`` once it is closed."""
    while True:
        _wait(fd, deadline, write=False)
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            continue
        if not data:
            raise ConnectionError("the channel to the host closed")
        return data


def _wait(fd: int, deadline: float, *, write: bool) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no answer from the host in time")
    ready = select.select([], [fd], [], left) if write else select.select([fd], [], [], left)
    if not ready[1 if write else 0]:
        raise TimeoutError("no answer from the host in time")
