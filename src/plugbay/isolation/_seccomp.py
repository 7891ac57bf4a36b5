"""A seccomp-BPF filter written by hand (no libseccomp): the syscall layer of the sandbox.

The filter allows by default and denies a fixed list of syscalls a plugin never
needs, with ``EPERM`` so the plugin gets a catchable ``PermissionError`` and
the host a clear error. Where the kernel offers it (5.0+), a denial is not
answered by the filter but by the host: ``SECCOMP_RET_USER_NOTIF`` suspends the
call, the worker hands the host the filter's listener descriptor before any
plugin code runs, and the host answers ``EPERM`` and records a security event
(``isolation.seccomp_notify``) — so a denial is seen even when the plugin made
the call through ``ctypes`` and swallowed the error. A foreign architecture (or the x32 ABI on x86_64) kills
the process: a syscall number means nothing under another ABI. ``clone3`` gets
``ENOSYS`` because its flags live in a struct the filter cannot read; glibc
then falls back to ``clone``, whose flags (in a register) the filter checks.

Numbers come from ``asm/unistd_64.h`` (x86_64) and ``asm-generic/unistd.h``
(aarch64); only x86_64 is exercised by the test suite.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import platform
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from plugbay.isolation._layer import LayerStatus, SandboxPolicy

__all__ = [
    "SUPPORTED",
    "FilterSpec",
    "SeccompLayer",
    "build",
    "install",
    "machine",
    "pack",
    "packed",
    "prebuild",
]

AUDIT_ARCH: Final = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
SUPPORTED: Final = tuple(AUDIT_ARCH)

_X32_SYSCALL_BIT: Final = 0x40000000

# syscalls every policy denies (EPERM): they reach outside the plugin's own process,
# change the machine, or open kernel attack surface a Python plugin never needs.
_ALWAYS_DENIED: Final = (
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "personality",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "setrlimit", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "iopl", "ioperm", "quotactl", "quotactl_fd", "name_to_handle_at",
    "open_by_handle_at", "lookup_dcookie", "fanotify_init", "vhangup", "uselib",
    "migrate_pages", "move_pages", "process_madvise", "process_mrelease", "open_tree_attr",
    # Landlock does not cover metadata, and the worker owns what the host owns (same uid):
    # without these a plugin could chmod u+s or chmod 777 any of the host's files.
    # (An fchown asking for the owner the file has is answered success by the host's
    # listener without being made: seccomp_notify._keeps_owner.)
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "setxattrat", "removexattrat", "file_setattr",
    # Landlock's TCP bind rule does not see the port listen() picks for an unbound socket:
    # a plugin granted a destination (so in the host's network namespace) could serve on
    # every address. No plugin serves.
    "listen",
)  # fmt: skip

_X86_64: Final = {
    "ioctl": 16, "socket": 41, "socketpair": 53, "clone": 56, "fork": 57, "vfork": 58,
    "execve": 59, "kill": 62, "ptrace": 101, "rt_sigqueueinfo": 129, "uselib": 134,
    "personality": 135, "vhangup": 153, "pivot_root": 155, "adjtimex": 159,
    "setrlimit": 160, "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165,
    "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170,
    "setdomainname": 171, "iopl": 172, "ioperm": 173, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "tkill": 200, "lookup_dcookie": 212,
    "clock_settime": 227, "tgkill": 234, "kexec_load": 246, "add_key": 248,
    "request_key": 249, "keyctl": 250, "migrate_pages": 256, "unshare": 272,
    "move_pages": 279, "rt_tgsigqueueinfo": 297, "perf_event_open": 298,
    "fanotify_init": 300, "prlimit64": 302, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
    "seccomp": 317, "kexec_file_load": 320, "bpf": 321, "execveat": 322,
    "userfaultfd": 323, "pidfd_send_signal": 424, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_open": 434,
    "clone3": 435, "pidfd_getfd": 438, "process_madvise": 440, "mount_setattr": 442,
    "quotactl_fd": 443, "process_mrelease": 448, "chmod": 90, "fchmod": 91, "chown": 92,
    "fchown": 93, "lchown": 94, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190,
    "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199, "fchownat": 260,
    "fchmodat": 268, "fchmodat2": 452, "setxattrat": 463, "removexattrat": 466,
    "open_tree_attr": 467, "file_setattr": 469, "listen": 50, "setpriority": 141,
    "sched_setparam": 142, "sched_setscheduler": 144, "sched_setaffinity": 203,
    "ioprio_set": 251, "sched_setattr": 314, "prctl": 157,
}  # fmt: skip

# asm-generic numbering; aarch64 has no fork, vfork, iopl, ioperm, uselib, chmod, chown, lchown
_AARCH64: Final = {
    "lookup_dcookie": 18, "ioctl": 29, "umount2": 39, "mount": 40, "pivot_root": 41,
    "chroot": 51, "vhangup": 58, "quotactl": 60, "acct": 89, "personality": 92,
    "unshare": 97, "kexec_load": 104, "init_module": 105, "delete_module": 106,
    "clock_settime": 112, "ptrace": 117, "kill": 129, "tkill": 130, "tgkill": 131,
    "rt_sigqueueinfo": 138, "reboot": 142, "sethostname": 161, "setdomainname": 162,
    "setrlimit": 164, "settimeofday": 170, "adjtimex": 171, "socket": 198,
    "socketpair": 199, "add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220,
    "execve": 221, "swapon": 224, "swapoff": 225, "migrate_pages": 238, "move_pages": 239,
    "rt_tgsigqueueinfo": 240, "perf_event_open": 241, "prlimit64": 261,
    "fanotify_init": 262, "name_to_handle_at": 264, "open_by_handle_at": 265,
    "clock_adjtime": 266, "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271,
    "kcmp": 272, "finit_module": 273, "seccomp": 277, "bpf": 280, "execveat": 281,
    "userfaultfd": 282, "kexec_file_load": 294, "pidfd_send_signal": 424,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "pidfd_open": 434, "clone3": 435, "pidfd_getfd": 438,
    "process_madvise": 440, "mount_setattr": 442, "quotactl_fd": 443,
    "process_mrelease": 448, "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7,
    "removexattr": 14, "lremovexattr": 15, "fremovexattr": 16, "fchmod": 52, "fchmodat": 53,
    "fchownat": 54, "fchown": 55, "fchmodat2": 452, "setxattrat": 463, "removexattrat": 466,
    "open_tree_attr": 467, "file_setattr": 469, "listen": 201, "setpriority": 140,
    "sched_setparam": 118, "sched_setscheduler": 119, "sched_setaffinity": 122,
    "ioprio_set": 30, "sched_setattr": 274, "prctl": 167,
}  # fmt: skip

SYSCALLS: Final = {"x86_64": _X86_64, "aarch64": _AARCH64}

# BPF opcodes (linux/filter.h, linux/bpf_common.h)
_LD_W_ABS: Final = 0x20
_ALU_AND_K: Final = 0x54
_JEQ_K: Final = 0x15
_JGE_K: Final = 0x35
_JSET_K: Final = 0x45
_RET_K: Final = 0x06

RET_KILL_PROCESS: Final = 0x80000000
RET_ERRNO: Final = 0x00050000
RET_USER_NOTIF: Final = 0x7FC00000
RET_ALLOW: Final = 0x7FFF0000

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
_NR: Final = 0
_ARCH: Final = 4


def _arg_lo(index: int) -> int:
    return 16 + 8 * index  # little-endian: the low 32 bits come first


def _arg_hi(index: int) -> int:
    return 16 + 8 * index + 4


_CLONE_THREAD: Final = 0x00010000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NAMESPACES: Final = 0x7E020000
_AF_UNIX: Final = 1
_AF_INET: Final = 2
_AF_INET6: Final = 10
_SOCK_STREAM: Final = 1
_SOCK_TYPE_MASK: Final = 0xF
_IPPROTO_TCP: Final = 6
_TIOCSTI: Final = 0x5412  # push bytes into a terminal's input: a classic sandbox escape
_TIOCLINUX: Final = 0x541C
#: calls that change how a process is scheduled, its pid the first argument: the kernel
#: allows them on any process of the same user (the host's, every other of its user's),
#: and none of them is a signal, so Landlock's scope does not see them
_SCHEDULING: Final = ("sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr")
_PRIO_PROCESS: Final = 0  # setpriority's "which": one process (not a group, not a user)
_IOPRIO_WHO_PROCESS: Final = 1
#: the signal the worker gets when its parent (the zygote, which dies with the host) dies:
#: set before the filter, and a plugin that cleared it would outlive the host
_PR_SET_PDEATHSIG: Final = 1

Insn = tuple[int, int, int, int]  # code, jt, jf, k


@dataclass(frozen=True)
class FilterSpec:
    """What one filter allows; ``pid`` is the sandboxed process's own pid, baked in."""

    pid: int
    allow_exec: bool = False
    allow_processes: bool = False
    allow_tcp: bool = False
    allow_kill_others: bool = False
    #: denials go to a listener (the host) that answers EPERM and reports them
    notify: bool = False


