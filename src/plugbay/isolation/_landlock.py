"""Landlock through its three syscalls: the filesystem, TCP and scope layer of the sandbox.

A ruleset *handles* every access right the kernel's ABI knows, so whatever no
rule allows is denied: reading outside the read paths, writing outside the
write paths, TCP bind/connect to ports not granted (ABI 4+), and signals or
abstract UNIX sockets reaching outside the sandbox (ABI 6+). Landlock checks
the real path of what is opened, so symlinks, ``/proc/self/root`` and
``/proc/self/fd/N`` do not get around it; it applies to files opened after
``restrict_self`` only, so the caller must not leave host files open.

The syscall numbers (444-446) are the same on x86_64 and aarch64.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from plugbay.isolation._layer import LayerStatus, SandboxPolicy

__all__ = ["LandlockLayer", "Restriction", "abi_version", "restrict_self"]

_CREATE_RULESET: Final = 444
_ADD_RULE: Final = 445
_RESTRICT_SELF: Final = 446
_CREATE_RULESET_VERSION: Final = 1 << 0
_RULE_PATH_BENEATH: Final = 1
_RULE_NET_PORT: Final = 2

EXECUTE: Final = 1 << 0
WRITE_FILE: Final = 1 << 1
READ_FILE: Final = 1 << 2
READ_DIR: Final = 1 << 3
REMOVE_DIR: Final = 1 << 4
REMOVE_FILE: Final = 1 << 5
MAKE_CHAR: Final = 1 << 6
MAKE_DIR: Final = 1 << 7
MAKE_REG: Final = 1 << 8
MAKE_SOCK: Final = 1 << 9
MAKE_FIFO: Final = 1 << 10
MAKE_BLOCK: Final = 1 << 11
MAKE_SYM: Final = 1 << 12
REFER: Final = 1 << 13  # ABI 2
TRUNCATE: Final = 1 << 14  # ABI 3
IOCTL_DEV: Final = 1 << 15  # ABI 5
NET_BIND_TCP: Final = 1 << 0  # ABI 4
NET_CONNECT_TCP: Final = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET: Final = 1 << 0  # ABI 6
SCOPE_SIGNAL: Final = 1 << 1  # ABI 6

_FS_ABI1: Final = (1 << 13) - 1
_FS_BY_ABI: Final = {
    1: _FS_ABI1,
    2: _FS_ABI1 | REFER,
    3: _FS_ABI1 | REFER | TRUNCATE,
    4: _FS_ABI1 | REFER | TRUNCATE,  # ABI 4 added TCP, not a filesystem right
}
# every right known here (ABI 5-7); a later ABI's new rights stay unhandled until listed
_FS_LATEST: Final = _FS_ABI1 | REFER | TRUNCATE | IOCTL_DEV
# rights that mean something on a file (the others only on a directory: EINVAL on a file)
_FILE_RIGHTS: Final = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

READ_RIGHTS: Final = READ_FILE | READ_DIR
WRITE_RIGHTS: Final = (
    READ_FILE
    | READ_DIR
    | WRITE_FILE
    | TRUNCATE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SYM
    | MAKE_FIFO
    | REFER
)  # fmt: skip  (never MAKE_CHAR, MAKE_BLOCK, MAKE_SOCK or IOCTL_DEV)


def handled_fs(abi: int) -> int:
    return _FS_BY_ABI.get(abi, _FS_LATEST) if abi >= 1 else 0


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)): 12 bytes
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _NetPortAttr(ctypes.Structure):
    _fields_ = (("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64))


def _libc() -> ctypes.CDLL:
    from plugbay.isolation._layer import _libc

    return _libc()


def abi_version() -> tuple[int, str]:
    """The kernel's Landlock ABI (0 when unusable) and, when 0, why."""
    result = _libc().syscall(
        ctypes.c_long(_CREATE_RULESET), None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION
    )
    if result >= 0:
        return int(result), ""
    err = ctypes.get_errno()
    why = {
        errno.ENOSYS: "ENOSYS: the kernel was built without CONFIG_SECURITY_LANDLOCK",
        errno.EOPNOTSUPP: "EOPNOTSUPP: Landlock is built in but not enabled "
        "(add 'landlock' to the lsm= boot parameter)",
        errno.EPERM: "EPERM: a seccomp filter or container runtime blocks the Landlock syscalls",
    }.get(err, f"{errno.errorcode.get(err, err)}: {os.strerror(err)}")
    return 0, why


@dataclass
class Restriction:
    """What ``restrict_self`` enforced, for the layer's status line."""

    abi: int
    handled_fs: int = 0
    handled_net: int = 0
    scoped: int = 0
    read_rules: list[str] = field(default_factory=list)
    write_rules: list[str] = field(default_factory=list)
    tcp_ports: list[int] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [
            f"ABI {self.abi}",
            f"{len(self.read_rules)} read-only and {len(self.write_rules)} read-write paths",
        ]
        if self.handled_net:
            ports = ", ".join(map(str, self.tcp_ports)) or "none"
            parts.append(f"TCP connect to ports: {ports}; TCP bind: none")
        scopes = [
            name
            for bit, name in (
                (SCOPE_SIGNAL, "signals"),
                (SCOPE_ABSTRACT_UNIX_SOCKET, "abstract UNIX sockets"),
            )
            if self.scoped & bit
        ]
        if scopes:
            parts.append("scoped: " + " and ".join(scopes))
        if self.missing:
            parts.append("skipped (missing): " + ", ".join(self.missing))
        return "; ".join(parts)


