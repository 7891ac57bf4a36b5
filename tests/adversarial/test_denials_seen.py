"""Attacks that go around Python: every denial the host can hear of becomes a security event.

The attacker calls libc and raw ``syscall(2)`` through ``ctypes`` and swallows
every error, so the worker's guard (a Python audit hook) never sees a thing.
Each test checks the event the operator gets — the plugin, the operation, the
layer — that the attack failed, and that a neighbouring plugin still answers.
Where a layer cannot report on this kernel (Landlock without the kernel's
audit), the test checks that the attack is refused and that ``plugbay doctor``
says the denial is not reported, rather than pretending.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from plugbay.isolation import loops
from plugbay.isolation.denials import denial_reporting
from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.host import Host
from plugbay.state import HistoryEvent
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

SNEAK = """
import ctypes, errno, os
from plugbay import UtilityPlugin, command

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def result(rc: int) -> str:
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")

class P(UtilityPlugin):
    @command
    def pid(self) -> int:
        return os.getpid()

    @command
    def ctypes_open(self, path: str) -> str:
        return result(libc.open(path.encode(), os.O_RDONLY))

    @command
    def raw_socket(self, family: int, kind: int) -> str:
        return result(libc.syscall(41, family, kind, 0))  # x86_64 socket(2)

    @command
    def io_uring(self) -> str:
        return result(libc.syscall(425, 1, None))  # x86_64 io_uring_setup(2)

    @command
    def loop(self) -> str:
        import asyncio

        return type(asyncio.get_running_loop()).__module__

    @command
    def unshare(self) -> str:
        return result(libc.unshare(0x00020000))  # CLONE_NEWNS

    @command
    def ptrace(self, pid: int) -> str:
        return result(libc.ptrace(16, pid, None, None))  # PTRACE_ATTACH

    @command
    def count(self) -> int:
        n = self.context.storage.get("n", 0) + 1
        self.context.storage.set("n", n)
        return n

    @command
    def fchown_own_file(self, uid_offset: int) -> str:
        path = self.context.environment.data_dir / "mine.txt"
        path.write_text("mine")
        fd = os.open(path, os.O_RDONLY)
        try:
            owner = os.fstat(fd)
            outcome = result(libc.fchown(fd, owner.st_uid + uid_offset, owner.st_gid))
            after = os.fstat(fd)
        finally:
            os.close(fd)
        return f"{outcome}, owner {'kept' if after.st_uid == owner.st_uid else 'changed'}"

    @command
    def big_write(self) -> str:
        path = str(self.context.environment.data_dir / "big.bin").encode()
        fd = libc.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        chunk = ctypes.create_string_buffer(1 << 20)
        for _ in range(4):  # 4 MiB against a 1 MiB file-size limit
            rc = libc.write(fd, chunk, 1 << 20)
            if rc < 0:
                break
        outcome = result(rc)
        libc.close(fd)
        return outcome
