"""The host's side of the seccomp filter: denied calls handed to a listener, named for the operator."""

from __future__ import annotations

import errno
import json
import os
import queue
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from plugbay.isolation import _seccomp, seccomp_notify
from plugbay.isolation._layer import _in_child
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


def test_an_fchown_keeping_the_owner_succeeds_unreported_and_any_other_is_refused(
    tmp_path: Path,
) -> None:
    """What SQLite does as root (each journal handed to the database's owner) is a no-op,
    answered with success and not reported; an fchown to another owner is refused and
    reported, and the file keeps its owner."""
    path = tmp_path / "mine.txt"
    path.write_text("mine")

    def test() -> str:
        spec = FilterSpec(pid=os.getpid(), notify=True)
        listener = _seccomp.install(_seccomp.build(spec), listener=True)
        assert listener is not None
        names = {number: name for name, number in _seccomp.SYSCALLS[_seccomp.machine()].items()}
        heard: queue.Queue[dict[str, Any] | None] = queue.Queue()

        def serve() -> None:
            while True:
                heard.put(seccomp_notify.answer(listener, names))

        threading.Thread(target=serve, daemon=True).start()
        fd = os.open(path, os.O_RDONLY)
        st = os.fstat(fd)
        outcomes: dict[str, Any] = {}
        for what, uid, gid in [
            ("same owner", st.st_uid, st.st_gid),
            ("keep both", -1, -1),
            ("same uid, keep gid", st.st_uid, -1),
            ("another uid", st.st_uid + 1, -1),
            ("another gid", -1, st.st_gid + 1),
            ("a closed descriptor", st.st_uid, st.st_gid),
        ]:
            target = fd if what != "a closed descriptor" else 1000
            try:
                os.fchown(target, uid, gid)
                result = "ok"
            except OSError as exc:
                result = errno.errorcode[exc.errno]
            event = heard.get(timeout=5)
            outcomes[what] = [result, None if event is None else event["operation"]]
        after = os.fstat(fd)
        outcomes["owner after"] = [after.st_uid - st.st_uid, after.st_gid - st.st_gid]
        return json.dumps(outcomes)

    ok, detail = _in_child("seccomp", test, timeout=10)
    assert ok, detail
    denied = ["EPERM", "the system call fchown"]
    assert json.loads(detail) == {
        "same owner": ["ok", None],
        "keep both": ["ok", None],
        "same uid, keep gid": ["ok", None],
        "another uid": denied,
        "another gid": denied,
        "a closed descriptor": denied,
        "owner after": [0, 0],
    }