def restrict_self(
    read_paths: Sequence[str],
    write_paths: Sequence[str],
    tcp_connect_ports: Sequence[int] = (),
    *,
    allow_exec: bool = False,
    scope_signals: bool = True,
    abi: int | None = None,
) -> Restriction:
    """Restrict this process (one thread: call it right after fork); raises OSError.

    A missing read path is skipped (nothing there to read); a missing write path is
    an error, since the plugin would find no data directory.
    """
    if abi is None:
        abi, why = abi_version()
        if abi < 1:
            raise OSError(errno.EOPNOTSUPP, f"Landlock unavailable: {why}")
    libc = _libc()
    done = Restriction(abi=abi, handled_fs=handled_fs(abi))
    if abi >= 4:
        done.handled_net = NET_BIND_TCP | NET_CONNECT_TCP
    if abi >= 6:
        done.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | (SCOPE_SIGNAL if scope_signals else 0)
    attr = _RulesetAttr(done.handled_fs, done.handled_net, done.scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(
        ctypes.c_long(_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), 0
    )
    if ruleset < 0:
        raise _error("landlock_create_ruleset")
    try:
        _add_paths(libc, ruleset, done, read_paths, write_paths, allow_exec=allow_exec)
        if done.handled_net:
            _add_ports(libc, ruleset, done, tcp_connect_ports)
        if libc.syscall(ctypes.c_long(_RESTRICT_SELF), ctypes.c_int(ruleset), 0) != 0:
            raise _error("landlock_restrict_self")
    finally:
        os.close(ruleset)
    return done


def _add_paths(
    libc: ctypes.CDLL,
    ruleset: int,
    done: Restriction,
    read_paths: Sequence[str],
    write_paths: Sequence[str],
    *,
    allow_exec: bool,
) -> None:
    exec_right = EXECUTE if allow_exec else 0
    for path in read_paths:
        if _add_path(libc, ruleset, path, (READ_RIGHTS | exec_right) & done.handled_fs):
            done.read_rules.append(path)
        else:
            done.missing.append(path)
    for path in write_paths:
        if not _add_path(libc, ruleset, path, (WRITE_RIGHTS | exec_right) & done.handled_fs):
            raise OSError(errno.ENOENT, f"write path {path} does not exist")
        done.write_rules.append(path)


def _add_ports(libc: ctypes.CDLL, ruleset: int, done: Restriction, ports: Sequence[int]) -> None:
    for port in sorted(set(ports)):
        rule = _NetPortAttr(NET_CONNECT_TCP, port)
        if libc.syscall(
            ctypes.c_long(_ADD_RULE), ctypes.c_int(ruleset), _RULE_NET_PORT,
            ctypes.byref(rule), 0,
        ) != 0:  # fmt: skip
            raise _error(f"landlock_add_rule(TCP port {port})")
        done.tcp_ports.append(port)


def _add_path(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_RIGHTS
        rule = _PathBeneathAttr(rights, fd)
        if libc.syscall(
            ctypes.c_long(_ADD_RULE), ctypes.c_int(ruleset), _RULE_PATH_BENEATH,
            ctypes.byref(rule), 0,
        ) != 0:  # fmt: skip
            raise _error(f"landlock_add_rule({path})")
    finally:
        os.close(fd)
    return True


def _error(call: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{call}: {errno.errorcode.get(err, err)} ({os.strerror(err)})")


# --- the layer ---------------------------------------------------------------------
# limits.py imports this module for the class below, so the shared vocabulary
# (LayerStatus, SandboxError, the probe helper) is imported where it is used.

_FEATURES: Final = (
    (2, "REFER"),
    (3, "TRUNCATE"),
    (4, "TCP bind/connect"),
    (5, "IOCTL_DEV"),
    (6, "signal and abstract-socket scoping"),
    (7, "denial logging"),
)


class LandlockLayer:
    """Landlock: file access beneath the given paths only, TCP to granted ports, scoping."""

    name = "landlock"
    guarantees = (
        "reads only read_paths, writes only write_paths (no devices, sockets or "
        "cross-directory links elsewhere); TCP connect only to granted ports, never bind "
        "(ABI 4+); no signal to, or abstract UNIX socket of, a process outside (ABI 6+); "
        "no ptrace of a process outside. Not metadata: chmod, chown, utimes, xattrs and "
        "stat stay with file permissions (seccomp takes the first three)"
    )

    def probe(self) -> LayerStatus:
        from plugbay.isolation._layer import LayerStatus, _in_child

        abi, why = abi_version()
        if abi < 1:
            return LayerStatus(self.name, False, f"kernel ABI 0 ({why})", self.guarantees)

        def test() -> str:
            restrict_self((), (), abi=abi)
            try:
                os.listdir("/")
            except PermissionError:
                return "an empty ruleset denies listing /"
            raise RuntimeError("an empty ruleset still allows listing /")

        ok, message = _in_child(self.name, test)
        if not ok:
            detail = f"ABI {abi} but restricting fails: {message}"
            return LayerStatus(self.name, False, detail, self.guarantees)
        features = ", ".join(["filesystem"] + [f for since, f in _FEATURES if abi >= since])
        return LayerStatus(self.name, True, f"ABI {abi}: {features}; {message}", self.guarantees)

    def apply(self, policy: SandboxPolicy) -> LayerStatus:
        from plugbay.isolation._layer import LayerStatus, SandboxError

        try:
            done = restrict_self(
                policy.read_paths,
                policy.write_paths,
                policy.tcp_ports,
                allow_exec=policy.allow_exec,
                scope_signals=not policy.allow_kill_others,
            )
        except OSError as exc:
            raise SandboxError(str(exc), layer=self.name, details={"errno": exc.errno}) from exc
        return LayerStatus(self.name, True, done.describe(), self.guarantees)
