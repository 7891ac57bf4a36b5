"""The security claims of docs/security.md, docs/operators.md and docs/architecture.md,
each checked against a hostile plugin in a real sandboxed worker.

Most claims are proved elsewhere (``tests/test_sandbox.py``, ``tests/adversarial/``,
``tests/test_limits.py``; the table in ``tests/adversarial/README.md``). These are
the ones that were proved by no test, or only by an error's type: each test here
makes the attack, checks that its effect did not happen (the process it aimed at
unchanged, nothing received, nothing kept past its bound), what the caller and the
operator are told, and that the host and a neighbouring sandboxed plugin carry on.

Every plugin runs under the host's policy from a ``plugbay.toml`` written as an
operator would write it (grants, secrets, per-plugin bounds), one host for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import json
import os
import select
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from plugbay import (
    PermissionDenied,
    PlugbayError,
    PluginCallError,
    PluginCrashed,
    ResourceLimitExceeded,
)
from plugbay.isolation import _seccomp
from plugbay.isolation._cgroups import discover
from plugbay.runtime.host import Host
from plugbay.state import HistoryEvent
from plugbay.web.token import TokenFile
from tests.conftest import PluginFactory
from tests.test_limits import _run_bpf
from tests.test_sandbox import LIBC, NEIGHBOUR

pytestmark = [pytest.mark.slow]
#: every test of the arena runs on the loop of its module-scoped host
on_arena = pytest.mark.asyncio(loop_scope="module")

MiB = 1 << 20
#: a secret only the host's config file holds: no plugin may ever see it
SECRET = f"config-secret-{uuid.uuid4().hex}"

#: reaches for other processes' scheduling: none of it is a signal, so neither the
#: guard nor Landlock's signal scope sees it; the kernel allows it to the same owner
MEDDLER = (
    LIBC
    + """
from plugbay import UtilityPlugin, command

IOPRIO_SET = {"x86_64": 251, "aarch64": 30}[os.uname().machine]
IOPRIO_WHO_PROCESS = 1

class P(UtilityPlugin):
    @command
    def renice(self, pid: int) -> None:
        os.setpriority(os.PRIO_PROCESS, pid, 19)

    @command
    def renice_group(self, pgid: int) -> None:
        os.setpriority(os.PRIO_PGRP, pgid, 19)

    @command
    def pin(self, pid: int) -> None:
        os.sched_setaffinity(pid, {min(os.sched_getaffinity(0))})

    @command
    def starve(self, pid: int) -> None:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))

    @command
    def throttle_io(self, pid: int) -> None:
        check(libc.syscall(IOPRIO_SET, IOPRIO_WHO_PROCESS, pid, 3 << 13))  # the idle class

    @command
    def humble(self) -> int:
        # its own priority is its own to lower
        os.setpriority(os.PRIO_PROCESS, 0, 5)
        return os.getpriority(os.PRIO_PROCESS, 0)
"""
)

#: granted one TCP destination: tries to serve, and to reach anything that is not TCP
LISTENER = (
    LIBC
    + """
import socket
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    kept: list = []

    @command
    def connect(self, port: int) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"hello from a plugin")
            return s.recv(100).decode()

    @command
    def serve(self) -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.listen(16)  # no bind: the kernel picks a port on every address
        self.kept.append(s)
        return s.getsockname()[1]

    @command
    def raw_serve(self) -> int:
        # through libc, the error swallowed: only the kernel can stop it
        fd = check(libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0))
        self.kept.append(fd)
        return libc.listen(fd, 16)

    @command
    def datagram(self, port: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"hello over udp", ("127.0.0.1", port))

    @command
    def local(self, address: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(address.replace("@", "\\0", 1) if address.startswith("@") else address)
            s.sendall(b"hello over a unix socket")
"""
)

#: System V IPC is keyed by number, not by path: Landlock never sees it
SHM_READER = (
    LIBC
    + """
from plugbay import UtilityPlugin, command

libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)

class P(UtilityPlugin):
    @command
    def shm(self, key: int) -> str:
        shmid = check(libc.shmget(key, 0, 0))
        at = libc.shmat(shmid, None, 0)
        if at in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "shmat")
        return ctypes.string_at(at, 64).split(b"\\0")[0].decode()
