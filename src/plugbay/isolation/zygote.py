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
import collections
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Final, Protocol

from plugbay.isolation import _memory_mark
from plugbay.isolation.loops import LOOP_VARIABLE

if TYPE_CHECKING:
    from plugbay.isolation.base import EnvironmentPaths

__all__ = ["Child", "Zygote", "ZygoteProcess", "receive_fds", "zygote_command", "zygote_main"]

_PR_SET_CHILD_SUBREAPER: Final = 36
#: seconds without a request, after its first fork, after which the zygote is idle
#: (``_warm.map_code``)
_FIRST_IDLE: Final = 0.2


def _reap(control: socket.socket) -> None:
    """Collect every child that exited and tell the host how (it names limits from it)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        with contextlib.suppress(OSError):
            control.send(b'{"exit": %d, "status": %d}' % (pid, status))


def zygote_main(control_fd: int, read_paths: list[str] | None = None) -> None:
    """Serve the host; ``read_paths`` set: a plugin environment's zygote (no host
    site-packages), whose sandboxed workers may read those paths besides the stdlib."""
    if read_paths is not None:
        # its plugins declare python-dependencies, which each worker's manifest check
        # parses; the host's zygote leaves it to the rare worker that needs it (5-20 ms)
        import packaging.requirements  # noqa: F401

    from plugbay.isolation import (  # the warm part: every worker inherits it
        _child,  # a worker's first steps (it imports the worker runtime)
        _warm,
        diagnostics,  # noqa: F401  (imported by every worker)
        limits,
        loops,
    )
    from plugbay.isolation._layer import _libc

    loops.loop_factory()  # uvloop, when installed, is imported once here
    with contextlib.suppress(Exception):  # found once here, not by each sandboxed worker
        from plugbay.isolation._cgroups import discover

        discover()

    _child.die_with_parent()
    # orphans of a worker (a plugin granted subprocesses) are ours to reap, not init's
    _libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if read_paths is None:
        runtime = limits.runtime_read_paths()
    else:
        runtime = (*limits.runtime_read_paths(site_packages=False), *read_paths)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the host's to handle
    limits.base_environment()  # each sandboxed worker's environment, before its grants
    _warm.prepare()  # what each worker would do first, done once (fewer pages it copies)
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
    control = socket.socket(fileno=control_fd)
    try:
        control.send(b'{"ready": true}')
    except OSError:  # the host gave up on it while it booted (a start cut short)
        os._exit(0)
    # idle is counted from the first fork on: before it, the host is still loading and
    # its first request may come any moment (map_code there would hold up that fork)
    idle: float | None = None
    mapped = False
    while True:
        try:
            readable, _, _ = select.select([control.fileno(), wake_read], [], [], idle)
        except InterruptedError:
            continue
        if not readable:  # first idle: what costs boot time but needs no fork
            with contextlib.suppress(OSError, AttributeError):  # no /proc, no madvise
                _warm.map_code()
            idle, mapped = None, True
            continue
        if wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 4096)
            _reap(control)
        if control.fileno() not in readable:
            continue
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, 65536, 3)
        except OSError:
            os._exit(0)
        if not data:  # the host is gone
            os._exit(0)
        _warm.freeze()
        pid = os.fork()
        if pid == 0:
            _child.start(control, data, fds, runtime)
        # each page this process writes from here on is the new worker's own (its copy
        # is then the worker's alone): the request is parsed in the worker, not here, and
        # the answer is formatted, not encoded (about 0.2 MiB less in each worker)
        for fd in fds:
            os.close(fd)
        try:
            _announce(control, pid)
        except OSError:  # the host is gone: its workers die with this process
            os._exit(0)
        idle = None if mapped else _FIRST_IDLE


def _announce(control: socket.socket, pid: int) -> None:
    """Tell the host a new worker's pid, with a pidfd for it (:class:`Child`): opened
    here, before this process collects the worker's exit, it can only name that worker."""
    message = b'{"pid": %d}' % pid
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # a kernel before 5.3: the number alone
        control.send(message)
        return
    try:
        socket.send_fds(control, [message], [pidfd])
    finally:
        os.close(pidfd)


