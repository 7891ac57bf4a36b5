"""The OS layers that confine a sandboxed plugin, each able to say whether it is active here.

A worker forked for an untrusted plugin calls :func:`apply_all` before any
plugin code runs. The layers go on in this order, each needing what the
previous ones have not yet taken away:

1. ``cgroup``  — join ``plugbay/<name>`` with memory, CPU-bandwidth and task limits
   (writing to cgroupfs needs the privilege the next steps drop);
2. ``netns``   — a network namespace of its own: only a loopback, and it is down;
3. ``userns``  — a user namespace: no capability left in the host's namespace;
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
import ipaddress
import json
import os
import resource
import select
import signal
import socket
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from plugbay.errors import PlugbayError
from plugbay.isolation._cgroups import MEMORY_SLACK as CGROUP_MEMORY_SLACK
from plugbay.isolation._cgroups import CgroupLayer
from plugbay.isolation._landlock import LandlockLayer
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

MiB: Final = 1 << 20
ORDER: Final = (
    "cgroup", "netns", "userns", "environ", "rlimits", "no_new_privs", "landlock", "seccomp",
)  # fmt: skip
#: the variables every sandboxed plugin sees, whatever it was granted
BASE_ENVIRONMENT: Final = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}

_CLONE_NEWNET: Final = 0x40000000
_CLONE_NEWUSER: Final = 0x10000000
_PR_SET_NO_NEW_PRIVS: Final = 38
_PR_GET_NO_NEW_PRIVS: Final = 39


class SandboxError(PlugbayError):
    """A sandbox layer is unavailable here, or failed while being applied in a worker.

    ``details['layer']`` names the layer; the message says what failed.
    """

    code = "sandbox_unavailable"

    def __init__(
        self,
        message: str,
        *,
        layer: str,
        plugin: str | None = None,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            f"sandbox layer '{layer}': {message}",
            plugin=plugin,
            hint=hint or "Run 'plugbay doctor' to see which layers this machine offers.",
            details={"layer": layer, **(details or {})},
        )

    @property
    def layer(self) -> str:
        return str(self.details.get("layer", ""))


class SandboxPolicyError(PlugbayError):
    """A sandbox policy asks for something malformed (a negative limit, a bad grant)."""

    code = "sandbox_policy_invalid"


@dataclass(frozen=True)
class LayerStatus:
    """One layer on this machine (from ``probe``) or in one worker (from ``apply``)."""

    name: str
    active: bool
    detail: str
    guarantees: str

    def __str__(self) -> str:
        return f"{self.name}: {'active' if self.active else 'INACTIVE'} — {self.detail}"


@dataclass(frozen=True)
class SandboxPolicy:
    """What one sandboxed plugin may use; everything not granted here is denied.

    ``memory_bytes`` is what the plugin may add to the image it was forked with
    (address space, and resident memory in the cgroup). ``cpu_seconds`` is the
    worker's lifetime CPU time: a backstop, per-call budgets are the host's
    timeouts. ``threads`` and ``processes`` together set the cgroup's task cap
    (``1 + threads + processes``); seccomp also refuses new processes when
    ``processes`` is 0, since it cannot count. ``network`` grants are
    ``"host:port"``; the kernel layers enforce the *port* (Landlock), not the
    address, and a grant keeps the worker in the host's network namespace.
    """

    memory_bytes: int | None = None
    cpu_seconds: int | None = None
    open_files: int | None = None
    file_size_bytes: int | None = None
    processes: int = 0
    threads: int | None = 8
    cpu_cores: float | None = None
    read_paths: tuple[str, ...] = ()
    write_paths: tuple[str, ...] = ()
    network: tuple[str, ...] = ()
    allow_exec: bool = False
    allow_kill_others: bool = False
    environment: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "cpu_seconds", "open_files", "file_size_bytes", "threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise SandboxPolicyError(
                    f"sandbox policy: {name} must be an int >= 0, not {value!r}"
                )
        if self.processes < 0:
            raise SandboxPolicyError(
                f"sandbox policy: processes must be >= 0, not {self.processes}"
            )
        if self.cpu_cores is not None and not self.cpu_cores > 0:
            raise SandboxPolicyError(f"sandbox policy: cpu_cores must be > 0, not {self.cpu_cores}")
        for path in (*self.read_paths, *self.write_paths):
            if not os.path.isabs(path):
                raise SandboxPolicyError(f"sandbox policy: path {path!r} is not absolute")
        self.tcp_ports  # noqa: B018  (validates every grant)
        for key, value in self.environment:
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise SandboxPolicyError(
                    f"sandbox policy: environment variable {key!r} is malformed"
                )

    @property
    def tcp_ports(self) -> tuple[int, ...]:
        """The ports of the ``network`` grants (``"127.0.0.1:8080"``, ``"[::1]:443"``)."""
        ports = []
        for grant in self.network:
            host, sep, port = grant.rpartition(":")
            host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
            try:
                if host != "*":
                    ipaddress.ip_address(host)
                number = int(port)
            except ValueError:
                number = 0
            if not sep or not 0 < number < 65536:
                raise SandboxPolicyError(
                    f"sandbox policy: network grant {grant!r} is not 'ADDRESS:PORT'",
                    hint="Grant an IP literal and a port, e.g. '127.0.0.1:8080' or '[::1]:443'.",
                )
            ports.append(number)
        return tuple(ports)

    @classmethod
    def for_plugin(
        cls,
        code_dir: str | os.PathLike[str],
        data_dir: str | os.PathLike[str],
        *,
        memory_bytes: int | None = 256 * MiB,
        cpu_seconds: int | None = None,
        open_files: int | None = 64,
        file_size_bytes: int | None = 64 * MiB,
        processes: int = 0,
        threads: int | None = 8,
        cpu_cores: float | None = 1.0,
        network: Iterable[str] = (),
        allow_exec: bool = False,
        allow_kill_others: bool = False,
        environment: Mapping[str, str] | None = None,
        extra_read_paths: Iterable[str] = (),
        extra_write_paths: Iterable[str] = (),
    ) -> SandboxPolicy:
        """The deny-by-default policy: the runtime and its own code read-only, its data dir writable."""
        read = (*runtime_read_paths(), os.path.realpath(code_dir), *extra_read_paths)
        write = (os.path.realpath(data_dir), "/dev/null", *extra_write_paths)
        return cls(
            memory_bytes=memory_bytes,
            cpu_seconds=cpu_seconds,
            open_files=open_files,
            file_size_bytes=file_size_bytes,
            processes=processes,
            threads=threads,
            cpu_cores=cpu_cores,
            read_paths=tuple(dict.fromkeys(read)),
            write_paths=tuple(dict.fromkeys(write)),
            network=tuple(network),
            allow_exec=allow_exec,
            allow_kill_others=allow_kill_others,
            environment=tuple(sorted((environment or {}).items())),
        )


class Layer(Protocol):
    """One OS mechanism: ``probe`` in the host, ``apply`` in the forked worker."""

    name: str

    def probe(self) -> LayerStatus:
        """Whether this layer works here, without changing the calling process."""
        ...

    def apply(self, policy: SandboxPolicy) -> LayerStatus:
        """Confine the calling process; raises :class:`SandboxError` when it cannot."""
        ...


# --- helpers ---------------------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _call(layer: str, what: str, result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SandboxError(
            f"{what} failed: {errno.errorcode.get(err, err)} ({os.strerror(err)})",
            layer=layer,
            details={"errno": err},
        )


def _in_child(layer: str, test: Callable[[], str], timeout: float = 5.0) -> tuple[bool, str]:
    """Run ``test`` in a forked child that then exits: (succeeded, its message)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            reply = [True, test()]
        except BaseException as exc:
            reply = [False, f"{type(exc).__name__}: {exc}"]
        try:
            os.write(write_end, json.dumps(reply).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    data, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read_end, 65536) if ready else b""
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
    done, status = os.waitpid(pid, os.WNOHANG)
    if not done:  # hung, or about to exit: either way it is done now
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if not data:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else "no answer"
        return False, f"the probe child for {layer} died ({how})"
    ok, message = json.loads(data)
    return bool(ok), str(message)