"""

LIMITS = """
[resources]
file-size = "1MiB"
storage = "8MiB"
timeout = 30
"""


@pytest.fixture(scope="module", params=["process", "ray"])
def sneak_on(request: pytest.FixtureRequest) -> str:
    """The sneak runs in a sandboxed worker here, and on a node of the session's Ray
    cluster (forked by the node's agent, whose seccomp listener reports to the host)."""
    return str(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(
    tmp_path_factory: pytest.TempPathFactory, sneak_on: str, request: pytest.FixtureRequest
) -> AsyncIterator[Host]:
    root = tmp_path_factory.mktemp("denials")
    factory = PluginFactory(root / "plugins")
    factory("acme.neighbour", NEIGHBOUR, extra=LIMITS)
    factory("acme.sneak", SNEAK, extra=LIMITS)
    policy = None
    if sneak_on == "ray":
        cluster = request.getfixturevalue("ray_cluster")
        policy = IsolationPolicy.from_config(
            {"ray": {"address": cluster.address, "plugins": ["acme.sneak"]}}
        )
    async with Host(
        factory.root, state_dir=root / "state", entry_points=False, policy=policy
    ) as host:
        assert host.plugin("acme.sneak").isolation == sneak_on
        yield host


def latest(host: Host) -> int:
    assert host.state is not None
    events = host.state.history(limit=1)
    return events[0].id if events else 0


async def event_after(
    host: Host, since: int, match: Callable[[HistoryEvent], bool]
) -> HistoryEvent:
    """The first security event since ``since`` that ``match`` accepts (10 s hang guard)."""
    assert host.state is not None
    async with asyncio.timeout(10):
        while True:
            for event in host.state.history("acme.sneak", limit=100):
                if event.id > since and event.action.startswith("security.") and match(event):
                    return event
            await asyncio.sleep(0.02)


async def logged(host: Host, text: str) -> list[dict[str, Any]]:
    """The sneak's log records (what ``plugbay logs`` shows) holding ``text``, once there
    is one (10 s hang guard)."""
    async with asyncio.timeout(10):
        while True:
            records = [r for r in host.logs("acme.sneak") if text in r["message"]]
            if records:
                return records
            await asyncio.sleep(0.02)


async def unharmed(host: Host, pid: int) -> None:
    assert await host.call("acme.neighbour", "ping") == "pong"
    assert await host.call("acme.sneak", "pid") == pid  # a denial does not cost the worker


@pytest_asyncio.fixture(loop_scope="module")
async def sneak_pid(host: Host) -> int:
    pid = await host.call("acme.sneak", "pid")
    assert isinstance(pid, int)
    return pid


@pytest.mark.parametrize(
    ("family", "kind", "operation", "permission"),
    [
        (17, 3, "the system call socket(AF_PACKET) (opening a socket)", "network:ADDRESS:PORT"),
        (2, 1, "the system call socket(AF_INET) (opening a socket)", "network:ADDRESS:PORT"),
        (16, 3, "the system call socket(AF_NETLINK) (opening a socket)", "network:ADDRESS:PORT"),
    ],
    ids=["packet", "tcp", "netlink"],
)
async def test_a_raw_socket_syscall_is_refused_and_reported_by_the_host(
    host: Host, sneak_pid: int, family: int, kind: int, operation: str, permission: str
) -> None:
    since = latest(host)
    assert await host.call("acme.sneak", "raw_socket", family=family, kind=kind) == "EPERM"
    event = await event_after(host, since, lambda e: e.details.get("syscall") == "socket")
    assert event.action == "security.denied"
    assert event.details["layer"] == "seccomp"
    assert event.details["operation"] == operation
    assert event.details["permission"] == permission
    assert event.details["pid"] == sneak_pid  # from the kernel, not from the plugin
    assert event.reason == f"plugin 'acme.sneak': the sandbox denied {operation} " + (
        f"(permission '{permission}' not granted)"
    )
    await unharmed(host, sneak_pid)


@pytest.mark.parametrize(
    ("command", "params", "syscall", "operation"),
    [
        ("unshare", {}, "unshare", "the system call unshare"),
        ("ptrace", {"pid": 1}, "ptrace", "the system call ptrace"),
    ],
)
async def test_a_seccomp_denied_syscall_through_ctypes_is_reported(
    host: Host,
    sneak_pid: int,
    command: str,
    params: dict[str, Any],
    syscall: str,
    operation: str,
) -> None:
    since = latest(host)
    assert await host.call("acme.sneak", command, **params) == "EPERM"
    event = await event_after(host, since, lambda e: e.details.get("syscall") == syscall)
    assert (event.action, event.details["layer"], event.details["operation"]) == (
        "security.denied",
        "seccomp",
        operation,
    )
    assert event.plugin_id == "acme.sneak"
    await unharmed(host, sneak_pid)


async def test_only_the_plugins_own_io_uring_call_is_reported(
    host: Host, sneak_pid: int, sneak_on: str
) -> None:
    """A worker on uvloop: libuv asks for an io_uring ring as the worker makes its loop,
    before the plugin is loaded. That denial is the runtime's, answered and not reported;
    the same call made by the plugin is refused and reported."""
    uvloop = sneak_on == "process" and loops.loop_factory() is not None
    assert await host.call("acme.sneak", "loop") == ("uvloop" if uvloop else "asyncio.unix_events")
    assert host.state is not None
    reported = host.state.history("acme.sneak", limit=500)
    assert not [e for e in reported if e.details.get("syscall") == "io_uring_setup"]
    since = latest(host)
    assert await host.call("acme.sneak", "io_uring") == "EPERM"
    event = await event_after(host, since, lambda e: e.details.get("syscall") == "io_uring_setup")
    assert (event.action, event.details["layer"], event.plugin_id) == (
        "security.denied",
        "seccomp",
        "acme.sneak",
    )
    assert event.details["pid"] == sneak_pid
    await unharmed(host, sneak_pid)


async def test_a_plugin_using_its_storage_raises_no_denial_but_giving_a_file_away_does(
    host: Host, sneak_pid: int
) -> None:
    """SQLite, as root in the worker's user namespace, hands each journal, WAL and
    shared-memory file it opens to the database's owner with ``fchown``: a no-op, which
    used to be three false denials in the plugin's log on every start. A plugin handing
    one of its files to another uid is still refused, and reported."""
    since = latest(host)
    assert [await host.call("acme.sneak", "count") for _ in range(3)] == [1, 2, 3]
    gave = await host.call("acme.sneak", "fchown_own_file", uid_offset=1)
    assert gave == "EPERM, owner kept"
    # the same listener hears the worker's calls in order: once the give-away is
    # recorded, anything SQLite's calls before it had caused would be recorded too
    given = await event_after(host, since, lambda e: e.details.get("syscall") == "fchown")
    assert (given.action, given.details["layer"], given.details["pid"]) == (
        "security.denied",
        "seccomp",
        sneak_pid,
    )
    assert host.state is not None
    reported = [
        e
        for e in host.state.history("acme.sneak", limit=100)
        if e.id > since and e.action.startswith("security.")
    ]
    assert [e.id for e in reported] == [given.id]
    assert [r["message"] for r in await logged(host, "fchown")] == [  # `plugbay logs`
        "permission denied: the system call fchown (seccomp)"
    ]
    # the plugin's own no-op, like SQLite's, succeeds (unreported: the test in
    # tests/test_seccomp_notify.py), and nothing was ever handed to anyone
    assert await host.call("acme.sneak", "fchown_own_file", uid_offset=0) == "ok, owner kept"
    await unharmed(host, sneak_pid)


async def test_a_write_past_the_file_size_limit_through_ctypes_is_reported(
    host: Host, sneak_pid: int
) -> None:
    since = latest(host)
    assert await host.call("acme.sneak", "big_write") == "EFBIG"
    event = await event_after(host, since, lambda e: e.details.get("limit") == "file_size")
    assert event.action == "security.limit"
    assert event.details["layer"] == "rlimits"
    assert "SIGXFSZ" in event.details["detail"]
    assert event.reason is not None and event.reason.startswith(
        "plugin 'acme.sneak' hit its file_size limit"
    )
    await unharmed(host, sneak_pid)


async def test_a_landlock_denial_through_ctypes_is_refused_and_doctor_says_it_is_unreported(
    host: Host, sneak_pid: int, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the host's")
    since = latest(host)
    assert (
        await host.call("acme.sneak", "ctypes_open", path=str(secret))
        == errno.errorcode[errno.EACCES]
    )
    await unharmed(host, sneak_pid)
    assert host.state is not None
    landlock = next(row for row in denial_reporting() if row.layer == "landlock")
    if landlock.reported == "always":  # a kernel whose audit plugbay reads: it is an event
        await event_after(host, since, lambda e: str(secret) in (e.reason or ""))
        return
    # this machine: the kernel refuses it, and nobody is told; doctor says exactly that
    assert landlock.reported == "partly"
    assert "through ctypes or C code is refused but not reported" in landlock.how
    assert not [e for e in host.state.history("acme.sneak", limit=100) if e.id > since]


async def test_doctor_says_seccomp_denials_are_always_reported_here() -> None:
    rows = {row.layer: row for row in denial_reporting()}
    assert rows["seccomp"].reported == "always"
    assert "SECCOMP_RET_USER_NOTIF" in rows["seccomp"].how
    assert rows["quota"].reported == "always"
    assert set(rows) == {"seccomp", "landlock", "netns", "rlimits", "cgroup", "quota"}
