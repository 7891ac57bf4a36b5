"""The OS layers that confine a sandboxed plugin, each able to say whether it is active here.

A worker forked for an untrusted plugin calls :func:`apply_all` before any
plugin code runs. The layers go on in this order, each needing what the
previous ones have not yet taken away:

1. ``cgroup``  — join ``plugbay/<name>`` with memory, CPU-bandwidth and task limits
   (writing to cgroupfs needs the privilege the next steps drop);
2. ``netns``   — a network namespace of its own: only a loopback, and it is down;
3. ``userns``  — a user namespace: no capability left in the host's namespace; and an
   IPC namespace, so no System V or POSIX IPC object of the host's user;
4. ``environ`` — an environment with none of the host's variables, not even in memory;
5. ``rlimits`` — address space, CPU seconds, open files, file size, no core dumps;
6. ``no_new_privs`` — execve can never grant privileges;
7. ``landlock`` — read/write only the given paths, TCP only to granted ports, no
   signals or abstract sockets beyond the sandbox;
8. ``seccomp`` — last, since it denies syscalls the steps above use.

:func:`probe_all` asks each layer, in the host and without changing it (a
short-lived forked child tries what cannot be tried in place), whether it
works on this machine, why not, and what it guarantees: the
``plugbay doctor`` view. Nothing is assumed: :func:`apply_all` raises
:class:`SandboxError` naming the layer rather than run a plugin with less.

The caller owns two things no layer can do for it: close every inherited file
descriptor except the worker's channel (Landlock and seccomp do not reach a
file that is already open), and call :meth:`CgroupLayer.remove` once the worker
has exited.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import posix
import resource
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Final

from plugbay.isolation._cgroups import MEMORY_SLACK as CGROUP_MEMORY_SLACK
from plugbay.isolation._cgroups import CgroupLayer
from plugbay.isolation._landlock import LandlockLayer
from plugbay.isolation._layer import (
    Layer,
    LayerStatus,
    SandboxError,
    SandboxPolicy,
    SandboxPolicyError,
    _call,
    _in_child,
    _libc,
    runtime_read_paths,
)
from plugbay.isolation._seccomp import SeccompLayer

__all__ = [
    "BASE_ENVIRONMENT",
    "CGROUP_MEMORY_SLACK",
    "ORDER",
    "CgroupLayer",
    "EnvironLayer",
    "LandlockLayer",
    "Layer",
    "LayerStatus",
    "NetnsLayer",
    "NoNewPrivsLayer",
    "RlimitsLayer",
    "SandboxError",
    "SandboxPolicy",
    "SandboxPolicyError",
    "SeccompLayer",
    "UsernsLayer",
    "apply_all",
    "clean_environment",
    "default_layers",
    "probe_all",
    "runtime_read_paths",
]

ORDER: Final = (
    "cgroup", "netns", "userns", "environ", "rlimits", "no_new_privs", "landlock", "seccomp",
)  # fmt: skip
#: the variables every sandboxed plugin sees, whatever it was granted
BASE_ENVIRONMENT: Final = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}

_CLONE_NEWNET: Final = 0x40000000
_CLONE_NEWUSER: Final = 0x10000000
#: System V IPC (shared memory, message queues, semaphores) and POSIX message queues are
#: named by key, not by path: Landlock never sees them, and the kernel allows them to
#: the same owner. An IPC namespace of its own leaves the worker none of the host's.
_CLONE_NEWIPC: Final = 0x08000000
_PR_SET_NO_NEW_PRIVS: Final = 38
_PR_GET_NO_NEW_PRIVS: Final = 39


# --- helpers ---------------------------------------------------------------------------


def _read(path: str) -> bytes:
    """A /proc file's bytes, with no file object: a worker confining itself copies a
    page of the zygote's for each Python object it uses (``isolation._warm``)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _statm() -> tuple[int, int]:
    """(virtual size, resident size) of this process, in bytes."""
    size, resident = _read("/proc/self/statm").split()[:2]
    page = os.sysconf("SC_PAGE_SIZE")
    return int(size) * page, int(resident) * page


def _release_free_heap() -> None:
    # glibc keeps freed memory mapped: the forked image's free heap is space the plugin
    # could fill without growing its address space. Hand it back before measuring.
    with contextlib.suppress(AttributeError):  # not glibc: nothing to hand back
        _libc().malloc_trim(0)


