"""The host's side of the seccomp filter: it answers every denied system call, and reports it.

A sandboxed worker's filter (``isolation._seccomp``) sends each denied call to
a listener descriptor instead of failing it itself (``SECCOMP_RET_USER_NOTIF``).
The worker passes that descriptor to the host before any plugin code runs and
keeps no copy. The host reads each notification, answers ``EPERM`` (the
plugin sees the same ``PermissionError`` as before) and records a security
event naming the plugin, the call and the layer. The record comes from the
kernel through the host, not from the worker: a plugin calling ``syscall(2)``
through ``ctypes`` and ignoring the error is seen too, and cannot forge or
suppress it. Should the host be gone, the kernel fails the call (``ENOSYS``).

One denied call is answered with success and not reported: an ``fchown`` that
asks for the owner its file already has, which SQLite makes whenever it runs as
root (:func:`_keeps_owner`). The kernel never makes it, so it changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, Final

from plugbay.isolation import _seccomp

__all__ = ["SeccompListener", "describe_call", "probe"]

# struct seccomp_notif { u64 id; u32 pid; u32 flags; struct seccomp_data data; }
_NOTIF: Final = struct.Struct("=QIIiIQ6Q")
# struct seccomp_notif_resp { u64 id; s64 val; s32 error; u32 flags; }
_RESP: Final = struct.Struct("=QqiI")
_IOC_READ_WRITE: Final = 3
_RECV: Final = (_IOC_READ_WRITE << 30) | (_NOTIF.size << 16) | (ord("!") << 8) | 0
_SEND: Final = (_IOC_READ_WRITE << 30) | (_RESP.size << 16) | (ord("!") << 8) | 1
# SECCOMP_IOCTL_NOTIF_ID_VALID as Linux 5.0 numbered it (_IOR); 5.7+ still accept it
_ID_VALID: Final = (2 << 30) | (8 << 16) | (ord("!") << 8) | 2
#: (uid_t)-1 / (gid_t)-1: "leave it as it is"
_KEEP: Final = 0xFFFF_FFFF

_FAMILIES: Final[dict[int, str]] = {
    int(family): family.name
    for family in (
        socket.AF_UNIX,
        socket.AF_INET,
        socket.AF_INET6,
        socket.AF_NETLINK,
        socket.AF_PACKET,
    )
}
#: what a denied call was for, and the permission that would allow it (if any)
_PURPOSE: Final = {
    "socket": ("opening a socket", "network:ADDRESS:PORT"),
    "socketpair": ("opening a socket pair", None),
    "execve": ("running a program", "subprocess"),
    "execveat": ("running a program", "subprocess"),
    "fork": ("starting a process", "subprocess"),
    "vfork": ("starting a process", "subprocess"),
    "clone": ("starting a process", "subprocess"),
    "kill": ("signalling another process", None),
    "tkill": ("signalling another process", None),
    "tgkill": ("signalling another process", None),
    "pidfd_open": ("reaching another process", None),
    "pidfd_send_signal": ("signalling another process", None),
    "prlimit64": ("changing its resource limits", None),
    "setrlimit": ("changing its resource limits", None),
    "listen": ("listening for connections", None),
    "prctl": ("changing the signal that ends it with the host", None),
    "setpriority": ("changing another process's priority", None),
    "ioprio_set": ("changing another process's I/O priority", None),
    **dict.fromkeys(
        ("sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr"),
        ("changing how another process is scheduled", None),
    ),
}


def _names(arch: str) -> dict[int, str]:
    return {number: name for name, number in _seccomp.SYSCALLS.get(arch, {}).items()}


def describe_call(name: str, args: tuple[int, ...]) -> tuple[str, str | None]:
    """``("the system call socket(AF_INET) (opening a socket)", "network:ADDRESS:PORT")``."""
    shown = name
    if name in ("socket", "socketpair"):
        shown = f"{name}({_FAMILIES.get(args[0], str(args[0]))})"
    elif name in ("kill", "tkill", "tgkill", "pidfd_open") or name.startswith("sched_set"):
        shown = f"{name}(pid {args[0] & 0xFFFFFFFF})"
    elif name in ("setpriority", "ioprio_set"):
        shown = f"{name}({args[0] & 0xFFFFFFFF}, {args[1] & 0xFFFFFFFF})"
    elif name == "clone" and args[0] & 0x7E020000:
        return f"the system call {name} (creating namespaces)", None
    purpose, permission = _PURPOSE.get(name, ("", None))
    return f"the system call {shown}" + (f" ({purpose})" if purpose else ""), permission


class SeccompListener:
    """One worker's listener descriptor, read on the host's event loop.

    ``loop_probe``: the worker's runtime makes a uvloop loop as it starts, and libuv asks
    for an io_uring ring (to batch ``epoll_ctl``), which the filter denies. That denial
    is answered ``EPERM`` as any other (libuv then calls ``epoll_ctl`` itself) but not
    reported: it is the first one, and it is the runtime's, not the plugin's. The worker
    blocks in that call until it is answered, and its plugin's code arrives only with
    ``Load``, which the host sends after :meth:`runtime_ready`; so no denial a plugin
    makes is ever taken for it."""

    def __init__(
        self, fd: int, report: Callable[[dict[str, Any]], None], *, loop_probe: bool = False
    ) -> None:
        self.fd = fd
        self.report = report
        self.names = _names(_seccomp.machine())
        self._loop: asyncio.AbstractEventLoop | None = None
        #: libuv's io_uring probe is still to come (see the class)
        self._probe_due = loop_probe
        self._probed: asyncio.Future[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._probed = loop.create_future()
        if not self._probe_due:
            self._probed.set_result(None)
        loop.add_reader(self.fd, self._ready)

    def _ready(self) -> None:
        event = answer(self.fd, self.names)
        if event is None:
            return
        if self._probe_due and event["syscall"] == "io_uring_setup":
            self._runtime_done()
            return
        self.report(event)

    def _runtime_done(self) -> None:
        self._probe_due = False
        if self._probed is not None and not self._probed.done():
            self._probed.set_result(None)

    async def runtime_ready(self, timeout: float, gone: asyncio.Future[Any] | None) -> None:
        """Once the worker's runtime has made its loop (or ``timeout`` passed, or the
        worker is ``gone``): from here on every denial is the plugin's, and reported."""
        probed = self._probed
        if probed is not None and not probed.done():
            waits: list[asyncio.Future[Any]] = [probed, *([gone] if gone is not None else [])]
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        self._runtime_done()

    def close(self) -> None:
        if self.fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