def machine() -> str:
    return platform.machine()


class _Assembler:
    """Classic BPF with forward jumps to labels, resolved when the program is done."""

    def __init__(self) -> None:
        self._code: list[tuple[int, int | str, int | str, int]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def load(self, offset: int) -> None:
        self._code.append((_LD_W_ABS, 0, 0, offset))

    def and_(self, mask: int) -> None:
        self._code.append((_ALU_AND_K, 0, 0, mask))

    def jump(self, op: int, k: int, jt: int | str = 0, jf: int | str = 0) -> None:
        self._code.append((op, jt, jf, k))

    def ret(self, value: int) -> None:
        self._code.append((_RET_K, 0, 0, value))

    def program(self) -> list[Insn]:
        out: list[Insn] = []
        for index, (code, jt, jf, k) in enumerate(self._code):
            out.append((code, self._offset(index, jt), self._offset(index, jf), k))
        return out

    def _offset(self, index: int, target: int | str) -> int:
        if isinstance(target, int):
            return target
        offset = self._labels[target] - index - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"seccomp: jump to {target!r} out of range ({offset})")
        return offset


def build(spec: FilterSpec, arch: str | None = None) -> list[Insn]:
    """The filter for ``spec`` on ``arch`` (this machine's by default), as instructions."""
    arch = arch or machine()
    if arch not in SYSCALLS:
        raise ValueError(f"seccomp: no syscall table for architecture {arch!r}")
    table = SYSCALLS[arch]
    asm = _Assembler()
    _check_arch(asm, arch)
    for name in _denied(spec):
        if name in table:  # fork, vfork, iopl... do not exist everywhere
            asm.jump(_JEQ_K, table[name], "eperm", 0)
    _route_checked(asm, spec, table)
    asm.ret(RET_ALLOW)
    # argument checks, then the shared verdicts last: classic BPF jumps forward only
    _check_arguments(asm, spec)
    _verdicts(asm, spec)
    return asm.program()