def _reserved_bytes() -> int:
    """Private anonymous PROT_NONE mappings: reserved, not yet committed."""
    # found in the bytes, not line by line: a list of every line would be a few hundred
    # objects, each a page of the zygote's pools for the worker to copy
    data = _read("/proc/self/maps")
    total, at = 0, data.find(b" ---p ")
    while at >= 0:
        begin = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        line = data[begin : len(data) if end < 0 else end]
        fields = line.split()
        if len(fields) == 5:  # anonymous: no path
            low, _, high = fields[0].partition(b"-")
            total += int(high, 16) - int(low, 16)
        at = data.find(b" ---p ", at + 1)
    return total


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


# --- the layers ------------------------------------------------------------------------


class NetnsLayer:
    """A network namespace of its own: no interface but a loopback that is down."""

    name = "netns"
    guarantees = (
        "no route to any network, the host's loopback included (only when no network is granted)"
    )

    def probe(self) -> LayerStatus:
        def test() -> str:
            _call(self.name, "unshare(CLONE_NEWNET)", _libc().unshare(_CLONE_NEWNET))
            with socket.socket() as s:
                s.settimeout(1)
                code = s.connect_ex(("127.0.0.1", 9))
            return errno.errorcode.get(code, str(code))

        ok, message = _in_child(self.name, test)
        if not ok:
            return LayerStatus(self.name, False, message, self.guarantees)
        return LayerStatus(
            self.name,
            True,
            f"unshare(CLONE_NEWNET) works; a TCP connect to 127.0.0.1 there gives {message}",
            self.guarantees,
        )

    def apply(self, policy: SandboxPolicy) -> LayerStatus:
        if policy.network:
            detail = f"not applied: network granted ({', '.join(policy.network)}); Landlock limits TCP to those ports"
            return LayerStatus(self.name, False, detail, self.guarantees)
        _call(self.name, "unshare(CLONE_NEWNET)", _libc().unshare(_CLONE_NEWNET))
        return LayerStatus(self.name, True, "own network namespace, loopback down", self.guarantees)


class UsernsLayer:
    """A user namespace mapping the worker's uid/gid to themselves, and nothing else."""

    name = "userns"
    guarantees = (
        "no capability in the host's user namespace: root's override of file permissions, "
        "raising hard rlimits, ptrace of other uids, modules, clock and hostname all fail; "
        "uid and gid read the same inside; an IPC namespace of its own: no System V shared "
        "memory, message queue or semaphore, nor POSIX message queue, of the host's user"
    )

    def probe(self) -> LayerStatus:
        def test() -> str:
            self._enter()
            with open("/proc/self/uid_map") as f:
                return " ".join(f.read().split())

        ok, message = _in_child(self.name, test)
        detail = (
            f"unshare(CLONE_NEWUSER | CLONE_NEWIPC) works; uid_map '{message}'" if ok else message
        )
        return LayerStatus(self.name, ok, detail, self.guarantees)

    def apply(self, policy: SandboxPolicy) -> LayerStatus:
        uid, gid = self._enter()
        return LayerStatus(
            self.name,
            True,
            f"uid {uid} and gid {gid} mapped to themselves only; IPC namespace of its own",
            self.guarantees,
        )

    def _enter(self) -> tuple[int, int]:
        uid, gid = os.getuid(), os.getgid()
        _call(
            self.name,
            "unshare(CLONE_NEWUSER | CLONE_NEWIPC)",
            _libc().unshare(_CLONE_NEWUSER | _CLONE_NEWIPC),
        )
        try:
            for file, text in (
                ("setgroups", b"deny"),
                ("uid_map", b"%d %d 1" % (uid, uid)),
                ("gid_map", b"%d %d 1" % (gid, gid)),
            ):
                _write(f"/proc/self/{file}", text)
        except OSError as exc:
            raise SandboxError(f"writing /proc/self/{file}: {exc}", layer=self.name) from exc
        return uid, gid