"""
)

THREADER = """
import os, threading
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def crowd(self) -> int:
        release, started = threading.Event(), []
        try:
            while len(started) < 1000:
                t = threading.Thread(target=release.wait, args=(60,), daemon=True)
                t.start()
                started.append(t)
        finally:
            tasks = len(os.listdir("/proc/self/task"))
            (self.context.environment.data_dir / "tasks").write_text(str(tasks))
            release.set()
        return len(started)

    @command
    def ping(self) -> str:
        return "pong"
"""

CRASHER = """
import ctypes, os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def segfault(self) -> None:
        ctypes.string_at(0)

    @command
    def pid(self) -> int:
        return os.getpid()
"""

SPINNER = """
import threading, time
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command(blocking=True)
    def spin(self, seconds: float, threads: int) -> float:
        def burn() -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
        cpu = time.process_time()
        workers = [threading.Thread(target=burn) for _ in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        return time.process_time() - cpu
"""

CALLER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    ticks = 0

    @command
    async def storm(self, calls: int) -> dict[str, int]:
        worker = self.context.services._worker  # the worker runtime, in its own process
        outcome: dict[str, int] = {}
        for _ in range(calls):
            try:
                await worker.host_call("acme.caller", "tick", {})
                key = "ok"
            except Exception as exc:
                key = getattr(exc, "code", type(exc).__name__)
            outcome[key] = outcome.get(key, 0) + 1
        return outcome

    @command
    def tick(self) -> None:
        type(self).ticks += 1

    @command
    def count(self) -> int:
        return type(self).ticks
"""

CHATTER = """
import asyncio
from plugbay import UtilityPlugin, command
from plugbay.isolation import frames

class P(UtilityPlugin):
    @command
    async def chatter(self, records: int, size: int) -> None:
        worker = self.context.services._worker
        transport = worker.channel.transport
        for n in range(records):
            # raw frames on its own channel: past the worker's own rate limit
            worker.send(frames.Log(30, "plugbay.plugin.acme.chatter", f"line {n} " + "x" * size, None))
            while transport.get_write_buffer_size() > 1 << 20:
                await asyncio.sleep(0.001)

    @command
    def shout(self, lines: int) -> None:
        for n in range(lines):
            print(f"shout {n}")

    @command
    def big(self, size: int) -> str:
        return "x" * size

    @command
    def ping(self) -> str:
        return "pong"
"""

SNOOP = (
    LIBC
    + """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def read(self, path: str) -> str:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")

    @command
    def raw_read(self, path: str) -> str:
        # libc's open: past the guard's audit hook, only the kernel decides
        fd = check(libc.open(path.encode(), os.O_RDONLY))
        try:
            return os.read(fd, 1 << 16).decode("latin-1")
        finally:
            os.close(fd)

    @command
    def write(self, name: str, text: str) -> None:
        (self.context.environment.data_dir / name).write_text(text)

    @command
    def read_own(self, name: str) -> str:
        return (self.context.environment.data_dir / name).read_text()
"""
)

LIMITS = '[resources]\nmemory = "128MiB"\ntimeout = 30\n'

#: plugin id → (code, manifest extra)
PLUGINS: dict[str, tuple[str, str]] = {
    "acme.neighbour": (NEIGHBOUR, LIMITS),
    "acme.meddler": (MEDDLER, LIMITS),
    "acme.listener": (LISTENER, "[permissions]\nnetwork = ['127.0.0.1:{port}']\n" + LIMITS),
    "acme.shm": (SHM_READER, LIMITS),
    "acme.threader": (THREADER, LIMITS + "threads = 4\n"),
    "acme.crasher": (CRASHER, LIMITS),
    "acme.spinner": (SPINNER, LIMITS),
    "acme.caller": (CALLER, LIMITS),
    "acme.chatter": (CHATTER, LIMITS),
    "acme.snoop": (SNOOP, LIMITS),
}

#: the operator's config: one grant, a secret, and tighter bounds for two plugins
CONFIG = """
[policy.grants]
"acme.listener" = ["network:127.0.0.1:{port}"]

[secrets]
vault = "{secret}"

[policy.bounds.plugins."acme.caller"]
host-calls-per-second = 20
host-calls-burst = 20

[policy.bounds.plugins."acme.chatter"]
log-records-per-second = 50
log-burst = 100
log-message-bytes = 1024
frame-bytes = 1048576
"""


# --------------------------------------------------------------------------- the arena


@dataclass
class Arena:
    host: Host
    root: Path
    config: Path
    #: a TCP server on the one destination acme.listener is granted
    granted: Server
    neighbour_pid: int

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def data_dir(self, plugin_id: str) -> Path:
        return self.state_dir / "data" / plugin_id


@dataclass
class Server:
    port: int
    received: list[bytes]


@contextlib.asynccontextmanager
async def tcp_server() -> AsyncIterator[Server]:
    server_state = Server(0, [])

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_state.received.append(await reader.read(100))
        writer.write(b"hello back")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    server_state.port = server.sockets[0].getsockname()[1]
    try:
        yield server_state
    finally:
        server.close()
        await server.wait_closed()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def arena(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Arena]:
    root = tmp_path_factory.mktemp("claims")
    async with tcp_server() as granted:
        factory = PluginFactory(root / "plugins")
        for plugin_id, (code, extra) in PLUGINS.items():
            factory(plugin_id, code, extra=extra.replace("{port}", str(granted.port)))
        config = root / "plugbay.toml"
        config.write_text(CONFIG.format(port=granted.port, secret=SECRET))
        (root / "state").mkdir()
        TokenFile(root / "state").ensure()  # the API's token, as 'plugbay run' makes it
        host = Host(
            factory.root,
            state_dir=root / "state",
            config_file=config,
            entry_points=False,
            init_timeout=30,
            restart_backoff=0.05,
            max_crashes=50,
        )
        async with host:
            not_started = {r.id: r.reason for r in host.plugins() if str(r.state) != "active"}
            assert not_started == {}
            assert all(r.placement and r.placement.sandboxed for r in host.plugins())
            yield Arena(host, root, config, granted, worker_pid(host, "acme.neighbour"))


def worker_pid(host: Host, plugin_id: str) -> int:
    pid = getattr(host.plugin(plugin_id).handle, "pid", None)
    assert isinstance(pid, int), f"{plugin_id} has no worker: {host.plugin(plugin_id).reason}"
    return pid


async def active_worker(host: Host, plugin_id: str, *, not_pid: int | None = None) -> int:
    """The pid of the plugin's worker once it is active (given ``not_pid``, a new one)."""
    async with asyncio.timeout(60):  # a guard against a hang, not a timed assertion
        while True:
            rec = host.plugin(plugin_id)
            pid = getattr(rec.handle, "pid", None)
            if str(rec.state) == "active" and isinstance(pid, int) and pid != not_pid:
                return pid
            await asyncio.sleep(0.02)


def last_event(host: Host) -> int:
    assert host.state is not None
    latest = host.state.history(limit=1)
    return latest[0].id if latest else 0


def history_since(host: Host, plugin_id: str, since: int) -> list[HistoryEvent]:
    assert host.state is not None
    return [e for e in host.state.history(plugin_id, limit=500) if e.id > since]


async def reported(host: Host, plugin_id: str, since: int, action: str, text: str) -> HistoryEvent:
    """The ``action`` event naming ``text`` recorded for ``plugin_id`` since ``since``
    (the host answers a seccomp denial on its loop: wait for the record, bounded)."""
    async with asyncio.timeout(10):  # a guard against a hang, not a timed assertion
        while True:
            found = [
                e
                for e in history_since(host, plugin_id, since)
                if e.action == action and text in (e.reason or "")
            ]
            if found:
                return found[0]
            await asyncio.sleep(0.02)


async def assert_unharmed(arena: Arena) -> None:
    """The host and its neighbouring sandboxed plugin carry on as before."""
    host = arena.host
    assert await host.call("acme.neighbour", "ping") == "pong"
    assert await host.call("acme.neighbour", "keep", text="still here") == "still here"
    assert str(host.plugin("acme.neighbour").state) == "active"
    assert worker_pid(host, "acme.neighbour") == arena.neighbour_pid  # never disturbed
    db = arena.state_dir / "state.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# --------------------------------------------------------------------------- processes


_libc = ctypes.CDLL(None, use_errno=True)
_IOPRIO_GET = {"x86_64": 252, "aarch64": 31}[os.uname().machine]


@dataclass(frozen=True)
class Scheduling:
    """How the kernel schedules a process: what a plugin must not change in another."""

    nice: int
    cpus: frozenset[int]
    policy: int
    io: int

    @classmethod
    def of(cls, pid: int) -> Scheduling:
        return cls(
            os.getpriority(os.PRIO_PROCESS, pid),
            frozenset(os.sched_getaffinity(pid)),
            os.sched_getscheduler(pid),
            int(_libc.syscall(_IOPRIO_GET, 1, pid)),
        )

    def restore(self, pid: int) -> None:
        """Put it back (should an attack have got through: this test process is one)."""
        with contextlib.suppress(OSError):
            os.sched_setscheduler(pid, self.policy, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, pid, self.nice)
            os.sched_setaffinity(pid, self.cpus)
            _libc.syscall(251 if os.uname().machine == "x86_64" else 30, 1, pid, self.io)


@pytest.fixture
def bystander() -> Iterator[int]:
    """Another program of the host's user, in a session (and process group) of its own."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@on_arena
@pytest.mark.parametrize(
    ("command", "call"),
    [
        ("renice", "setpriority"),
        ("pin", "sched_setaffinity"),
        ("starve", "sched_setscheduler"),
        ("throttle_io", "ioprio_set"),
    ],
)
async def test_a_plugin_cannot_change_how_other_processes_are_scheduled(
    arena: Arena, bystander: int, command: str, call: str
) -> None:
    host = arena.host
    targets = {"the host": os.getpid(), "another program": bystander}
    before = {pid: Scheduling.of(pid) for pid in targets.values()}
    try:
        for what, pid in targets.items():
            since = last_event(host)
            with pytest.raises(PermissionDenied) as caught:
                await host.call("acme.meddler", command, pid=pid)
            assert caught.value.details["layer"] == "seccomp", (what, caught.value.details)
            assert Scheduling.of(pid) == before[pid], f"{what} was changed by {command}"
            # heard from the kernel by the host, naming the call: the plugin cannot hide it
            await reported(host, "acme.meddler", since, "security.denied", f"system call {call}")
    finally:
        for pid, scheduling in before.items():
            scheduling.restore(pid)
    await assert_unharmed(arena)


@on_arena
async def test_a_plugin_cannot_renice_another_process_group(arena: Arena, bystander: int) -> None:
    host = arena.host
    before = Scheduling.of(bystander)
    try:
        with pytest.raises(PermissionDenied):
            await host.call("acme.meddler", "renice_group", pgid=bystander)
        assert Scheduling.of(bystander) == before
    finally:
        before.restore(bystander)
    # its own scheduling stays its own: it may lower its own priority
    assert await host.call("acme.meddler", "humble") == 5
    await assert_unharmed(arena)


def test_the_filter_keeps_scheduling_calls_to_the_worker_itself() -> None:
    """What the real worker above cannot show without harming the machine: a whole user's
    or process group's priority (PRIO_USER of uid 0 is every root process, kernel
    threads included)."""
    arch = "x86_64"
    table, native = _seccomp.SYSCALLS[arch], _seccomp.AUDIT_ARCH[arch]
    prog = _seccomp.build(_seccomp.FilterSpec(pid=4242), arch)
    allow, eperm = _seccomp.RET_ALLOW, _seccomp.RET_ERRNO | errno.EPERM

    def run(name: str, *args: int) -> int:
        return _run_bpf(prog, table[name], native, args)

    prio_process, prio_pgrp, prio_user = 0, 1, 2
    assert run("setpriority", prio_process, 0, 19) == allow  # itself
    assert run("setpriority", prio_process, 4242, 19) == allow
    assert run("setpriority", prio_process, 1, 19) == eperm
    assert run("setpriority", prio_pgrp, 0, 19) == eperm  # its group holds no one else, still no
    assert run("setpriority", prio_user, 0, 19) == eperm
    for name in ("sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr"):
        assert run(name, 0) == allow, name
        assert run(name, 4242) == allow, name
        assert run(name, 1) == eperm, name
    assert run("ioprio_set", 1, 0, 0) == allow  # IOPRIO_WHO_PROCESS, itself
    assert run("ioprio_set", 1, 4242, 0) == allow
    assert run("ioprio_set", 1, 1, 0) == eperm
    assert run("ioprio_set", 3, 0, 0) == eperm  # IOPRIO_WHO_USER
    assert run("listen", 3, 16) == eperm
    tcp = _seccomp.build(_seccomp.FilterSpec(pid=4242, allow_tcp=True), arch)
    assert _run_bpf(tcp, table["listen"], native, (3, 16)) == eperm  # even with TCP granted


# --------------------------------------------------------------------------- the network


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]


@on_arena
async def test_a_plugin_granted_a_destination_cannot_listen_for_connections(
    arena: Arena,
) -> None:
    host = arena.host
    # the grant is in force: the granted destination answers
    assert await host.call("acme.listener", "connect", port=arena.granted.port) == "hello back"
    pid = worker_pid(host, "acme.listener")
    since = last_event(host)
    # had it worked, anyone who reaches this machine could connect to the plugin
    with pytest.raises(PermissionDenied) as caught:
        await host.call("acme.listener", "serve")
    assert caught.value.details["layer"] == "seccomp"
    await reported(host, "acme.listener", since, "security.denied", "system call listen")
    # through libc, the error swallowed: still nothing listens
    assert await host.call("acme.listener", "raw_serve") == -1
    assert listening_sockets(pid) == []
    assert worker_pid(host, "acme.listener") == pid  # a denial, not a crash
    await assert_unharmed(arena)


@on_arena
async def test_a_tcp_grant_reaches_no_udp_and_no_local_socket(arena: Arena) -> None:
    host = arena.host
    loop = asyncio.get_running_loop()
    received: list[bytes] = []

    class Datagrams(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.append(data)

    # UDP on the very port number its TCP grant names
    transport, _ = await loop.create_datagram_endpoint(
        Datagrams, local_addr=("127.0.0.1", arena.granted.port)
    )
    path = arena.root / f"s-{uuid.uuid4().hex[:8]}.sock"
    abstract = f"@plugbay-test-{uuid.uuid4().hex}"
    accepted: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append("a connection")
        writer.close()

    servers = [
        await asyncio.start_unix_server(serve, path=str(path)),
        await asyncio.start_unix_server(serve, path="\0" + abstract[1:]),
    ]
    try:
        with pytest.raises(PermissionDenied):
            await host.call("acme.listener", "datagram", port=arena.granted.port)
        for address in (str(path), abstract):
            with pytest.raises(PermissionDenied):
                await host.call("acme.listener", "local", address=address)
        # a datagram that got out would be here by the time the neighbour answers twice
        await assert_unharmed(arena)
        assert received == [] and accepted == []
    finally:
        transport.close()
        for server in servers:
            server.close()
            await server.wait_closed()


# --------------------------------------------------------------------------- other programs' data


SHMGET, SHMAT = _libc.shmget, _libc.shmat
SHMAT.restype = ctypes.c_void_p
SHMAT.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)


@pytest.fixture
def shared_memory() -> Iterator[tuple[int, str]]:
    """A System V shared memory segment of another program of the host's user, mode 0600."""
    key, secret = int.from_bytes(os.urandom(3), "big") | 0x5E000000, f"shm-{uuid.uuid4().hex}"
    shmid = SHMGET(key, 4096, 0o1000 | 0o2000 | 0o600)  # IPC_CREAT | IPC_EXCL | 0600
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    at = SHMAT(shmid, None, 0)
    ctypes.memmove(at, secret.encode(), len(secret))
    try:
        yield key, secret
    finally:
        _libc.shmdt(ctypes.c_void_p(at))
        _libc.shmctl(shmid, 0, None)  # IPC_RMID