def _statm() -> tuple[int, int]:
    """(virtual size, resident size) of this process, in bytes."""
    with open("/proc/self/statm") as f:
        size, resident = f.read().split()[:2]
    page = os.sysconf("SC_PAGE_SIZE")
    return int(size) * page, int(resident) * page


def _release_free_heap() -> None:
    # glibc keeps freed memory mapped: the forked image's free heap is space the plugin
    # could fill without growing its address space. Hand it back before measuring.
    with contextlib.suppress(AttributeError):  # not glibc: nothing to hand back
        _libc().malloc_trim(0)


def _reserved_bytes() -> int:
    """Private anonymous PROT_NONE mappings: reserved, not yet committed."""
    total = 0
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 5 and parts[1] == "---p":
                start, end = (int(x, 16) for x in parts[0].split("-"))
                total += end - start
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
        "uid and gid read the same inside"
    )

    def probe(self) -> LayerStatus:
        def test() -> str:
            self._enter()
            with open("/proc/self/uid_map") as f:
                return " ".join(f.read().split())

        ok, message = _in_child(self.name, test)
        detail = f"unshare(CLONE_NEWUSER) works; uid_map '{message}'" if ok else message
        return LayerStatus(self.name, ok, detail, self.guarantees)

    def apply(self, policy: SandboxPolicy) -> LayerStatus:
        uid, gid = self._enter()
        return LayerStatus(
            self.name, True, f"uid {uid} and gid {gid} mapped to themselves only", self.guarantees
        )

    def _enter(self) -> tuple[int, int]:
        uid, gid = os.getuid(), os.getgid()
        _call(self.name, "unshare(CLONE_NEWUSER)", _libc().unshare(_CLONE_NEWUSER))
        try:
            for file, text in (
                ("setgroups", "deny"),
                ("uid_map", f"{uid} {uid} 1"),
                ("gid_map", f"{gid} {gid} 1"),
            ):
                with open(f"/proc/self/{file}", "w") as f:
                    f.write(text)
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
        os.environ.clear()  # posix.environ is its store: cleared with it
        _libc().clearenv()
        wiped = _wipe_exec_environment()
        os.environ.update(env)
        sys.dont_write_bytecode = True  # code dirs are read-only: do not even try
        detail = f"{len(env)} variables ({', '.join(sorted(env))}); {wiped} bytes of exec-time environment wiped"
        return LayerStatus(self.name, True, detail, self.guarantees)


