"""The zygote's requests (``isolation.zygote``): one it cannot read is refused by the
worker forked for it, and the zygote serves on. It parses no request itself: each page
it writes after a fork would become that worker's own memory."""

from __future__ import annotations

import asyncio
import os
import socket
import struct

from plugbay.isolation import frames
from plugbay.isolation.zygote import Child, Zygote


def _first_frame(sock: socket.socket) -> frames.Message:
    """The first frame on ``sock``, read by its length (a worker that refused to start
    waits for the host's first frame before it exits: no end of stream before that)."""
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk = sock.recv(65536)
        assert chunk, f"the stream ended after {len(data)} bytes, within the first frame"
        data += chunk
    (size,) = struct.unpack(">I", data[:4])
    return frames.decode(data[4 : 4 + size])


async def test_a_malformed_request_is_refused_by_its_worker_and_the_zygote_serves_on() -> None:
    zygote = Zygote()
    await zygote.start()
    try:
        control = zygote._control
        assert control is not None
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # the zygote's answer (the pid it forked) is awaited as spawn() awaits it: left
        # unread, it would be taken for the next spawn's answer
        reply: asyncio.Future[Child] = asyncio.get_running_loop().create_future()
        zygote._replies.append(reply)
        with host_end:
            # what no host sends: the worker answers with a Fail frame and exits
            socket.send_fds(control, [b"{not json"], [worker_end.fileno()])
            worker_end.close()
            refused_child = await asyncio.wait_for(reply, 30)
            refused = refused_child.pid
            host_end.settimeout(30)
            refusal = await asyncio.to_thread(_first_frame, host_end)
        assert isinstance(refusal, frames.Fail), refusal
        assert "could not be set up" in refusal.error["message"], refusal.error
        assert "JSONDecodeError" in refusal.error["message"], refusal.error

        assert os.waitstatus_to_exitcode(await asyncio.wait_for(zygote.exited(refused), 30)) == 71
        refused_child.close()

        # the zygote is still there, and still forks workers that run
        assert zygote.alive()
        child, channel = await zygote.spawn({"env": {}, "limits": {}})
        with channel:
            os.kill(child.pid, 0)  # the worker exists
            assert not child.exited()
        status = await asyncio.wait_for(zygote.exited(child.pid), 30)  # its channel closed: it ends
        assert os.waitstatus_to_exitcode(status) == 0
        assert child.exited()  # its pidfd says so, whatever process has its number now
        child.close()
    finally:
        await zygote.stop()


async def test_a_spawn_cancelled_while_it_waits_for_the_lock_leaks_no_descriptor() -> None:
    """A spawn cancelled before its turn (another spawn holds the lock) closes its sockets
    and its memory mark's pipe: the host's descriptors are as they were."""
    zygote = Zygote()
    await zygote.start()
    try:
        before = set(os.listdir("/proc/self/fd"))
        async with zygote._lock:  # another spawn's turn
            waiting = asyncio.ensure_future(zygote.spawn_sandboxed({"env": {}, "limits": {}}))
            for _ in range(1000):  # its turns on the loop until it waits for the lock
                if zygote._lock._waiters:  # type: ignore[attr-defined]
                    break
                await asyncio.sleep(0)
            assert zygote._lock._waiters, "the spawn never waited for the lock"  # type: ignore[attr-defined]
            waiting.cancel()
            await asyncio.wait([waiting])
        assert waiting.cancelled()
        leaked = set(os.listdir("/proc/self/fd")) - before
        assert not leaked, f"descriptors left open: {sorted(leaked, key=int)}"
    finally:
        await zygote.stop()
