"""A forked worker's first steps, before any plugin code: its descriptors, its request,
every sandbox layer, then the worker runtime.

Only the zygote imports this module (``zygote_main``), so everything it uses is
imported, looked up and bound once there, before the first fork. Each page a worker
writes after its fork is its own copy, and on CPython 3.11 using an object writes its
reference count: an import statement in the child (the import machinery's Python
code), a file object where two system calls do, or a helper called once per worker,
are pages every worker copies. So this path stays short and mostly C: descriptors
closed with one ``close_range``, files read and written with ``os.read``/``os.write``
(``limits``, ``_cgroups``), the seccomp filter filled in from one made ahead
(``_seccomp.packed``), the environment already reduced to its base in the zygote
(``limits.base_environment``).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
from typing import Any, Final

from plugbay.api.errors import PlugbayError
from plugbay.isolation import _memory_mark, frames, limits, loops, worker
from plugbay.isolation._layer import _libc
from plugbay.isolation._seccomp import SeccompLayer

__all__ = ["die_with_parent", "start"]

_PR_SET_PDEATHSIG: Final = 1
_RLIMITS: Final = {
    "memory": resource.RLIMIT_AS,
    "cpu_seconds": resource.RLIMIT_CPU,
    "open_files": resource.RLIMIT_NOFILE,
    "file_size": resource.RLIMIT_FSIZE,
}
#: seconds a worker that refused to start waits for the host's first frame (bounded: it
#: dies with the host anyway)
_REFUSAL_READ: Final = 60.0
#: above any descriptor a worker inherits (``close_range`` takes the rest in one call)
_FD_END: Final = 1 << 30


def die_with_parent() -> None:
    _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start(control: socket.socket, data: bytes, fds: list[int], runtime: tuple[str, ...]) -> None:
    """The forked child of ``zygote_main``: confine itself as ``data`` asks, then run
    the worker on ``fds[0]`` (``fds[1]``: the write end of its memory mark,
    ``_memory_mark``; ``fds[2]``: a socket to the host for the seccomp listener).
    Never returns."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        control.close()
        os.setsid()
        die_with_parent()
        if len(fds) > 1:
            _memory_mark.arm(fds[1])
        try:
            request = json.loads(data)
            layers = _confine(request, fds[0], runtime, fds[2] if len(fds) > 2 else None)
        except BaseException as exc:
            _refuse(fds[0], exc, fds[1:])
            os._exit(71)
        worker.main(fds[0], layers)
    finally:
        os._exit(70)


def _apply(request: dict[str, Any]) -> None:
    """An unsandboxed worker (a trusted plugin asked for a process): environment and limits."""
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


def _close_other_fds(*keep: int) -> None:
    """Landlock and seccomp do not reach a file that is already open: close all but the
    channel and the standard streams (which the host owns and reads)."""
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, _FD_END)


def _hand_over_listener(layers: list[Any], report: int | None, probe: bool = False) -> None:
    """Give the host the seccomp filter's listener, and keep no copy of it here: the
    plugin must not be able to answer its own denied calls. ``probe``: the worker's
    runtime makes a uvloop loop next, and the host answers its io_uring probe unreported
    (``isolation.seccomp_notify``)."""
    listener = next((x.listener for x in layers if isinstance(x, SeccompLayer)), None)
    if report is None:
        return
    with socket.socket(fileno=report) as sock:
        if listener is not None:
            socket.send_fds(sock, [b"U" if probe else b"L"], [listener])
    if listener is not None:
        os.close(listener)


def _confine(
    request: dict[str, Any], channel: int, runtime: tuple[str, ...], report: int | None = None
) -> list[dict[str, Any]]:
    """In the forked worker, before any plugin code: every sandbox layer, or none at all.

    ``report`` (a socket to the host) carries the seccomp listener, when there is one."""
    _close_other_fds(channel, *_memory_mark.kept(), *([report] if report is not None else []))
    sandbox = request.get("sandbox")
    if not sandbox:
        if report is not None:
            os.close(report)
        _apply(request)
        return []
    fields = dict(sandbox["policy"])
    fields["read_paths"] = tuple(dict.fromkeys([*runtime, *fields.get("read_paths", ())]))
    for key in ("write_paths", "network"):
        fields[key] = tuple(fields.get(key, ()))
    fields["environment"] = tuple(tuple(kv) for kv in fields.get("environment", ()))
    policy = limits.SandboxPolicy(**fields)
    layers = limits.default_layers(sandbox.get("cgroup"), notify=report is not None)
    statuses = limits.apply_all(policy, layers)
    # uvloop when the host answers libuv's io_uring probe (else it would report it)
    probe = bool(sandbox.get("loop_probe")) and loops.loop_factory() is not None
    _hand_over_listener(layers, report, probe)
    loops.sandboxed_uvloop(probe)
    # a LayerStatus holds four plain fields: its __dict__ is what dataclasses.asdict makes
    return [dict(status.__dict__) for status in statuses]


def _refuse(channel: int, error: BaseException, others: list[int]) -> None:
    """Tell the host why this worker cannot run, in the frame it waits for, then exit
    once the host has sent its first frame (its Load, after which it reads the answer).
    An exit at once would break the pipe under that frame, and a broken pipe drops what
    the host had not read yet: it would see an exit code, not the reason. ``others``
    (the socket the host awaits the seccomp listener on) are closed first: the host
    sends nothing before that socket has spoken or closed."""
    for fd in others:
        with contextlib.suppress(OSError):
            os.close(fd)
    if not isinstance(error, PlugbayError):
        error = PlugbayError(f"the sandbox could not be set up: {type(error).__name__}: {error}")
    try:
        with socket.socket(fileno=channel) as sock:
            sock.sendall(frames.encode(frames.Fail(0, error.to_dict())))
            sock.settimeout(_REFUSAL_READ)
            sock.recv(1 << 16)
    except OSError:
        pass