def _wipe_exec_environment() -> int:
    """Zero the strings the process was exec'd with (what /proc/self/environ shows)."""
    with open("/proc/self/stat") as f:
        fields = f.read().rpartition(")")[2].split()
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


def default_layers(cgroup_name: str | None = None) -> list[Layer]:
    """Every layer, in the order they must be applied."""
    return [
        CgroupLayer(cgroup_name),
        NetnsLayer(),
        UsernsLayer(),
        EnvironLayer(),
        RlimitsLayer(),
        NoNewPrivsLayer(),
        LandlockLayer(),
        SeccompLayer(),
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


def runtime_read_paths() -> tuple[str, ...]:
    """What CPython needs to read after restriction: the stdlib, site-packages, shared
    libraries it maps or may dlopen, plugbay itself, and a few devices and /proc/self.

    Not the interpreter's whole prefix, not ``sys.path`` (which may hold the
    host's working directory), not /etc beyond the dynamic loader's cache.
    """
    paths: list[str] = []
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
            paths.append(sysconfig.get_path(key, vars=scheme_vars))
    paths += [p for p in sys.path if p.endswith(".zip")]
    paths.append(str(Path(__file__).resolve().parents[1]))  # the plugbay package
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        paths += [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"]
    paths += _mapped_library_dirs()
    paths += ["/etc/ld.so.cache", "/dev/urandom", "/dev/zero"]
    seen: dict[str, None] = {}
    for path in paths:
        real = os.path.realpath(path)
        if os.path.exists(real):
            seen.setdefault(real)
    # literally: resolved when the worker applies Landlock, it is the worker's own /proc/<pid>
    seen.setdefault("/proc/self")
    return tuple(seen)


def _mapped_library_dirs() -> list[str]:
    dirs: list[str] = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                path = parts[5].strip() if len(parts) == 6 else ""
                if path.startswith("/") and ".so" in os.path.basename(path):
                    dirs.append(os.path.dirname(path))
    except OSError:
        pass
    return dirs
