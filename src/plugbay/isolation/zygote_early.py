"""The zygote spawned at ``plugbay run``'s first moment, before the event loop runs.

The zygote's own boot (a fresh interpreter importing the worker runtime, some 0.25 s)
is the longest wait on the way to ``plugbay run``'s first sandboxed plugin. Spawned
with :class:`subprocess.Popen` as soon as the command line is read, before the host
imports the event loop's modules, the CLI's and its own, it starts some 40 ms sooner
than from the loop; :meth:`plugbay.isolation.zygote.Zygote.adopt` then makes it the
host's zygote, exactly as if the host had started it (same command, environment and
descriptors: :func:`plugbay.isolation.zygote.zygote_command`).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

from plugbay.isolation.zygote import Zygote, zygote_command

__all__ = ["EarlyZygote", "spawn_zygote"]


class EarlyZygote:
    """A zygote process started before the event loop ran, and the host's end of its
    control socket; :meth:`adopt` hands it to a :class:`Zygote` once a loop runs."""

    def __init__(self, popen: subprocess.Popen[bytes], control: socket.socket) -> None:
        self._popen = popen
        self.control = control

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    async def wait(self) -> int:
        # a thread waits (Popen's own lock keeps one waitpid at a time); the loop's
        # child watcher knows nothing of this process
        return await asyncio.to_thread(self._popen.wait)

    def kill(self) -> None:
        self._popen.kill()

    def adopt(self) -> Zygote:
        """The host's :class:`Zygote` for this process (in the running loop)."""
        zygote = Zygote()
        zygote.adopt(self, self.control)
        return zygote


def spawn_zygote() -> EarlyZygote | None:
    """Spawn the host's zygote now; None when it cannot be (the backend then starts its
    own when a worker needs it, and that start says why it cannot)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    args, env = zygote_command(theirs.fileno())
    try:
        popen = subprocess.Popen(
            [sys.executable, *args],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        ours.close()
        return None
    finally:
        theirs.close()
    return EarlyZygote(popen, ours)
