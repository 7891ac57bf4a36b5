"""The zygote: one warm process that has imported the worker runtime and forks workers.

The host starts it once as a fresh interpreter with a minimal environment (so
no worker can find the host's variables, not even in ``/proc/self/environ``),
and asks it for workers over a ``SOCK_SEQPACKET`` control socket, passing each
worker's end of a fresh socketpair with ``SCM_RIGHTS``. A worker is forked,
joins a new session, asks to be killed if the zygote dies (which itself dies
with the host), gets its limits, and runs the worker runtime on that socket.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import resource
import signal
import socket
import subprocess
import sys
from typing import Any, Final

__all__ = ["Zygote", "zygote_main"]

_PR_SET_PDEATHSIG: Final = 1
_RLIMITS: Final = {
    "memory": resource.RLIMIT_AS,
    "cpu_seconds": resource.RLIMIT_CPU,
    "open_files": resource.RLIMIT_NOFILE,
    "file_size": resource.RLIMIT_FSIZE,
}


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _apply(request: dict[str, Any]) -> None:
    """In the forked worker, before any plugin code: environment and resource limits."""
    os.environ.clear()
    os.environ.update(request.get("env", {}))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for key, which in _RLIMITS.items():
        value = request.get("limits", {}).get(key)
        if value is not None:
            soft = int(value)
            # CPU: the soft limit sends SIGXCPU first, the hard one a second later kills
            hard = soft + 1 if which == resource.RLIMIT_CPU else soft
            resource.setrlimit(which, (soft, hard))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-size write is an error, not a death


def zygote_main(control_fd: int) -> None:
    from plugbay.isolation import worker  # the warm part: every worker inherits it

    _die_with_parent()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the host's to handle
    control = socket.socket(fileno=control_fd)
    control.send(b'{"ready": true}')
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, 65536, 1)
        except OSError:
            os._exit(0)
        if not data:  # the host is gone
            os._exit(0)
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            try:
                control.close()
                os.setsid()
                _die_with_parent()
                _apply(request)
                worker.main(fds[0])
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        control.send(json.dumps({"pid": pid}).encode())


class Zygote:
    """The host's handle on the zygote process."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._control: socket.socket | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        if self.alive():
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            # the same plugbay as the host, whatever put it on the host's path
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            f"from plugbay.isolation.zygote import zygote_main; zygote_main({theirs.fileno()})",
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        ours.setblocking(False)
        self._control = ours
        loop = asyncio.get_running_loop()
        ready = await asyncio.wait_for(loop.sock_recv(ours, 4096), 30)
        if not ready:
            raise RuntimeError("the plugbay zygote exited before it was ready")

    async def spawn(
        self, env: dict[str, str], limits: dict[str, int | None]
    ) -> tuple[int, socket.socket]:
        """A new worker: its pid, and the host's end of its socket."""
        await self.start()
        assert self._control is not None
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        loop = asyncio.get_running_loop()
        request = json.dumps({"env": env, "limits": limits}).encode()
        async with self._lock:
            try:
                socket.send_fds(self._control, [request], [worker_end.fileno()])
                reply = await asyncio.wait_for(loop.sock_recv(self._control, 4096), 30)
            finally:
                worker_end.close()
        if not reply:
            host_end.close()
            raise RuntimeError("the plugbay zygote went away while starting a worker")
        return int(json.loads(reply)["pid"]), host_end

    async def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._proc is not None:
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
            self._proc = None
