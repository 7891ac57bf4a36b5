"""The host's side of the seccomp filter: denied calls handed to a listener, named for the operator."""

from __future__ import annotations

import errno
import socket

import pytest

from plugbay.isolation import _seccomp, seccomp_notify
from plugbay.isolation._seccomp import RET_ERRNO, RET_USER_NOTIF, FilterSpec


def verdicts(spec: FilterSpec) -> set[int]:
    return {k for code, _jt, _jf, k in _seccomp.build(spec, "x86_64") if code == 0x06}


def test_a_notifying_filter_sends_every_denial_to_its_listener_and_no_other_verdict() -> None:
    notifying = verdicts(FilterSpec(pid=1, notify=True))
    assert RET_USER_NOTIF in notifying
    assert RET_ERRNO | errno.EPERM not in notifying  # not even a refused fork
    assert RET_ERRNO | errno.ENOSYS in notifying  # clone3: glibc falls back, not a denial
    plain = verdicts(FilterSpec(pid=1))
    assert RET_USER_NOTIF not in plain and RET_ERRNO | errno.EPERM in plain


@pytest.mark.parametrize(
    ("name", "args", "operation", "permission"),
    [
        ("socket", (int(socket.AF_INET), 1), "the system call socket(AF_INET) (opening a socket)",
         "network:ADDRESS:PORT"),
        ("execve", (0,), "the system call execve (running a program)", "subprocess"),
        ("kill", (4242, 9), "the system call kill(pid 4242) (signalling another process)", None),
        ("clone", (0x10000000,), "the system call clone (creating namespaces)", None),
        ("mount", (0,), "the system call mount", None),
    ],
)  # fmt: skip
def test_a_denied_call_is_named_with_what_it_was_for(
    name: str, args: tuple[int, ...], operation: str, permission: str | None
) -> None:
    assert seccomp_notify.describe_call(name, args + (0,) * (6 - len(args))) == (
        operation,
        permission,
    )


def test_the_listener_hears_a_denied_call_on_this_machine() -> None:
    ok, detail = seccomp_notify.probe()
    assert ok, detail
    assert detail == "a denied socket() reached the listener and got EPERM"
