"""Which denials and limit hits become security events on this machine, and how.

Every sandbox layer stops a plugin at the kernel; not every layer can *tell*.
What the host hears itself (from the kernel, through the worker's channel, or
by looking) cannot be suppressed by the plugin; what the worker's guard hears
is seen only when the plugin's Python code gets the error. ``plugbay doctor``
shows this table, so nothing is claimed that this machine does not do.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import asdict, dataclass
from typing import Any, Final

__all__ = ["DenialReporting", "audit_enabled", "denial_reporting"]

_NETLINK_AUDIT: Final = 9
_AUDIT_GET: Final = 1000
_NLM_F_REQUEST: Final = 1


@dataclass(frozen=True)
class DenialReporting:
    """One layer: whether its denials are reported (``always`` / ``partly`` / ``no``) and how."""

    layer: str
    reported: str
    how: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def audit_enabled() -> bool | None:
    """Whether the kernel's audit is on (None: it cannot be asked here)."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_AUDIT) as sock:
            sock.settimeout(1)
            sock.bind((0, 0))
            sock.send(struct.pack("=IHHII", 16, _AUDIT_GET, _NLM_F_REQUEST, 1, 0))
            data = sock.recv(8192)
    except OSError:
        return None
    if len(data) < 24 or struct.unpack_from("=H", data, 4)[0] != _AUDIT_GET:
        return None
    return bool(struct.unpack_from("=I", data, 20)[0])  # struct audit_status: mask, enabled


def denial_reporting() -> list[DenialReporting]:
    """The table for this machine (the seccomp and quota answers are tried for real)."""
    from plugbay.isolation import quota, seccomp_notify

    notify, why = seccomp_notify.probe()
    if notify:
        seccomp = DenialReporting(
            "seccomp",
            "always",
            "the host answers each denied call (SECCOMP_RET_USER_NOTIF) and records it, "
            "ctypes and raw syscall(2) included",
        )
    else:
        seccomp = DenialReporting(
            "seccomp",
            "partly",
            f"only when the plugin's Python code gets the EPERM (no user notification: {why})",
        )
    audit = audit_enabled()
    landlock = DenialReporting(
        "landlock",
        "partly",
        "when the plugin's Python code gets the EACCES (open, listdir, connect...); a denial "
        "through ctypes or C code is refused but not reported: Landlock logs it only to the "
        "kernel's audit, which is "
        + {True: "on here, but not read by plugbay", False: "off here", None: "not readable here"}[
            audit
        ],
    )
    storage = quota.probe()
    if storage.enforced:
        quota_row = DenialReporting(
            "quota",
            "always",
            "the host looks at each mounted image every 0.1 s and records it full (a write "
            "refused with ENOSPC, ctypes included); an ENOSPC Python sees is recorded at once",
        )
    else:
        quota_row = DenialReporting(
            "quota", "always", "sampled: the host measures the directory and stops the worker"
        )
    return [
        seccomp,
        landlock,
        DenialReporting(
            "netns",
            "partly",
            "a network socket is refused by seccomp first (reported); a connect inside a "
            "granted network to an address not granted is reported when Python sees it",
        ),
        DenialReporting(
            "rlimits",
            "partly",
            "file size: the kernel's SIGXFSZ, handled in the worker (ctypes included, unless "
            "the plugin replaces the handler); CPU seconds: the kill, seen by the host; open "
            "files and address space: only when Python raises (EMFILE, MemoryError)",
        ),
        DenialReporting(
            "cgroup", "always", "memory: the OOM kill, seen by the host in the worker's exit"
        ),
        quota_row,
    ]