def zygote_command(
    control_fd: int, environment: EnvironmentPaths | None = None
) -> tuple[list[str], dict[str, str]]:
    """The zygote's interpreter arguments (after ``sys.executable``) and its whole
    environment, serving the host on ``control_fd``; ``environment``: a plugin
    environment's zygote."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        # the same plugbay as the host, whatever put it on the host's path
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "PYTHONDONTWRITEBYTECODE": "1",
        # one malloc arena: a worker's threads would each reserve 64 MiB of address
        # space, which RLIMIT_AS counts against the plugin's memory limit
        "MALLOC_ARENA_MAX": "1",
    }
    if os.environ.get(LOOP_VARIABLE):  # the host's choice of loop holds for its workers
        env[LOOP_VARIABLE] = os.environ[LOOP_VARIABLE]
    if environment is None:
        args = [
            "-c",
            f"from plugbay.isolation.zygote import zygote_main; zygote_main({control_fd})",
        ]
    else:
        # isolated, no site: the import path is set here, explicitly (PYTHONPATH would
        # put the host's site-packages before the plugin's libraries)
        e = environment
        del env["PYTHONPATH"]
        args = [
            "-I",
            "-S",
            "-c",
            "import sys, site; sys.path[:] = [p for p in sys.path if p]; "
            f"site.addsitedir({e.site_packages!r}); sys.path.append({e.runtime!r}); "
            "from plugbay.isolation.zygote import zygote_main; "
            f"zygote_main({control_fd}, {list(e.read_paths)!r})",
        ]
    return args, env


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def receive_fds(
    sock: socket.socket, size: int, max_fds: int, *, deadline: float | None = None
) -> tuple[bytes, list[int]]:
    """One message on a non-blocking socket, with the descriptors passed with it
    (``loop.sock_recv`` would drop them): the zygote's word of a worker, a worker's
    seccomp listener. ``TimeoutError`` past ``deadline`` (the loop's clock)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, size, max_fds)
        except (BlockingIOError, InterruptedError):
            pass
        else:
            return data, fds
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(sock.fileno(), _settle, readable)
        try:
            async with asyncio.timeout_at(deadline):
                await readable
        finally:
            loop.remove_reader(sock.fileno())


class ZygoteProcess(Protocol):
    """What :class:`Zygote` uses of its process: an asyncio subprocess, or the one
    :mod:`plugbay.isolation.zygote_early` started before the loop ran."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def kill(self) -> None: ...


class Child:
    """A worker the zygote forked: its pid, and a pidfd that names that process, not
    its number.

    The zygote collects a worker's exit and tells the host a moment later; in between,
    the number is free, and the machine may give it to any new process. So the host
    signals a worker through its pidfd (``pidfd_send_signal``: a process that has
    exited is not there to signal), and asks :meth:`exited` before it moves one
    (``sched_setaffinity`` takes a number). Without a pidfd (Linux before 5.3), the
    number is all there is, as before.
    """

    __slots__ = ("closed", "fd", "mark", "out_of_memory", "pid")

    def __init__(self, pid: int, fd: int | None = None) -> None:
        self.pid = pid
        self.fd = fd
        self.closed = False
        #: the read end of the worker's memory mark (``_memory_mark``), and whether it
        #: left it (:meth:`ran_out_of_memory`)
        self.mark: int | None = None
        self.out_of_memory = False

    def exited(self) -> bool:
        """Whether the worker has exited (its number may be another process's soon);
        False when that cannot be told (no pidfd)."""
        if self.closed:
            return True
        if self.fd is None:
            return False
        poll = select.poll()  # not select(): a thousand workers' descriptors pass 1024
        poll.register(self.fd, select.POLLIN)
        return bool(poll.poll(0))

    def kill(self) -> None:
        """SIGKILL the worker, if it is still there (never another process)."""
        if self.closed:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.fd is None:
                os.kill(self.pid, signal.SIGKILL)
            else:
                signal.pidfd_send_signal(self.fd, signal.SIGKILL)

    def close(self) -> None:
        """Once the worker's exit is known: nothing of it is left to signal."""
        fd, self.fd, self.closed = self.fd, None, True
        if fd is not None:
            os.close(fd)
        self.ran_out_of_memory()

    def ran_out_of_memory(self) -> bool:
        """Once the worker has exited: whether it left its memory mark (its memory limit
        ended its start, not the plugin's own ``os._exit``)."""
        mark, self.mark = self.mark, None
        if mark is not None:
            self.out_of_memory = _memory_mark.left(mark)
            os.close(mark)
        return self.out_of_memory


class Zygote:
    """The host's handle on the zygote process.

    One reader task takes what the zygote sends: the pid of each worker it forked
    (in the order asked) and each worker's wait status when it exits.
    """

    def __init__(self, environment: EnvironmentPaths | None = None) -> None:
        #: a plugin environment's paths; None: the host's own environment
        self.environment = environment
        self._proc: ZygoteProcess | None = None
        self._control: socket.socket | None = None
        self._lock = asyncio.Lock()
        self._replies: collections.deque[asyncio.Future[Child]] = collections.deque()
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._spawned = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Start the zygote, once: callers that ask while it boots (workers started
        concurrently, ``plugbay run`` warming it up early) all wait for the same start."""
        if self.alive() and self._control is not None:
            return
        await asyncio.shield(self._boot_once())

    def _boot_once(self) -> asyncio.Future[None]:
        if self._starting is None or self._starting.done():
            self._spawned.clear()
            self._starting = asyncio.ensure_future(self._boot())
            # a failed boot is raised to whoever waits for it; none may be left waiting
            self._starting.add_done_callback(lambda f: f.cancelled() or f.exception())
        return self._starting

    async def begin(self) -> None:
        """Start booting the zygote and return once its process runs (not once it is
        ready): what the host does next overlaps the zygote's imports."""
        if self.alive() and self._control is not None:
            return
        starting = self._boot_once()
        spawned: asyncio.Future[Any] = asyncio.ensure_future(self._spawned.wait())
        either: list[asyncio.Future[Any]] = [starting, spawned]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        spawned.cancel()

    async def _boot(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args, env = zygote_command(theirs.fileno(), self.environment)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                pass_fds=[theirs.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._spawned.set()
        await self._until_ready(ours)

    def adopt(self, process: ZygoteProcess, control: socket.socket) -> None:
        """Take a zygote process started before the event loop ran (``plugbay run``
        spawns it at its first moment: :mod:`plugbay.isolation.zygote_early`), with the
        host's end of its control socket; it is this handle's boot from here on."""
        self._proc = process
        self._spawned.set()
        self._starting = asyncio.ensure_future(self._until_ready(control))
        self._starting.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _until_ready(self, ours: socket.socket) -> None:
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            ready = await asyncio.wait_for(loop.sock_recv(ours, 4096), 30)
        except BaseException:  # cancelled (the host stops), or no answer: it exits
            ours.close()
            raise
        if not ready:
            ours.close()
            raise RuntimeError("the plugbay zygote exited before it was ready")
        self._control = ours
        self._reader = asyncio.create_task(self._read(ours), name="plugbay-zygote")

    async def _read(self, control: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data, fds = await receive_fds(control, 4096, 1)
                if not data:
                    break
                child = None
                try:
                    message = json.loads(data)
                    if "exit" in message:
                        future = self._exits.setdefault(int(message["exit"]), loop.create_future())
                        if not future.done():
                            future.set_result(int(message["status"]))
                    elif self._replies:
                        child = Child(int(message["pid"]), fds.pop() if fds else None)
                        reply = self._replies.popleft()
                        if not reply.done():
                            reply.set_result(child)
                            child = None
                finally:
                    for fd in fds:
                        os.close(fd)
                    if child is not None:  # its spawn was given up: nobody holds it
                        child.close()
        except (OSError, ValueError):
            pass
        gone = RuntimeError("the plugbay zygote went away")
        while self._replies:
            reply = self._replies.popleft()
            if not reply.done():
                reply.set_exception(gone)
        if self._control is control:
            self._control = None

    async def spawn(self, request: dict[str, Any]) -> tuple[Child, socket.socket]:
        """A new worker, and the host's end of its socket."""
        child, host_end, _ = await self._spawn(request, report=False)
        return child, host_end

    async def spawn_sandboxed(
        self, request: dict[str, Any]
    ) -> tuple[Child, socket.socket, socket.socket]:
        """A new sandboxed worker, the host's end of its socket, and a socket on which it
        sends its seccomp listener once confined (or which it just closes)."""
        child, host_end, report = await self._spawn(request, report=True)
        assert report is not None
        return child, host_end, report

    async def _spawn(
        self, request: dict[str, Any], *, report: bool
    ) -> tuple[Child, socket.socket, socket.socket | None]:
        await self.start()
        control = self._control
        assert control is not None
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours, theirs = socket.socketpair(socket.AF_UNIX) if report else (None, None)
        mark, mark_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)  # ``_memory_mark``
        passed = [worker_end.fileno(), mark_end]
        passed += [theirs.fileno()] if theirs is not None else []
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Child] = loop.create_future()
        try:  # every end closed on every way out, a cancel waiting for the lock too
            async with self._lock:
                self._replies.append(reply)
                socket.send_fds(control, [json.dumps(request).encode()], passed)
                child = await asyncio.wait_for(reply, 30)
        except BaseException:
            host_end.close()
            os.close(mark)
            if ours is not None:
                ours.close()
            raise
        finally:
            worker_end.close()
            os.close(mark_end)
            if theirs is not None:
                theirs.close()
        child.mark = mark
        self._exits.setdefault(child.pid, loop.create_future())
        return child, host_end, ours

    def exited(self, pid: int) -> asyncio.Future[int]:
        """The worker's wait status (``os.waitstatus_to_exitcode`` reads it) once it exits."""
        return self._exits.setdefault(pid, asyncio.get_running_loop().create_future())

    def forget(self, pid: int) -> None:
        self._exits.pop(pid, None)

    async def stop(self) -> None:
        booting, self._starting = self._starting, None
        if booting is not None and not booting.done():  # a start cut short while it booted
            booting.cancel()
            await asyncio.wait([booting])
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
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