def _check_arch(asm: _Assembler, arch: str) -> None:
    """Kill a call made for another architecture (or the x32 ABI), then load its number."""
    asm.load(_ARCH)
    asm.jump(_JEQ_K, AUDIT_ARCH[arch], 0, "kill")
    asm.load(_NR)
    if arch == "x86_64":
        asm.jump(_JGE_K, _X32_SYSCALL_BIT, "kill", 0)


def _denied(spec: FilterSpec) -> list[str]:
    """The system calls denied outright under ``spec``."""
    denied = list(_ALWAYS_DENIED)
    if not spec.allow_exec:
        denied += ["execve", "execveat"]
    if not spec.allow_processes:
        denied += ["fork", "vfork"]
    if not spec.allow_tcp:
        denied.append("socket")
    if not spec.allow_kill_others:
        denied.append("pidfd_send_signal")
    return denied


def _route_checked(asm: _Assembler, spec: FilterSpec, table: dict[str, int]) -> None:
    """Send each system call whose arguments decide its verdict to its check."""
    asm.jump(_JEQ_K, table["clone3"], "enosys", 0)
    asm.jump(_JEQ_K, table["clone"], "clone", 0)
    asm.jump(_JEQ_K, table["prlimit64"], "prlimit64", 0)
    asm.jump(_JEQ_K, table["socketpair"], "socketpair", 0)
    asm.jump(_JEQ_K, table["ioctl"], "ioctl", 0)
    if spec.allow_tcp:
        asm.jump(_JEQ_K, table["socket"], "socket", 0)
    for name in _SCHEDULING:  # whatever the grants: only its own (0 or its pid)
        asm.jump(_JEQ_K, table[name], "own_schedule", 0)
    asm.jump(_JEQ_K, table["setpriority"], "setpriority", 0)
    asm.jump(_JEQ_K, table["ioprio_set"], "ioprio_set", 0)
    asm.jump(_JEQ_K, table["prctl"], "prctl", 0)
    if not spec.allow_kill_others:
        # the first argument of each is the target pid (tgid); only the process itself
        for name in ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
            asm.jump(_JEQ_K, table[name], "self_only", 0)
        asm.jump(_JEQ_K, table["pidfd_open"], "self_only", 0)