@on_arena
async def test_another_programs_shared_memory_is_out_of_reach(
    arena: Arena, shared_memory: tuple[int, str]
) -> None:
    key, secret = shared_memory
    with pytest.raises(PlugbayError) as caught:
        await arena.host.call("acme.shm", "shm", key=key)
    assert secret not in str(caught.value)
    assert "No such file or directory" in str(caught.value)  # there is no such key for it
    await assert_unharmed(arena)


@on_arena
async def test_the_hosts_config_secrets_and_api_token_cannot_be_read(arena: Arena) -> None:
    host = arena.host
    token = (arena.state_dir / "api-token").read_text().strip()
    assert SECRET in arena.config.read_text() and len(token) >= 32  # there to be read
    targets = [
        arena.config,
        arena.state_dir / "api-token",
        Path(f"/proc/{os.getpid()}/mem"),
        Path(f"/proc/{os.getpid()}/cmdline"),
    ]
    for target in targets:
        for command in ("read", "raw_read"):
            with pytest.raises(PermissionDenied) as caught:
                await host.call("acme.snoop", command, path=str(target))
            assert SECRET not in str(caught.value) and token not in str(caught.value)
    # what it reads beside its own code is the runtime: the standard library and the
    # packages installed beside plugbay (docs/operators.md says so)
    installed = Path(psutil.__file__)
    assert await host.call("acme.snoop", "read", path=str(installed)) == latin1(installed)
    await assert_unharmed(arena)