class EnvironLayer:
    """The environment: only :data:`BASE_ENVIRONMENT` and the granted variables."""

    name = "environ"
    guarantees = (
        "os.environ, posix.environ, the C environment and the exec-time block "
        "(/proc/self/environ) hold none of the host's variables"
    )

    def probe(self) -> LayerStatus:
        with open("/proc/self/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        if len(fields) > 48 and int(fields[48]) > int(fields[47]):
            detail = "clears the environment and wipes the exec-time block"
        else:
            detail = (
                "the exec-time block is not in /proc/self/stat: only the environment is cleared"
            )
        return LayerStatus(self.name, True, detail, self.guarantees)

    def apply(self, policy: SandboxPolicy) -> LayerStatus:
        env = clean_environment(dict(policy.environment))
        based = _based
        if based is not None and based[0] != os.getpid() and posix.environ == based[2]:
            # forked from a process base_environment() left with the base alone (and
            # still so): the grants are all there is to add
            wiped = based[1]
            for key, value in env.items():
                if BASE_ENVIRONMENT.get(key) != value:
                    os.environ[key] = value
        else:
            wiped = _reset_environment(env)
        sys.dont_write_bytecode = True  # code dirs are read-only: do not even try
        detail = f"{len(env)} variables ({', '.join(sorted(env))}); {wiped} bytes of exec-time environment wiped"
        return LayerStatus(self.name, True, detail, self.guarantees)


#: (pid, bytes wiped, ``posix.environ`` left) of the process :func:`base_environment`
#: confined: the zygote, whose forks then start with exactly :data:`BASE_ENVIRONMENT`
_based: tuple[int, int, dict[bytes, bytes]] | None = None


def base_environment() -> None:
    """Leave this process with :data:`BASE_ENVIRONMENT` alone, in ``os.environ``, the C
    environment and the exec-time block: the zygote does it before its first fork (it
    needs none of its variables once started; an unsandboxed worker gets its own
    environment from its request), so that a sandboxed worker's environment layer has
    only its grants to add, rather than clearing and refilling ``os.environ``."""
    global _based
    wiped = _reset_environment(dict(BASE_ENVIRONMENT))
    _based = (os.getpid(), wiped, dict(posix.environ))


def _reset_environment(env: dict[str, str]) -> int:
    os.environ.clear()  # posix.environ is its store: cleared with it
    _libc().clearenv()
    wiped = _wipe_exec_environment()
    os.environ.update(env)
    return wiped


def _wipe_exec_environment() -> int:
    """Zero the strings the process was exec'd with (what /proc/self/environ shows)."""
    fields = _read("/proc/self/stat").rpartition(b")")[2].split()
    start, end = int(fields[47]), int(fields[48])  # fields 50 and 51: env_start, env_end
    if end > start:
        ctypes.memset(start, 0, end - start)
    return max(0, end - start)


class RlimitsLayer:
    """Resource limits, soft and hard, so the plugin cannot raise them back."""

    name = "rlimits"
    guarantees = (
        "address space ≤ forked image + memory_bytes (MemoryError); CPU seconds (SIGXCPU, "
        "SIGKILL a second later); open files (EMFILE); file size (EFBIG: SIGXFSZ ignored); "
        "no core dumps. RLIMIT_NPROC counts per uid and never binds uid 0: tasks are "
        "bounded by the cgroup and seccomp"
    )

    def probe(self) -> LayerStatus:
        def shown(value: int) -> str:
            return "unlimited" if value == resource.RLIM_INFINITY else str(value)

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/status") as f:
            caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
        raise_back = "can" if caps & (1 << 24) else "cannot"  # CAP_SYS_RESOURCE
        nproc = "inert for uid 0" if os.getuid() == 0 else "left as is (per-uid)"
        detail = (
            f"setrlimit available; AS now {shown(soft)}/{shown(hard)}; the host {raise_back} "
            f"raise hard limits (CAP_SYS_RESOURCE); RLIMIT_NPROC {nproc}"
        )
        return LayerStatus(self.name, True, detail, self.guarantees)

    def apply(self, policy: SandboxPolicy) -> LayerStatus:
        done: list[str] = []

        def lower(which: int, label: str, soft: int, hard: int) -> None:
            _, current = resource.getrlimit(which)
            if current != resource.RLIM_INFINITY:
                hard = min(hard, current)
            soft = min(soft, hard)
            try:
                resource.setrlimit(which, (soft, hard))
            except (OSError, ValueError) as exc:
                raise SandboxError(
                    f"setrlimit({label}, {soft}, {hard}): {exc}", layer=self.name
                ) from exc
            done.append(f"{label}={soft}/{hard}")

        lower(resource.RLIMIT_CORE, "CORE", 0, 0)
        if policy.memory_bytes is not None:
            _release_free_heap()
            size, reserved = _statm()[0], _reserved_bytes()
            # reservations (glibc arenas of threads gone with the fork) are address space
            # the allocator can commit without growing it: they come out of the budget
            limit = max(size, size - reserved + policy.memory_bytes)
            lower(resource.RLIMIT_AS, "AS", limit, limit)
        if policy.cpu_seconds is not None:
            lower(resource.RLIMIT_CPU, "CPU", policy.cpu_seconds, policy.cpu_seconds + 1)
        if policy.open_files is not None:
            lower(resource.RLIMIT_NOFILE, "NOFILE", policy.open_files, policy.open_files)
        if policy.file_size_bytes is not None:
            lower(resource.RLIMIT_FSIZE, "FSIZE", policy.file_size_bytes, policy.file_size_bytes)
            # an over-size write is then an EFBIG error, not a death
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if policy.threads is not None and os.getuid() == 0:
            tasks = 1 + policy.threads + policy.processes  # recorded, but uid 0 is exempt
            lower(resource.RLIMIT_NPROC, "NPROC", tasks, tasks)
        return LayerStatus(self.name, True, ", ".join(done), self.guarantees)


class NoNewPrivsLayer:
    """``PR_SET_NO_NEW_PRIVS``: no setuid bit or file capability ever takes effect."""

    name = "no_new_privs"
    guarantees = (
        "execve never grants privileges; lets seccomp and Landlock load without CAP_SYS_ADMIN"
    )

    def probe(self) -> LayerStatus:
        state = int(_libc().prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0))
        if state < 0:
            return LayerStatus(
                self.name, False, "prctl(PR_GET_NO_NEW_PRIVS) unsupported", self.guarantees
            )
        return LayerStatus(self.name, True, f"prctl available (host: {state})", self.guarantees)

    def apply(self, policy: SandboxPolicy) -> LayerStatus:
        _call(
            self.name, "prctl(PR_SET_NO_NEW_PRIVS)", _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        )
        if int(_libc().prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)) != 1:
            raise SandboxError("no_new_privs did not stick", layer=self.name)
        return LayerStatus(self.name, True, "set", self.guarantees)


