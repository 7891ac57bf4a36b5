"""What a host claims and sweeps around its life: the state directory's lock, what an
earlier host left behind, and the descriptors it may use.

* **One host per state directory.** :class:`HostLock` holds an exclusive ``fcntl``
  lock on ``<state>/host.lock`` for the host's life. The kernel drops it when the
  process dies, however it dies, so a ``kill -9`` leaves nothing to clean by hand.
  A second host (another ``plugbay run``, or another ``Host`` in the same process)
  is refused with :class:`HostLockedError`, naming the holder's pid and API address
  (from ``host.json``).
* **Leftovers.** :func:`sweep` runs once the lock is held: the cgroups of workers
  whose owner host is dead (each worker's cgroup name carries its host's pid, so a
  cgroup of another live host is never touched), and a ``host.json`` whose host is
  gone. Workers themselves die with their zygote, which dies with the host
  (``PR_SET_PDEATHSIG``); whatever a worker left running stays in its cgroup and is
  killed with it.
* **A start cut short.** A start that is cancelled or raises undoes what it did
  (workers, zygote, mounts, the state, the lock) before it re-raises, through
  :func:`undo_fully`: a second cancel does not cut the undoing short, so a later
  host on the same state directory finds it free.
* **Descriptors.** :func:`raise_descriptor_limit` lifts the soft ``RLIMIT_NOFILE``
  to the hard one at start; :func:`check_descriptors` refuses a new worker while a
  reserve is still free, with an error that says "descriptors", the limit and how
  to raise it, rather than an obscure failure later.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import resource
import struct
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from plugbay.api.errors import PlugbayError
from plugbay.state.pids import running

__all__ = [
    "DESCRIPTORS_PER_WORKER",
    "DESCRIPTOR_RESERVE",
    "HostLock",
    "HostLockedError",
    "Swept",
    "check_descriptors",
    "descriptor_budget",
    "lock_holder",
    "raise_descriptor_limit",
    "sweep",
    "undo_fully",
]

log = logging.getLogger("plugbay.host")

LOCK_FILE: Final = "host.lock"
HOST_FILE: Final = "host.json"  # what ``plugbay run`` announces (plugbay.web.client)

#: what a sandboxed plugin costs the host: the socket to its worker, its seccomp
#: listener and its pidfd (twice that during a swap, while the old and the new worker
#: both run)
DESCRIPTORS_PER_WORKER: Final = 3
#: kept free for everything else: the state database, HTTP connections, logs, a swap
DESCRIPTOR_RESERVE: Final = 64

# fcntl locks belong to a process: a second Host in the same process would get the
# same lock again, so the process also remembers which state directories it holds
_held: set[str] = set()
_held_guard = threading.Lock()


class HostLockedError(PlugbayError):
    """Raised when another host already serves the state directory."""

    code = "host_locked"


class HostLock:
    """The exclusive lock on a state directory (see the module docstring)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`HostLockedError` naming the holder."""
        key = str(self.state_dir.resolve())
        with _held_guard:
            if key in _held:
                raise self._refusal(os.getpid(), in_process=True)
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise PlugbayError(
                        f"cannot lock the state directory: {exc.strerror}",
                        where=str(self.path),
                        hint="check that the state directory is writable",
                    ) from None
                raise self._refusal(lock_holder(self.state_dir), in_process=False) from None
            # the pid in the file is for a person reading it (the kernel names the holder:
            # lock_holder): a full disk that cannot take it does not stop the host
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"pid": os.getpid()}).encode())
            self._fd = fd
            _held.add(key)

    def release(self) -> None:
        if self._fd is None:
            return
        with _held_guard:
            _held.discard(str(self.state_dir.resolve()))
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _refusal(self, pid: int | None, *, in_process: bool) -> HostLockedError:
        announced = _announced(self.state_dir)
        api = announced.get("http") if announced.get("pid") == pid else None
        who = f"pid {pid}" if pid else "another process"
        if in_process:
            who += " (this process: another Host object)"
        return HostLockedError(
            f"another host already serves this state directory: {who}"
            + (f", API at {api}" if api else ", no API announced"),
            where=str(self.state_dir),
            hint=(
                "use that Host object, or stop it first (await host.stop()), or give this "
                "one its own state directory: Host(..., state_dir=DIR)"
            )
            if in_process
            else "use that host: plugbay commands with the same --state talk to it through "
            "its API where they can; or stop it first, or give this one its own --state DIR",
            details={"pid": pid, "http": api},
        )


def directory_identity(path: str | os.PathLike[str]) -> list[int]:
    """Which directory this is, whatever its path: (device, inode). A copy has another;
    a directory moved on its file system keeps its own."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino]