def _check_arguments(asm: _Assembler, spec: FilterSpec) -> None:
    """The argument checks of the calls ``_route_checked`` sends here."""
    asm.label("clone")  # threads yes; new namespaces never; processes as the policy says
    asm.load(_arg_lo(0))
    asm.jump(_JSET_K, _CLONE_NAMESPACES, "eperm", 0)
    asm.jump(_JSET_K, _CLONE_THREAD, "allow", 0)
    if spec.allow_processes:
        asm.ret(RET_ALLOW)
    else:
        asm.jump(_JEQ_K, 0, "eperm", "eperm")  # the shared verdict: reported when notifying

    asm.label("prlimit64")  # reading limits (glibc's getrlimit) yes, setting them no
    asm.load(_arg_lo(2))
    asm.jump(_JEQ_K, 0, 0, "eperm")
    asm.load(_arg_hi(2))
    asm.jump(_JEQ_K, 0, 0, "eperm")
    asm.load(_arg_lo(0))
    asm.jump(_JEQ_K, 0, "allow", 0)
    asm.jump(_JEQ_K, spec.pid, "allow", "eperm")

    asm.label("socketpair")  # a pair connected to itself (asyncio's self-pipe): harmless
    asm.load(_arg_lo(0))
    asm.jump(_JEQ_K, _AF_UNIX, "allow", "eperm")

    asm.label("ioctl")
    asm.load(_arg_lo(1))
    asm.jump(_JEQ_K, _TIOCSTI, "eperm", 0)
    asm.jump(_JEQ_K, _TIOCLINUX, "eperm", "allow")

    asm.label("prctl")  # any option but the one that would let it outlive the host
    asm.load(_arg_lo(0))
    asm.jump(_JEQ_K, _PR_SET_PDEATHSIG, "eperm", "allow")

    if spec.allow_tcp:
        _check_socket(asm)

    _check_scheduling(asm, spec)

    if not spec.allow_kill_others:
        asm.label("self_only")
        asm.load(_arg_lo(0))
        asm.jump(_JEQ_K, spec.pid, "allow", "eperm")


def _check_scheduling(asm: _Assembler, spec: FilterSpec) -> None:
    """Its own scheduling only: ``setpriority`` and ``ioprio_set`` of one process (not a
    process group, not a user: every process of the host's user), that process itself."""
    asm.label("setpriority")
    asm.load(_arg_lo(0))
    asm.jump(_JEQ_K, _PRIO_PROCESS, 0, "eperm")
    asm.load(_arg_lo(1))
    asm.jump(_JEQ_K, 0, "allow", "own_pid")
    asm.label("ioprio_set")
    asm.load(_arg_lo(0))
    asm.jump(_JEQ_K, _IOPRIO_WHO_PROCESS, 0, "eperm")
    asm.load(_arg_lo(1))
    asm.jump(_JEQ_K, 0, "allow", "own_pid")
    asm.label("own_schedule")
    asm.load(_arg_lo(0))
    asm.jump(_JEQ_K, 0, "allow", 0)
    asm.label("own_pid")  # the accumulator holds the target pid
    asm.jump(_JEQ_K, spec.pid, "allow", "eperm")


