"""What every kernel layer shares: the policy it applies, its status, its errors.

The layers themselves (:mod:`plugbay.isolation.limits` and the ``_cgroups``,
``_landlock`` and ``_seccomp`` modules beside it) import this module; it
imports none of them, so the layers and their registry form no circle.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import signal
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from plugbay.api.errors import PlugbayError
from plugbay.isolation.network_grants import network_refusal

__all__ = ["Layer", "LayerStatus", "SandboxError", "SandboxPolicy", "SandboxPolicyError"]

MiB: Final = 1 << 20


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
            refusal = network_refusal(grant)  # in the words plugbay grant would have used
            if refusal is not None:
                raise SandboxPolicyError(f"sandbox policy: {refusal[0]}", hint=refusal[1])
            ports.append(int(grant.rpartition(":")[2]))
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


def _libc() -> ctypes.CDLL:
    """libc, one handle a process: the zygote makes it (``isolation._warm``) and its
    workers share it. A new ``CDLL`` makes a class, and each function looked up on it an
    object, all of which a worker confining itself would otherwise copy."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long
    return _LIBC


_LIBC: ctypes.CDLL | None = None


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


def runtime_read_paths(*, site_packages: bool = True) -> tuple[str, ...]:
    """What CPython needs to read after restriction: the stdlib, site-packages, shared
    libraries it maps or may dlopen, plugbay itself, and a few devices and /proc/self.

    Not the interpreter's whole prefix, not ``sys.path`` (which may hold the
    host's working directory), not /etc beyond the dynamic loader's cache. Without
    ``site_packages`` (a worker of a plugin environment), none of the host's
    site-packages: the caller adds the environment and plugbay's runtime packages.
    """
    paths: list[str] = []
    keys = (
        ("stdlib", "platstdlib", "purelib", "platlib")
        if site_packages
        else ("stdlib", "platstdlib")
    )
    for key in keys:
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
    # each once: a directory of shared objects is there once a mapping (some 200 paths,
    # 4 ms of resolving on the zygote's way to ready, for a dozen directories)
    for path in dict.fromkeys(paths):
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