def latin1(path: Path) -> str:
    return path.read_bytes().decode("latin-1")


@on_arena
@pytest.mark.skipif(os.getuid() != 0, reason="root's override of file permissions, as root")
async def test_a_host_running_as_root_lends_its_plugins_none_of_roots_powers(
    arena: Arena,
) -> None:
    # files of another user in the plugin's own data directory, as the host sees it: root
    # would read and write them whatever their mode (CAP_DAC_OVERRIDE)
    data = arena.data_dir("acme.snoop")
    private, readonly = data / "private.txt", data / "readonly.txt"
    for path, mode in ((private, 0o600), (readonly, 0o644)):
        path.write_text("another user's")
        os.chown(path, 4242, 4242)
        os.chmod(path, mode)
    # refused by the files' own permissions (the sandbox allows its data directory), and
    # said so: the plugin's own PermissionError, no grant offered
    for command, args in (("read_own", {"name": "private.txt"}),
                          ("write", {"name": "readonly.txt", "text": "owned"})):  # fmt: skip
        with pytest.raises(PluginCallError, match="PermissionError") as refused:
            await arena.host.call("acme.snoop", command, **args)
        assert "the file's own permissions refused it" in (refused.value.hint or "")
    assert readonly.read_text() == "another user's"
    # what is its own it reads and writes
    await arena.host.call("acme.snoop", "write", name="mine.txt", text="mine")
    assert await arena.host.call("acme.snoop", "read_own", name="mine.txt") == "mine"
    await assert_unharmed(arena)