def _check_socket(asm: _Assembler) -> None:
    """TCP over IPv4/IPv6 only; Landlock narrows it to granted ports."""
    asm.label("socket")
    asm.load(_arg_lo(0))
    asm.jump(_JEQ_K, _AF_INET, "socket_type", 0)
    asm.jump(_JEQ_K, _AF_INET6, "socket_type", "eperm")
    asm.label("socket_type")
    asm.load(_arg_lo(1))
    asm.and_(_SOCK_TYPE_MASK)
    asm.jump(_JEQ_K, _SOCK_STREAM, 0, "eperm")
    asm.load(_arg_lo(2))
    asm.jump(_JEQ_K, 0, "allow", 0)
    asm.jump(_JEQ_K, _IPPROTO_TCP, "allow", "eperm")


def _verdicts(asm: _Assembler, spec: FilterSpec) -> None:
    """The shared verdicts every check jumps to."""
    asm.label("kill")
    asm.ret(RET_KILL_PROCESS)
    asm.label("eperm")
    asm.ret(RET_USER_NOTIF if spec.notify else RET_ERRNO | errno.EPERM)
    asm.label("enosys")
    asm.ret(RET_ERRNO | errno.ENOSYS)
    asm.label("allow")
    asm.ret(RET_ALLOW)


def pack(program: list[Insn]) -> bytes:
    """``struct sock_filter[]``: u16 code, u8 jt, u8 jf, u32 k each."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


#: where a pre-built filter holds the worker's pid: above any pid Linux gives (2**22)
_PID_SENTINEL: Final = 0x7FFF_FFF1
#: packed filters made ahead by :func:`prebuild`, by their spec's grants (its pid aside)
_PREBUILT: dict[tuple[bool, bool, bool, bool, bool], bytes] = {}


def _grants(spec: FilterSpec) -> tuple[bool, bool, bool, bool, bool]:
    return (
        spec.allow_exec,
        spec.allow_processes,
        spec.allow_tcp,
        spec.allow_kill_others,
        spec.notify,
    )


def prebuild(spec: FilterSpec) -> bool:
    """Build and pack the filter for ``spec``'s grants once, ahead, with a sentinel
    where the pid goes (the zygote does this before its first fork, so that a worker
    fills in its pid rather than assembling the program: every object the assembler
    makes and uses is a page the worker would copy). Kept only when the sentinel is
    found exactly where the pid instructions' constants are; returns whether it was."""
    program = build(dataclasses.replace(spec, pid=_PID_SENTINEL))
    code = pack(program)
    sentinel = struct.pack("=I", _PID_SENTINEL)
    wanted = [8 * i + 4 for i, insn in enumerate(program) if insn[3] == _PID_SENTINEL]
    found, at = [], code.find(sentinel)
    while at >= 0:
        found.append(at)
        at = code.find(sentinel, at + 1)
    if not wanted or found != wanted:
        return False
    _PREBUILT[_grants(spec)] = code
    return True


def packed(spec: FilterSpec) -> bytes:
    """``pack(build(spec))``: from the filter :func:`prebuild` made for these grants
    when there is one (its pid filled in), else built here."""
    template = _PREBUILT.get(_grants(spec))
    if template is None:
        return pack(build(spec))
    return template.replace(struct.pack("=I", _PID_SENTINEL), struct.pack("=I", spec.pid))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


_PR_SET_NO_NEW_PRIVS: Final = 38
_SECCOMP_SET_MODE_FILTER: Final = 1
_SECCOMP_FILTER_FLAG_TSYNC: Final = 1
_SECCOMP_FILTER_FLAG_NEW_LISTENER: Final = 1 << 3
_SECCOMP_FILTER_FLAG_TSYNC_ESRCH: Final = 1 << 4