#: ``struct flock`` on Linux: l_type, l_whence, l_start, l_len, l_pid (padded to 8 bytes)
_FLOCK: Final = "hhqqi0q"


def lock_holder(state_dir: Path) -> int | None:
    """The pid of the process holding ``state_dir``'s host lock now, as the kernel says
    (``F_GETLK``: nothing is taken, and a holder that died holds nothing), whatever host
    it is: a ``plugbay run``, or an application's ``Host`` that announces nothing. None
    when no process holds it."""
    if str(state_dir.resolve()) in _held:
        return os.getpid()  # ours: opening the file here and closing it would drop it
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        asked = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        kind, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, asked))
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if kind == fcntl.F_UNLCK else int(pid)


def _announced(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / HOST_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------- leftovers


@dataclass(slots=True)
class Swept:
    """What a start found of an earlier host, and removed."""

    cgroups: list[str] = field(default_factory=list)
    processes: int = 0
    announcement: bool = False
    #: the pid the swept host.json named (None: it named none)
    announced_pid: int | None = None
    problems: list[str] = field(default_factory=list)
    #: the warning that said so, kept for a log attached after the sweep (``host.log``)
    record: logging.LogRecord | None = None

    def __bool__(self) -> bool:
        return bool(self.cgroups or self.processes or self.announcement or self.problems)

    def describe(self) -> str:
        parts = []
        if self.cgroups:
            parts.append(f"{len(self.cgroups)} worker cgroup(s) of dead hosts")
        if self.processes:
            parts.append(f"{self.processes} leftover process(es) in them")
        if self.announcement:
            of = f" of pid {self.announced_pid}" if self.announced_pid is not None else ""
            parts.append(f"a stale host.json{of}")
        text = "swept " + (", ".join(parts) or "nothing")
        if self.problems:
            text += "; could not remove: " + "; ".join(self.problems)
        return text


def sweep(state_dir: Path | None) -> Swept:
    """Remove what dead hosts left: their workers' cgroups (with anything still in
    them) and, in ``state_dir``, a host.json whose host is gone. Call with the lock held:
    then every host.json there is stale, whatever its pid names now (after a ``kill -9``
    the pid may be another process's, this host's zygote's even)."""
    from plugbay.isolation import _cgroups
    from plugbay.state._leftovers import remove_restore_leftovers

    swept = Swept()
    try:
        groups = _cgroups.discover()
    except (_cgroups.CgroupUnavailable, OSError):
        groups = None
    if groups is not None:
        for name in _cgroups.orphaned(groups, alive=running):
            try:
                swept.processes += len(groups.procs(name))
                groups.remove(name)
                swept.cgroups.append(name)
            except (OSError, ValueError) as exc:
                swept.problems.append(f"cgroup {name}: {exc}")
    if state_dir is not None:  # a restore that crashed partway: its copy, its claim
        remove_restore_leftovers(state_dir)
    if state_dir is not None and (state_dir / HOST_FILE).exists():
        pid = _announced(state_dir).get("pid")
        with contextlib.suppress(OSError):
            (state_dir / HOST_FILE).unlink()
            swept.announcement = True
            swept.announced_pid = pid if isinstance(pid, int) else None
    if swept and log.isEnabledFor(logging.WARNING):
        swept.record = log.makeRecord(
            log.name, logging.WARNING, __file__, 0, "start: %s", (swept.describe(),), None
        )
        log.handle(swept.record)
    return swept


async def undo_fully(undo: Awaitable[None], what: str) -> None:
    """Await ``undo`` (the undoing of a start cut short) to its end, then return: a
    cancel that reaches the caller meanwhile waits for it instead of leaving workers
    and the lock behind half undone (the caller re-raises what cut its start short).
    A failure of the undoing is logged, not raised over the reason the start ended."""
    task = asyncio.ensure_future(undo)
    while not task.done():
        # a cancel of the caller's: the undoing goes on; its own end is read below
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("undoing %s failed", what, exc_info=error)


# --------------------------------------------------------------------------- descriptors


def raise_descriptor_limit() -> tuple[int, int]:
    """Lift the soft ``RLIMIT_NOFILE`` to the hard limit; returns (soft, hard) now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # an unlimited hard limit: Linux refuses more than fs.nr_open anyway
    hard_target = max(soft, 1 << 20) if hard == resource.RLIM_INFINITY else hard
    if soft < hard_target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard_target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # no /proc: be optimistic rather than refuse
        return 0


def descriptor_budget() -> dict[str, int]:
    """The host's descriptors: limit, open now, and room for more sandboxed plugins."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened = _open_descriptors()
    room = max(0, (soft - opened - DESCRIPTOR_RESERVE) // DESCRIPTORS_PER_WORKER)
    return {
        "limit": soft,
        "hard_limit": hard,
        "open": opened,
        "per_sandboxed_plugin": DESCRIPTORS_PER_WORKER,
        "reserve": DESCRIPTOR_RESERVE,
        "room_for_sandboxed_plugins": room,
    }


class _Census:
    """The last count of the host's open descriptors, and the checks made on it since.

    Counting lists ``/proc/self/fd``, which grows with the workers: counted at every
    start, a thousand sandboxed plugins cost a million directory entries. A check far
    from the limit trusts a recent count plus a generous allowance per start since
    (:data:`_ALLOWANCE` descriptors, several times what a worker takes); near the
    limit, or after :data:`_RECOUNT` seconds, it counts again."""

    opened = 0
    at = -1e9
    since = 0


#: descriptors allowed per start since the last count, and the age of a count trusted
_ALLOWANCE: Final = 8
_RECOUNT: Final = 1.0
_census_lock = threading.Lock()


def _opened_at_most(needed: int) -> int:
    """The host's open descriptors, or an upper bound of them (see :class:`_Census`)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    now = time.monotonic()
    with _census_lock:
        bound = _Census.opened + (_Census.since + 1) * _ALLOWANCE
        if now - _Census.at > _RECOUNT or bound + needed + DESCRIPTOR_RESERVE > soft:
            _Census.opened, _Census.at, _Census.since = _open_descriptors(), now, 0
            return _Census.opened
        _Census.since += 1
        return bound


def check_descriptors(plugin_id: str, workers: int = 1) -> None:
    """Refuse to start ``workers`` more workers when that would eat into the reserve."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = workers * DESCRIPTORS_PER_WORKER
    opened = _opened_at_most(needed)
    if opened + needed + DESCRIPTOR_RESERVE <= soft:
        return
    raise PlugbayError(
        f"not enough file descriptors to start its worker: {opened} of the limit {soft} "
        f"are open, each sandboxed plugin needs {DESCRIPTORS_PER_WORKER} and "
        f"{DESCRIPTOR_RESERVE} are kept free for the host",
        plugin=plugin_id,
        hint=f"raise the descriptors limit (the hard RLIMIT_NOFILE is {hard}; "
        "'ulimit -Hn N' before 'plugbay run', LimitNOFILE= in a systemd unit, "
        "or nofile in /etc/security/limits.conf), or run fewer sandboxed plugins",
        details={"open": opened, "limit": soft, "hard_limit": hard},
    )