# --------------------------------------------------------------------------- limits


@on_arena
async def test_a_plugin_starting_threads_stops_at_its_thread_limit(arena: Arena) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.threader")
    since = last_event(host)
    with pytest.raises(ResourceLimitExceeded, match="thread limit") as caught:
        await host.call("acme.threader", "crowd")
    assert caught.value.details["limit"] == "threads"
    assert "resources.threads" in str(caught.value)
    # the kernel counted: at most 1 + threads tasks ever ran in the worker
    tasks = int((arena.data_dir("acme.threader") / "tasks").read_text())
    assert tasks <= 1 + 4
    await reported(host, "acme.threader", since, "security.limit", "threads")
    # a limit hit replaces the worker, as every other one
    await active_worker(host, "acme.threader", not_pid=pid)
    assert await host.call("acme.threader", "ping") == "pong"
    await assert_unharmed(arena)


@on_arena
async def test_a_cpu_hog_gets_at_most_one_core(arena: Arena) -> None:
    host = arena.host
    group = host.plugin("acme.spinner").handle.cgroup  # type: ignore[union-attr]
    dirs = {c: Path(d) for c, d in discover().dirs(group).items()}
    if "unified" in dirs:  # cgroup v2
        assert (dirs["unified"] / "cpu.max").read_text().split() == ["100000", "100000"]
    else:
        assert (dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "100000"
        assert (dirs["cpu"] / "cpu.cfs_period_us").read_text().strip() == "100000"
    started = time.monotonic()
    used = await host.call("acme.spinner", "spin", seconds=1.5, threads=3)
    wall = time.monotonic() - started
    # three spinning threads on a machine of two or more cores, held to one
    assert used <= 1.0 * wall + 0.25, f"{used:.2f} CPU seconds in {wall:.2f} s"
    await assert_unharmed(arena)


def core_limit(pid: int) -> list[str]:
    """The soft and hard core-file size limits of a process, as ``/proc`` shows them."""
    limits = Path(f"/proc/{pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    return line.split()[4:6]


def core_dumps(directory: Path) -> set[Path]:
    return set(directory.glob("core*"))


@on_arena
async def test_a_crash_leaves_no_core_dump(arena: Arena) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.crasher")
    assert core_limit(pid) == ["0", "0"]  # soft and hard: it cannot raise it
    cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    dumps_before = core_dumps(cwd)
    with pytest.raises(PluginCrashed) as caught:
        await host.call("acme.crasher", "segfault")
    assert "SIGSEGV" in str(caught.value)
    await active_worker(host, "acme.crasher", not_pid=pid)
    assert core_dumps(cwd) == dumps_before
    assert not core_dumps(arena.data_dir("acme.crasher"))
    await assert_unharmed(arena)


# --------------------------------------------------------------------------- bounds


@on_arena
async def test_host_calls_past_the_plugins_rate_are_refused_and_never_reach_the_target(
    arena: Arena,
) -> None:
    host = arena.host
    started = time.monotonic()
    outcome = await host.call("acme.caller", "storm", calls=300)
    elapsed = time.monotonic() - started
    made = await host.call("acme.caller", "count")
    # host-calls-burst = 20, host-calls-per-second = 20 ([policy.bounds.plugins."acme.caller"])
    allowed = 20 + 20 * elapsed
    assert outcome.get("ok", 0) == made <= allowed + 1, (outcome, made, elapsed)
    assert outcome["resource_limit"] == 300 - made
    assert host.manager.budgets["acme.caller"].dropped["host_call_rate"] >= 300 - made
    await assert_unharmed(arena)


@on_arena
async def test_a_log_flood_is_kept_to_the_plugins_rate_and_cut_to_its_size(
    arena: Arena,
) -> None:
    host = arena.host

    def kept(prefix: str) -> list[str]:
        records = host.logs("acme.chatter", limit=100_000)
        return [r["message"] for r in records if r["message"].startswith(prefix)]

    # log-records-per-second = 50, log-burst = 100, log-message-bytes = 1024
    started = time.monotonic()
    await host.call("acme.chatter", "chatter", records=5000, size=4096)
    lines = kept("line ")
    assert 50 <= len(lines) <= 100 + 50 * (time.monotonic() - started) + 1, len(lines)
    assert all(len(m) < 1024 + 64 and m.endswith("more characters cut)") for m in lines)
    budget = host.manager.budgets["acme.chatter"]
    assert budget.dropped["log_rate"] >= 5000 - len(lines)
    assert budget.dropped["log_message_truncated"] >= len(lines)
    # printed lines go the same way (the worker's own limit first, then the host's)
    started = time.monotonic()
    await host.call("acme.chatter", "shout", lines=20_000)
    assert len(kept("shout ")) <= 100 + 50 * (time.monotonic() - started) + 1
    await assert_unharmed(arena)
    assert len(kept("shout ")) <= 100 + 50 * (time.monotonic() - started) + 1


# --------------------------------------------------------------------------- its own host


UNDYING = (
    LIBC
    + """
import time
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def outlive(self) -> None:
        os._exit = lambda code: time.sleep(3600)  # the worker runtime's last word, taken away
        check(libc.prctl(1, 0, 0, 0, 0))  # PR_SET_PDEATHSIG: no signal when its parent dies

    @command
    def pid(self) -> int:
        return os.getpid()
"""
)

#: a host in a process of its own, to be killed: it says its worker's and zygote's pids
HOST_SCRIPT = """
import asyncio, json, sys
from plugbay import PlugbayError
from plugbay.runtime.host import Host

async def main(plugins: str, state: str) -> None:
    async with Host(plugins, state_dir=state, entry_points=False, init_timeout=30) as host:
        try:
            outcome = repr(await host.call("acme.undying", "outlive"))
        except PlugbayError as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        pids = {
            "worker": await host.call("acme.undying", "pid"),
            "zygote": host.manager.backends["process"].zygote.pid,
        }
        print(json.dumps({"outcome": outcome, **pids}), flush=True)
        await asyncio.sleep(600)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def first_line(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    """The first line the process prints (a guard against a hang, not a timing)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            return proc.stdout.readline()
        assert proc.poll() is None, f"the host exited with {proc.returncode}"
    raise AssertionError("the host never said its pids")


def test_a_worker_cannot_outlive_a_host_killed_with_sigkill(tmp_path: Path) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.undying", UNDYING)
    with (tmp_path / "host-stderr.txt").open("w") as stderr:
        host = subprocess.Popen(
            [sys.executable, "-c", HOST_SCRIPT, str(factory.root), str(tmp_path / "state")],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=tmp_path,
        )
    survivors: list[psutil.Process] = []
    try:
        said = json.loads(first_line(host))
        processes = [psutil.Process(said["worker"]), psutil.Process(said["zygote"])]
        host.kill()
        host.wait(timeout=30)
        _, survivors = psutil.wait_procs(processes, timeout=30)
        assert [p.pid for p in survivors if p.status() != psutil.STATUS_ZOMBIE] == []
        assert said["outcome"].startswith("PermissionDenied"), said
    finally:
        for process in survivors:  # only what this test started, by pid
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        if host.poll() is None:
            host.kill()
            host.wait(timeout=30)
        assert host.stdout is not None
        host.stdout.close()


@on_arena
async def test_a_sandboxed_plugin_does_not_start_with_a_layer_missing(tmp_path: Path) -> None:
    marker = tmp_path / "its-code-ran"
    factory = PluginFactory(tmp_path / "plugins")
    factory(
        "acme.unconfined",
        f"open({str(marker)!r}, 'w').close()  # at import: only without a sandbox\n" + NEIGHBOUR,
        extra=f"[permissions]\nwrite = [{str(tmp_path / 'missing')!r}]\n",
    )
    factory("acme.neighbour", NEIGHBOUR)
    config = tmp_path / "plugbay.toml"
    # granted a directory that is not there: Landlock cannot add the rule
    config.write_text(f'[policy.grants]\n"acme.unconfined" = ["write:{tmp_path / "missing"}"]\n')
    async with Host(
        factory.root,
        state_dir=tmp_path / "state",
        config_file=config,
        entry_points=False,
        init_timeout=30,
        max_crashes=1,
    ) as host:
        record = host.plugin("acme.unconfined")
        assert str(record.state) == "failed", (record.state, record.reason)
        assert "sandbox layer 'landlock'" in (record.reason or ""), record.reason
        assert not marker.exists()
        assert await host.call("acme.neighbour", "ping") == "pong"


@on_arena
async def test_a_frame_over_the_plugins_configured_bound_replaces_its_worker_only(
    arena: Arena,
) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.chatter")
    assert await host.call("acme.chatter", "big", size=512 * 1024) == "x" * 512 * 1024
    # frame-bytes = 1 MiB ([policy.bounds.plugins."acme.chatter"]): a 2 MiB result
    with pytest.raises(PluginCrashed, match="over the 1048576-byte limit"):
        await host.call("acme.chatter", "big", size=2 * MiB)
    await active_worker(host, "acme.chatter", not_pid=pid)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert await host.call("acme.chatter", "ping") == "pong"
    await assert_unharmed(arena)