# --- the whole sandbox -----------------------------------------------------------------


def default_layers(cgroup_name: str | None = None, *, notify: bool = False) -> list[Layer]:
    """Every layer, in the order they must be applied (``notify``: seccomp denials go to
    a listener the caller hands to the host, ``isolation.seccomp_notify``)."""
    return [
        CgroupLayer(cgroup_name),
        NetnsLayer(),
        UsernsLayer(),
        EnvironLayer(),
        RlimitsLayer(),
        NoNewPrivsLayer(),
        LandlockLayer(),
        SeccompLayer(notify=notify),
    ]


def probe_all(layers: Sequence[Layer] | None = None) -> list[LayerStatus]:
    """Each layer's status on this machine; the calling process is left as it was."""
    return [layer.probe() for layer in (default_layers() if layers is None else layers)]


def _rank(layer: Layer) -> int:
    # a layer of the caller's own goes after the namespaces, before the self-restricting ones
    return (
        ORDER.index(layer.name) * 2 if layer.name in ORDER else ORDER.index("no_new_privs") * 2 - 1
    )


def apply_all(policy: SandboxPolicy, layers: Sequence[Layer] | None = None) -> list[LayerStatus]:
    """Confine the calling process (a freshly forked, single-threaded worker) with every layer.

    Layers run in :data:`ORDER` whatever order they are given in. The first one
    that cannot be applied raises :class:`SandboxError`: the worker must then exit
    without running plugin code.
    """
    threads = _thread_count()
    if threads != 1:
        raise SandboxError(
            f"the process has {threads} threads; Landlock and user namespaces confine one thread",
            layer="sandbox",
            hint="Call apply_all right after fork, before starting any thread.",
        )
    chosen = default_layers() if layers is None else list(layers)
    statuses: list[LayerStatus] = []
    for layer in sorted(chosen, key=_rank):
        try:
            statuses.append(layer.apply(policy))
        except SandboxError:
            raise
        except OSError as exc:
            raise SandboxError(str(exc), layer=layer.name) from exc
    return statuses


def clean_environment(granted: Mapping[str, str]) -> dict[str, str]:
    """:data:`BASE_ENVIRONMENT` plus the granted variables (which win); nothing of the host's."""
    env = dict(BASE_ENVIRONMENT)
    for key, value in granted.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise SandboxPolicyError(f"environment variable {key!r} is malformed")
        env[key] = value
    return env
