"""The worker's seccomp listener is taken on the host's event loop
(``_process_parts.await_listener``): the loop keeps serving while a worker confines itself,
the descriptor that arrives is the one sent, and a worker that closes its socket or never
sends one leaves the start without a listener instead of a hang."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

from plugbay.isolation._process_parts import await_listener


async def test_the_listener_sent_later_arrives_and_the_loop_serves_meanwhile(
    tmp_path: Path,
) -> None:
    host_end, worker_end = socket.socketpair()
    marker = tmp_path / "listener"
    marker.write_text("x")
    sent = os.open(marker, os.O_RDONLY)
    ticks = 0
    stop = asyncio.Event()

    async def ticking() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    def worker() -> None:  # a worker that confines itself for a while, then hands it over
        time.sleep(0.15)
        socket.send_fds(worker_end, [b"U"], [sent])
        worker_end.close()

    ticker = asyncio.create_task(ticking())
    threading.Thread(target=worker).start()
    fd, probe = await await_listener(host_end, timeout=10)
    stop.set()
    await ticker
    try:
        assert fd is not None
        assert probe is True
        assert os.fstat(fd).st_ino == os.fstat(sent).st_ino  # the very file that was sent
        assert ticks >= 5  # the loop ran other work while it waited
        assert host_end.fileno() == -1  # the report socket is closed once read
    finally:
        if fd is not None:
            os.close(fd)
        os.close(sent)


async def test_a_worker_that_closes_its_socket_leaves_no_listener() -> None:
    host_end, worker_end = socket.socketpair()
    asyncio.get_running_loop().call_later(0.05, worker_end.close)
    assert await await_listener(host_end, timeout=10) == (None, False)
    assert host_end.fileno() == -1


async def test_a_worker_that_never_sends_is_given_up_at_the_timeout() -> None:
    host_end, worker_end = socket.socketpair()
    try:
        began = time.monotonic()
        assert await await_listener(host_end, timeout=0.2) == (None, False)
        assert 0.15 <= time.monotonic() - began < 5
        assert host_end.fileno() == -1
    finally:
        worker_end.close()