def install(
    program: list[Insn] | bytes, arch: str | None = None, *, listener: bool = False
) -> int | None:
    """Load ``program`` (instructions, or already packed) for this process (every
    thread: TSYNC); raises OSError.

    With ``listener`` the kernel returns the filter's notification descriptor (for a
    filter that answers with ``RET_USER_NOTIF``), which is returned here."""
    arch = arch or machine()
    from plugbay.isolation._layer import _libc

    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {errno.errorcode.get(err, err)}")
    code = program if isinstance(program, bytes) else pack(program)
    buffer = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.addressof(buffer))
    flags = _SECCOMP_FILTER_FLAG_TSYNC
    if listener:
        flags |= _SECCOMP_FILTER_FLAG_NEW_LISTENER | _SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    result = libc.syscall(
        ctypes.c_long(SYSCALLS[arch]["seccomp"]),
        ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(flags),
        ctypes.byref(prog),
    )
    if listener and result >= 0:
        return int(result)
    if result != 0:
        err = ctypes.get_errno() if result < 0 else errno.EBUSY
        detail = f"thread {result} could not sync" if result > 0 else errno.errorcode.get(err)
        raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER): {detail}")
    return None


# --- the layer ---------------------------------------------------------------------
# limits.py imports this module for the class below, so the shared vocabulary
# (LayerStatus, SandboxError, the probe helper) is imported where it is used.


class SeccompLayer:
    """The filter above, built for the worker's policy and its own pid."""

    name = "seccomp"
    guarantees = (
        "EPERM for execve/execveat, fork/vfork/clone of processes (threads allowed), "
        "socket() of any family (TCP only when granted), listen(), signals to other "
        "processes, the priority, CPU affinity, scheduling class and I/O priority of any "
        "other process (or of a process group or user), prctl(PR_SET_PDEATHSIG) (it dies "
        "with the host), "
        "ptrace, process_vm_*, mount/unshare/setns/chroot, setting rlimits, "
        "chmod/chown/setxattr of any file (an fchown keeping the owner it has: answered "
        "success by the host, never made), keyctl, bpf, perf_event_open, io_uring, "
        "modules, clock, hostname, TIOCSTI; ENOSYS for clone3; another architecture "
        "or the x32 ABI kills the process"
    )

    def probe(self) -> LayerStatus:
        from plugbay.isolation._layer import LayerStatus, _in_child

        arch = machine()
        if arch not in SUPPORTED:
            return LayerStatus(self.name, False, f"no syscall table for {arch}", self.guarantees)

        def test() -> str:
            install(build(FilterSpec(pid=os.getpid())))
            try:
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except PermissionError:
                pass
            else:
                raise RuntimeError("the filter let socket(AF_INET) through")
            try:
                pid = os.fork()
            except PermissionError:
                return "socket() and fork() get EPERM"
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            raise RuntimeError("the filter let fork() through")

        ok, message = _in_child(self.name, test)
        length = len(build(FilterSpec(pid=1)))
        detail = f"{arch}, {length}-instruction filter loads; {message}" if ok else message
        return LayerStatus(self.name, ok, detail, self.guarantees)

    #: the filter's listener descriptor after ``apply`` with ``notify`` (for the host)
    listener: int | None = None

    def __init__(self, *, notify: bool = False) -> None:
        self.notify = notify

    def apply(self, policy: SandboxPolicy) -> LayerStatus:
        from plugbay.isolation._layer import LayerStatus, SandboxError

        spec = FilterSpec(
            pid=os.getpid(),
            allow_exec=policy.allow_exec,
            allow_processes=policy.processes > 0,
            allow_tcp=bool(policy.network),
            allow_kill_others=policy.allow_kill_others,
            notify=self.notify,
        )
        try:
            program = packed(spec)
            try:
                self.listener = install(program, listener=spec.notify)
            except OSError as exc:
                if not spec.notify or exc.errno not in (errno.EINVAL, errno.ENOSYS):
                    raise
                # a kernel without user notification: the filter answers EPERM itself
                spec = dataclasses.replace(spec, notify=False)
                program = packed(spec)
                self.listener = install(program)
        except (OSError, ValueError) as exc:
            raise SandboxError(str(exc), layer=self.name) from exc
        granted = [
            what
            for what, on in (
                ("exec", spec.allow_exec),
                ("processes", spec.allow_processes),
                ("TCP sockets", spec.allow_tcp),
                ("signals to others", spec.allow_kill_others),
            )
            if on
        ]
        detail = f"{len(program) // 8} instructions; granted: {', '.join(granted) or 'nothing'}"
        if spec.notify:
            detail += "; denials answered and reported by the host"
        return LayerStatus(self.name, True, detail, self.guarantees)