def answer(fd: int, names: dict[int, str]) -> dict[str, Any] | None:
    """Take one notification from ``fd``, answer it, and say what it was: ``EPERM`` and
    the event to report, or None when there is nothing to report (an ``fchown`` that
    keeps its file's owner, see :func:`_keeps_owner`, answered with success)."""
    buffer = bytearray(_NOTIF.size)  # the kernel wants it zeroed
    try:
        fcntl.ioctl(fd, _RECV, buffer, True)
    except OSError:  # the caller died meanwhile (ENOENT), or was interrupted
        return None
    notice, pid, _flags, nr, _arch, _ip, *args = _NOTIF.unpack(buffer)
    name = names.get(nr, f"#{nr}")
    if name == "fchown" and _keeps_owner(fd, notice, pid, args):
        _respond(fd, notice, 0)
        return None
    _respond(fd, notice, -errno.EPERM)
    operation, permission = describe_call(name, tuple(args))
    return {
        "kind": "denied",
        "operation": operation,
        "permission": permission,
        "layer": "seccomp",
        "syscall": name,
        "pid": pid,
    }


def _respond(fd: int, notice: int, error: int) -> None:
    """The call's result: ``error`` (negative errno), or 0 for success. Never
    ``SECCOMP_USER_NOTIF_FLAG_CONTINUE``: a call sent here is not made by the kernel."""
    with contextlib.suppress(OSError):  # ENOENT: the call was interrupted, nobody waits
        fcntl.ioctl(fd, _SEND, bytearray(_RESP.pack(notice, 0, error, 0)), True)


def _keeps_owner(fd: int, notice: int, pid: int, args: list[int]) -> bool:
    """Whether ``fchown(args[0], args[1], args[2])`` asks for the owner and group its file
    already has (or -1, keep it): a no-op, which the host answers with success instead of
    a denial.

    SQLite does this whenever it runs as root, as a sandboxed worker does in its own user
    namespace when the host is root: it opens its journal, WAL and shared-memory files and
    hands each to the owner of the database (``robustFchown`` in its unix VFS), so every
    plugin using ``context.storage`` or ``sqlite3`` would start with three false denials.

    The call is never made (see :func:`_respond`), so no answer here can change a file; a
    race (another thread of the plugin putting another file under the descriptor
    meanwhile) can only change which file's owner was compared, never an owner. The
    descriptor is looked at through ``/proc/<tid>/fd`` (the link leads to the open file
    itself, not to a path), and the notification checked still pending afterwards, so the
    tid was not reused. Anything not shown to be a no-op is refused and reported."""
    target, uid, gid = (arg & 0xFFFF_FFFF for arg in args[:3])  # unsigned int, uid_t, gid_t
    try:
        owner = os.stat(f"/proc/{pid}/fd/{target}")
        fcntl.ioctl(fd, _ID_VALID, struct.pack("=Q", notice))
    except OSError:  # no such descriptor, the caller gone, or not ours to look at
        return False
    return uid in (_KEEP, owner.st_uid) and gid in (_KEEP, owner.st_gid)


def probe() -> tuple[bool, str]:
    """Whether a denied call reaches a listener here (tried in a forked child)."""
    from plugbay.isolation._layer import _in_child

    def test() -> str:
        fd = _seccomp.install(
            _seccomp.build(_seccomp.FilterSpec(pid=os.getpid(), notify=True)), listener=True
        )
        assert fd is not None
        seen: list[dict[str, Any]] = []
        names = _names(_seccomp.machine())

        def serve() -> None:
            event = answer(fd, names)
            if event is not None:
                seen.append(event)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with contextlib.suppress(PermissionError):
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
        thread.join(5)
        if not seen:
            raise RuntimeError("the listener heard nothing of a denied socket()")
        return f"a denied {seen[0]['syscall']}() reached the listener and got EPERM"

    return _in_child("seccomp", test)
