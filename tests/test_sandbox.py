"""Adversarial tests: plugins written to attack their host, each stopped by the sandbox.

Every plugin here runs under the host's default policy (deny by default: a
sandboxed worker with every kernel layer). Each test makes a real plugin attack
and checks what a user of the host would see:

* the attempt is stopped, denied or its worker killed, with an error to the
  caller that names what happened;
* it is recorded as a security event: in the plugin's history
  (``security.denied`` / ``security.limit`` / ``security.killed``), on the event
  bus, and in the ``plugbay.security`` log;
* the host and a neighbouring sandboxed plugin keep answering, the neighbour's
  worker untouched, the host's state database intact.

The attackers share one host (the arena), one plugin each, so every test stands
alone in meaning; tests that need a host of their own (grants, a hung cleanup
on stop) start one. On the machines this project runs on every layer is
available, so no test here is skipped (the first test checks that).

Bugs these tests found were fixed; each test stays to keep them fixed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from plugbay import (
    PermissionDenied,
    PlugbayError,
    PluginCrashed,
    PluginTimeout,
    ResourceLimitExceeded,
    ResultTypeError,
)
from plugbay.isolation.limits import ORDER, probe_all
from plugbay.runtime.host import Host
from plugbay.state import HistoryEvent, StateStore
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

MiB = 1 << 20
#: a variable only the host has: no plugin may ever see its value
CANARY_VAR, CANARY = "PLUGBAY_TEST_CANARY", f"canary-{uuid.uuid4().hex}"
#: a secret the host holds (PLUGBAY_SECRET_<NAME>); the snoop asks for it, nobody grants it
SECRET_VAR, SECRET = "PLUGBAY_SECRET_VAULT", f"vault-{uuid.uuid4().hex}"

#: what every attacker asks for (the policy caps it; these are well below the caps)
LIMITS = """
[resources]
memory = "64MiB"
open-files = 32
file-size = "1MiB"
storage = "2MiB"
timeout = 5
"""

#: raise OSError from a libc call's errno, as any Python binding would
LIBC = """
import ctypes, os

libc = ctypes.CDLL(None, use_errno=True)

def check(rc):
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc
"""

NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"

    @command
    def keep(self, text: str) -> str:
        path = self.context.environment.data_dir / "note.txt"
        path.write_text(text)
        return path.read_text()
"""

SNOOP = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def read(self, path: str) -> str:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")

    @command
    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @command
    def secret(self, name: str) -> str:
        return self.context.secrets.get(name)
"""

VANDAL = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def create(self, path: str) -> None:
        with open(path, "x") as f:
            f.write("owned")

    @command
    def overwrite(self, path: str) -> None:
        with open(path, "r+b") as f:
            f.write(b"owned")

    @command
    def own(self, name: str) -> str:
        path = self.context.environment.data_dir / name
        path.write_text("mine")
        return path.read_text()
"""

DIALER = (
    LIBC
    + """
import socket, struct
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def connect(self, port: int) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"hello from a plugin")
            return s.recv(100).decode()

    @command
    def raw_connect(self, port: int) -> str:
        # straight to libc: no audit hook sees this, only the kernel can stop it
        fd = check(libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0))
        try:
            address = (
                struct.pack("=H", socket.AF_INET) + struct.pack("!H", port)
                + socket.inet_aton("127.0.0.1") + bytes(8)
            )
            check(libc.connect(fd, address, len(address)))
            return "connected"
        finally:
            libc.close(fd)
"""
)

SHELL = (
    LIBC
    + """
import subprocess
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    def marker(self) -> str:
        return str(self.context.environment.data_dir / "a-shell-ran")

    @command
    def system(self) -> int:
        return os.system(f"touch {self.marker()}")

    @command
    def popen(self) -> str:
        return subprocess.run(
            ["/bin/sh", "-c", f"touch {self.marker()}; id"], capture_output=True, text=True
        ).stdout

    @command
    def raw_exec(self) -> None:
        script = f"touch {self.marker()}".encode()
        argv = (ctypes.c_char_p * 4)(b"/bin/sh", b"-c", script, None)
        check(libc.execv(b"/bin/sh", argv))
"""
)

FORKER = (
    LIBC
    + """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def bomb(self) -> int:
        children = 0
        while True:
            if os.fork() == 0:
                try:
                    while True:
                        os.fork()
                finally:
                    os._exit(0)
            children += 1

    @command
    def raw_bomb(self) -> int:
        children = 0
        while True:
            if check(libc.fork()) == 0:
                try:
                    while True:
                        libc.fork()
                finally:
                    os._exit(0)
            children += 1
"""
)

GLUTTON = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def hog(self) -> int:
        blocks = []
        while True:
            blocks.append(bytearray(8 << 20))
"""

SPINNER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command(blocking=True)
    def spin(self) -> None:
        # in a thread of its own: the worker keeps answering its heartbeat,
        # so only the CPU-seconds limit can stop this
        while True:
            pass
"""

SLEEPER = """
import asyncio, time
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def nap(self) -> None:
        await asyncio.sleep(3600)

    @command
    def stall(self) -> None:
        time.sleep(3600)  # blocks the worker's loop: no heartbeat either

    @command
    def ping(self) -> str:
        return "pong"
"""

LINGERER = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"

    async def cleanup(self) -> None:
        await asyncio.sleep(3600)
"""

HOARDER = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def files(self) -> int:
        fds = []
        while True:
            fds.append(os.open("/dev/null", os.O_RDONLY))
"""

BLOAT = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def huge(self) -> int:
        with open(self.context.environment.data_dir / "huge.bin", "wb") as f:
            for _ in range(64):
                f.write(b"x" * (1 << 20))
        return 64 << 20
"""

FILLER = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def fill(self) -> int:
        # small files, each far below the file-size limit, until something stops it
        n = 0
        while True:
            (self.context.environment.data_dir / f"chunk-{n}").write_bytes(b"x" * 65536)
            n += 1
            await asyncio.sleep(0.002)
"""

ASSASSIN = (
    LIBC
    + """
import signal
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    @command
    def raw_kill(self, pid: int) -> None:
        check(libc.kill(pid, signal.SIGKILL))
"""
)

ESCALATOR = (
    LIBC
    + """
import resource
from plugbay import UtilityPlugin, command

class Rlimit(ctypes.Structure):
    _fields_ = [("soft", ctypes.c_ulong), ("hard", ctypes.c_ulong)]

UNLIMITED = Rlimit(ctypes.c_ulong(-1).value, ctypes.c_ulong(-1).value)

class P(UtilityPlugin):
    @command
    def address_space(self) -> list[int]:
        return list(resource.getrlimit(resource.RLIMIT_AS))

    @command
    def unlimit(self) -> None:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    @command
    def raw_unlimit(self) -> None:
        check(libc.setrlimit(resource.RLIMIT_AS, ctypes.byref(UNLIMITED)))

    @command
    def raw_prlimit(self) -> None:
        check(libc.prlimit(0, resource.RLIMIT_AS, ctypes.byref(UNLIMITED), None))

    @command
    def unlimit_then_allocate(self) -> int:
        # every way to raise it, failures ignored, then take 512 MiB as if it had worked
        libc.setrlimit(resource.RLIMIT_AS, ctypes.byref(UNLIMITED))
        libc.prlimit(0, resource.RLIMIT_AS, ctypes.byref(UNLIMITED), None)
        libc.prlimit(os.getpid(), resource.RLIMIT_AS, ctypes.byref(UNLIMITED), None)
        block = bytearray(512 << 20)
        return len(block)
"""
)

FORGER = """
import gc, os, socket
from plugbay import UtilityPlugin, command
from plugbay.isolation import frames

def channel_fd() -> int:
    # the worker's own end of the channel to the host, found as any code could find it
    for obj in gc.get_objects():
        if isinstance(obj, frames.Channel) and obj.transport is not None:
            return obj.transport.get_extra_info("socket").fileno()
    raise RuntimeError("no channel to the host")

class P(UtilityPlugin):
    @command
    def malformed(self) -> None:
        os.write(channel_fd(), (4).to_bytes(4, "big") + b"\\xc1\\xc1\\xc1\\xc1")

    @command
    def oversized(self) -> None:
        os.write(channel_fd(), (frames.MAX_FRAME + 1).to_bytes(4, "big") + b"x" * 4096)

    @command
    def truncated(self) -> None:
        fd = channel_fd()
        os.write(fd, (1000).to_bytes(4, "big") + b"half a frame")
        socket.socket(fileno=os.dup(fd)).shutdown(socket.SHUT_WR)
"""

LIAR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def count(self) -> int:
        return "seven"  # type: ignore[return-value]

    @command
    def table(self) -> dict[str, int]:
        return {"a": object()}  # type: ignore[dict-item]

    @command
    def ping(self) -> str:
        return "pong"
"""

STOWAWAY = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def pid(self) -> int:
        return os.getpid()

    @command
    def read(self, path: str) -> str:
        with open(path) as f:
            return f.read()
"""

#: plugin id → (code, manifest extra)
ATTACKERS: dict[str, tuple[str, str]] = {
    "acme.snoop": (SNOOP, '[permissions]\nsecrets = ["vault"]\n' + LIMITS),
    "acme.vandal": (VANDAL, LIMITS),
    "acme.dialer": (DIALER, LIMITS),
    "acme.shell": (SHELL, LIMITS),
    "acme.forker": (FORKER, LIMITS),
    "acme.glutton": (GLUTTON, LIMITS),
    "acme.spinner": (SPINNER, LIMITS.replace("timeout = 5", "timeout = 120\ncpu-seconds = 1")),
    "acme.sleeper": (SLEEPER, LIMITS.replace("timeout = 5", "timeout = 0.5")),
    "acme.lingerer": (LINGERER, LIMITS),
    "acme.hoarder": (HOARDER, LIMITS),
    "acme.bloat": (BLOAT, LIMITS),
    "acme.filler": (FILLER, LIMITS.replace("timeout = 5", "timeout = 120")),
    "acme.assassin": (ASSASSIN, LIMITS),
    "acme.escalator": (ESCALATOR, LIMITS),
    "acme.forger": (FORGER, LIMITS),
    "acme.liar": (LIAR, LIMITS),
    "acme.stowaway": (STOWAWAY, 'isolation = "inline"\n' + LIMITS),
}


# --------------------------------------------------------------------------- the arena


@dataclass
class Arena:
    host: Host
    plugins: Path
    state_dir: Path
    neighbour_pid: int

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"

    def data_dir(self, plugin_id: str) -> Path:
        return self.state_dir / "data" / plugin_id


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def arena(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Arena]:
    root = tmp_path_factory.mktemp("sandbox")
    factory = PluginFactory(root / "plugins")
    factory("acme.neighbour", NEIGHBOUR, extra=LIMITS)
    for plugin_id, (code, extra) in ATTACKERS.items():
        factory(plugin_id, code, extra=extra)
    with pytest.MonkeyPatch.context() as env:
        # in the host's environment before the host exists, as an operator's would be
        env.setenv(CANARY_VAR, CANARY)
        env.setenv(SECRET_VAR, SECRET)
        host = Host(
            factory.root,
            state_dir=root / "state",
            entry_points=False,
            init_timeout=30,
            cleanup_timeout=1.0,
            restart_backoff=0.05,
            max_crashes=50,  # every test's attacker is restarted as often as it needs
        )
        async with host:
            not_started = {r.id: r.reason for r in host.plugins() if str(r.state) != "active"}
            assert not_started == {}
            yield Arena(host, factory.root, root / "state", worker_pid(host, "acme.neighbour"))


@dataclass
class Mark:
    """What the host had recorded before an attack."""

    history: int
    events: collections.Counter[str] = field(default_factory=collections.Counter)


def mark(host: Host) -> Mark:
    assert host.state is not None
    latest = host.state.history(limit=1)
    return Mark(latest[0].id if latest else 0, collections.Counter(host.events.counts))


def worker_pid(host: Host, plugin_id: str) -> int:
    pid = getattr(host.plugin(plugin_id).handle, "pid", None)
    assert isinstance(pid, int), f"{plugin_id} has no worker: {host.plugin(plugin_id).reason}"
    return pid


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def ended(pids: list[int]) -> bool:
    """Whether every process of ``pids`` has ended (waiting at most 30 s: a hang guard)."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    _, alive = await asyncio.to_thread(psutil.wait_procs, procs, 30)
    return not alive


async def active_worker(host: Host, plugin_id: str, *, not_pid: int | None = None) -> int:
    """The pid of the plugin's worker once it is active (and, given ``not_pid``, a new one:
    a replaced worker comes back after the restart backoff)."""
    async with asyncio.timeout(60):  # a guard against a hang, not a timed assertion
        while True:
            rec = host.plugin(plugin_id)
            pid = getattr(rec.handle, "pid", None)
            if str(rec.state) == "active" and isinstance(pid, int) and pid != not_pid:
                return pid
            await asyncio.sleep(0.02)


def history_since(host: Host, plugin_id: str, before: Mark) -> list[HistoryEvent]:
    assert host.state is not None
    return [e for e in host.state.history(plugin_id, limit=200) if e.id > before.history]


def assert_reported(
    host: Host,
    caplog: pytest.LogCaptureFixture,
    before: Mark,
    plugin_id: str,
    kind: str,
    text: str,
) -> HistoryEvent:
    """A ``security.<kind>`` event naming ``text``: in the history, on the bus and in the log."""
    recorded = history_since(host, plugin_id, before)
    events = [e for e in recorded if e.action == f"security.{kind}" and text in (e.reason or "")]
    assert events, (
        f"no security.{kind} event about {text!r} for {plugin_id}; recorded: "
        f"{[(e.action, e.reason) for e in recorded]}"
    )
    assert host.events.counts[f"security.{kind}"] > before.events[f"security.{kind}"]
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == "plugbay.security" and r.levelno == logging.WARNING
    ]
    assert any(plugin_id in m and text in m for m in logged), logged
    return events[0]


async def assert_unharmed(arena: Arena) -> None:
    """The host and its neighbouring sandboxed plugin carry on as before."""
    host = arena.host
    assert await host.call("acme.neighbour", "ping") == "pong"
    assert await host.call("acme.neighbour", "keep", text="still here") == "still here"
    assert str(host.plugin("acme.neighbour").state) == "active"
    assert worker_pid(host, "acme.neighbour") == arena.neighbour_pid  # never disturbed
    with contextlib.closing(sqlite3.connect(f"file:{arena.state_db}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert host.state is not None and host.state.history("acme.neighbour", limit=1)


@pytest.fixture
def caplog_security(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="plugbay.security")
    return caplog


@contextlib.contextmanager
def denied(operation: str, *, layer: str | None = None) -> Iterator[list[PermissionDenied]]:
    """Expect a PermissionDenied whose operation contains ``operation``."""
    caught: list[PermissionDenied] = []
    with pytest.raises(PermissionDenied) as info:
        yield caught
    error = info.value
    caught.append(error)
    assert operation in error.details["operation"], error.details
    assert operation in str(error)
    if layer is not None:
        assert error.details["layer"] == layer, error.details


@dataclass
class Listener:
    """A TCP server on 127.0.0.1 that counts who got through."""

    port: int
    connections: list[bytes] = field(default_factory=list)


@contextlib.asynccontextmanager
async def listening() -> AsyncIterator[Listener]:
    listener = Listener(0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        listener.connections.append(data)
        writer.write(b"hello back")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()


# --------------------------------------------------------------------------- the layers


async def test_every_isolation_layer_is_active_here_and_in_every_worker(arena: Arena) -> None:
    statuses = probe_all()
    assert [s.name for s in statuses] == list(ORDER)
    assert {s.name: s.detail for s in statuses if not s.active} == {}
    # 'plugbay doctor' says the same (run beside the host, whose loop must keep beating)
    doctor = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "plugbay.cli",
        "doctor",
        "--json",
        "--strict",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    async with asyncio.timeout(120):  # a guard against a hang, not a timed assertion
        stdout, stderr = await doctor.communicate()
    assert doctor.returncode == 0, stderr.decode()
    layers = json.loads(stdout)["layers"]
    assert {layer["name"]: layer["active"] for layer in layers} == dict.fromkeys(ORDER, True)
    # and what each running worker applied, as 'plugbay info' shows it
    running_now = [r.id for r in arena.host.plugins() if r.handle is not None]
    assert "acme.neighbour" in running_now
    for plugin_id in running_now:
        sandbox = arena.host.info(plugin_id)["sandbox"]
        assert sandbox["sandboxed"] is True
        applied = {layer["name"]: layer["active"] for layer in sandbox["layers"]}
        assert applied == dict.fromkeys(ORDER, True), (plugin_id, sandbox["layers"])


# --------------------------------------------------------------------------- reading


async def test_reading_the_hosts_state_database_is_denied(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    assert arena.state_db.read_bytes().startswith(b"SQLite format 3")  # there to be read
    before = mark(host)
    with denied(f"reading {arena.state_db}", layer="landlock") as caught:
        await host.call("acme.snoop", "read", path=str(arena.state_db))
    error = caught[0]
    assert error.plugin == "acme.snoop"
    assert error.details["permission"] == f"read:{arena.state_db}"
    assert f"plugbay grant acme.snoop read:{arena.state_db}" in str(error)
    assert_reported(host, caplog_security, before, "acme.snoop", "denied", str(arena.state_db))
    await assert_unharmed(arena)


@pytest.mark.parametrize("path", ["/etc/passwd", "/etc/shadow", "/etc/hostname"])
async def test_reading_system_files_is_denied(
    arena: Arena, caplog_security: pytest.LogCaptureFixture, path: str
) -> None:
    host = arena.host
    assert await asyncio.to_thread(Path(path).read_bytes)  # the host can: it is there
    before = mark(host)
    with denied(f"reading {path}", layer="landlock"):
        await host.call("acme.snoop", "read", path=path)
    assert_reported(host, caplog_security, before, "acme.snoop", "denied", path)
    await assert_unharmed(arena)


async def test_reading_another_plugins_code_and_data_is_denied(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    assert await host.call("acme.neighbour", "keep", text="private") == "private"
    for path in (
        arena.data_dir("acme.neighbour") / "note.txt",
        arena.plugins / "acme.neighbour-1.0.0" / "main.py",
    ):
        before = mark(host)
        with denied(f"reading {path}", layer="landlock"):
            await host.call("acme.snoop", "read", path=str(path))
        assert_reported(host, caplog_security, before, "acme.snoop", "denied", str(path))
    # its own code it may read: that is how it was imported
    own = arena.plugins / "acme.snoop-1.0.0" / "main.py"
    assert await host.call("acme.snoop", "read", path=str(own)) == own.read_text()
    await assert_unharmed(arena)


async def test_the_hosts_environment_and_secrets_never_reach_a_plugin(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    assert os.environ[CANARY_VAR] == CANARY  # the host has them ...
    assert host.manager.settings.policy.secrets["vault"] == SECRET
    # ... its plugin's environment holds none of the host's variables
    env = await host.call("acme.snoop", "environment")
    assert set(env) <= {"PATH", "LANG", "TZ"}, env
    assert CANARY not in repr(env) and SECRET not in repr(env)
    # nor does the environment block it was started with
    block = await host.call("acme.snoop", "read", path="/proc/self/environ")
    assert CANARY not in block and SECRET not in block and CANARY_VAR not in block
    # a secret it asked for but was not granted is refused by name
    with pytest.raises(PermissionDenied, match="secret 'vault' was not granted") as info:
        await host.call("acme.snoop", "secret", name="vault")
    assert "plugbay grant acme.snoop secret:vault" in str(info.value)
    assert SECRET not in str(info.value)
    # and the host's own environment, or its zygote's, cannot be read through /proc
    zygote = host.manager.backends["process"].zygote.pid  # type: ignore[attr-defined]
    for pid in (os.getpid(), zygote):
        before = mark(host)
        with denied(f"reading /proc/{pid}/environ", layer="landlock"):
            await host.call("acme.snoop", "read", path=f"/proc/{pid}/environ")
        assert_reported(host, caplog_security, before, "acme.snoop", "denied", f"/proc/{pid}")
    await assert_unharmed(arena)


# --------------------------------------------------------------------------- the network


async def test_a_tcp_connection_to_the_hosts_loopback_is_stopped(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    async with listening() as server:
        before = mark(host)
        with pytest.raises(PermissionDenied) as info:
            await host.call("acme.dialer", "connect", port=server.port)
        assert info.value.plugin == "acme.dialer"
        assert "the sandbox denied" in str(info.value)
        assert_reported(host, caplog_security, before, "acme.dialer", "denied", "the sandbox")
        # through libc, where no audit hook sees it: the kernel refuses the socket
        before = mark(host)
        with pytest.raises(PermissionDenied) as info:
            await host.call("acme.dialer", "raw_connect", port=server.port)
        assert info.value.details["layer"] in {"seccomp", "netns", "landlock"}
        assert_reported(host, caplog_security, before, "acme.dialer", "denied", "the sandbox")
        assert server.connections == []  # nothing ever got through
    await assert_unharmed(arena)


async def test_a_denied_tcp_connection_says_which_permission_would_allow_it(
    arena: Arena,
) -> None:
    # without any network grant the socket itself is refused (seccomp, in an empty netns),
    # before a destination exists: the error names the kind of permission to ask for
    async with listening() as server:
        with pytest.raises(PermissionDenied) as info:
            await arena.host.call("acme.dialer", "connect", port=server.port)
    assert info.value.details["permission"] == "network:ADDRESS:PORT"
    assert "opening a network socket (no network destination is granted)" in str(info.value)
    assert "plugbay grant acme.dialer network:ADDRESS:PORT" in str(info.value)


# --------------------------------------------------------------------------- processes


@pytest.mark.parametrize(
    ("command", "operation"),
    [
        ("system", "running a program (os.system)"),
        ("popen", "running a program (subprocess.Popen)"),
        ("raw_exec", "system call"),  # execv through libc: seccomp refuses it
    ],
    ids=["os.system", "subprocess", "libc-execv"],
)
async def test_a_shell_cannot_be_started(
    arena: Arena, caplog_security: pytest.LogCaptureFixture, command: str, operation: str
) -> None:
    host = arena.host
    before = mark(host)
    with denied(operation, layer="seccomp") as caught:
        await host.call("acme.shell", command)
    if command != "raw_exec":
        assert caught[0].details["permission"] == "subprocess"
        assert "plugbay grant acme.shell subprocess" in str(caught[0])
    event = assert_reported(host, caplog_security, before, "acme.shell", "denied", operation)
    if command == "raw_exec":  # the host heard it from the kernel: it names the call
        assert "the system call execve (running a program)" in (event.reason or "")
    # the shell would have marked the plugin's own (writable) data directory
    assert not (arena.data_dir("acme.shell") / "a-shell-ran").exists()
    assert psutil.Process(worker_pid(host, "acme.shell")).children() == []
    await assert_unharmed(arena)


@pytest.mark.parametrize(
    ("command", "operation"),
    [("bomb", "starting a process (os.fork)"), ("raw_bomb", "system call")],
    ids=["os.fork", "libc-fork"],
)
async def test_a_fork_bomb_cannot_fork(
    arena: Arena, caplog_security: pytest.LogCaptureFixture, command: str, operation: str
) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.forker")
    before = mark(host)
    with denied(operation, layer="seccomp"):
        await host.call("acme.forker", command)
    assert_reported(host, caplog_security, before, "acme.forker", "denied", operation)
    assert psutil.Process(pid).children(recursive=True) == []
    await assert_unharmed(arena)


async def test_the_host_and_its_zygote_cannot_be_signalled(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    zygote = host.manager.backends["process"].zygote.pid  # type: ignore[attr-defined]
    assert isinstance(zygote, int)
    for target in (os.getpid(), zygote, arena.neighbour_pid):
        before = mark(host)
        with denied(f"sending signal 9 to process {target}", layer="seccomp"):
            await host.call("acme.assassin", "kill", pid=target)
        assert_reported(host, caplog_security, before, "acme.assassin", "denied", str(target))
        # through libc, past the audit hook: the kernel refuses it (EPERM)
        before = mark(host)
        with denied("a system call (Operation not permitted)"):
            await host.call("acme.assassin", "raw_kill", pid=target)
        assert_reported(
            host, caplog_security, before, "acme.assassin", "denied", f"kill(pid {target})"
        )
        assert running(target)
    assert host.manager.backends["process"].zygote.alive()  # type: ignore[attr-defined]
    await assert_unharmed(arena)


# --------------------------------------------------------------------------- limits


async def test_unbounded_memory_fails_the_call_and_replaces_the_worker(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.glutton")
    before = mark(host)
    with pytest.raises(ResourceLimitExceeded, match="memory limit") as info:
        await host.call("acme.glutton", "hog")
    assert info.value.details["limit"] == "memory"
    assert info.value.plugin == "acme.glutton"
    assert_reported(host, caplog_security, before, "acme.glutton", "limit", "memory")
    await active_worker(host, "acme.glutton", not_pid=pid)
    assert not running(pid)
    await assert_unharmed(arena)


async def test_a_cpu_spin_is_killed_at_its_cpu_seconds(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.spinner")
    before = mark(host)
    with pytest.raises(ResourceLimitExceeded, match="CPU time") as info:
        await host.call("acme.spinner", "spin")
    assert info.value.details["limit"] == "cpu_seconds"
    assert "cpu-seconds" in str(info.value)
    assert_reported(host, caplog_security, before, "acme.spinner", "limit", "cpu_seconds")
    await active_worker(host, "acme.spinner", not_pid=pid)
    assert not running(pid)
    await assert_unharmed(arena)


async def test_sleeping_forever_in_a_call_times_out(arena: Arena) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.sleeper")
    # awaiting forever: the call is cancelled at its timeout, the worker carries on
    with pytest.raises(PluginTimeout, match=r"command 'nap' did not finish within 0\.5 s"):
        await host.call("acme.sleeper", "nap")
    assert await host.call("acme.sleeper", "ping") == "pong"
    assert worker_pid(host, "acme.sleeper") == pid
    # sleeping with the worker's loop blocked: the call times out, and the silent
    # worker is killed by its heartbeat and replaced
    before = mark(host)
    with pytest.raises(PluginTimeout, match=r"command 'stall' did not finish within 0\.5 s"):
        await host.call("acme.sleeper", "stall")
    await active_worker(host, "acme.sleeper", not_pid=pid)
    assert not running(pid)
    crashes = [e for e in history_since(host, "acme.sleeper", before) if e.action == "crash"]
    assert crashes and "while 'stall' ran past its time limit" in (crashes[0].reason or "")
    assert await host.call("acme.sleeper", "ping") == "pong"
    await assert_unharmed(arena)


async def test_sleeping_forever_in_cleanup_does_not_hold_up_an_unload(arena: Arena) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.lingerer")
    before = mark(host)
    async with asyncio.timeout(30):  # a guard against a hang, not a timed assertion
        assert await host.manager.unload_plugin("acme.lingerer") == ["acme.lingerer"]
    assert str(host.plugin("acme.lingerer").state) == "stopped"
    unloads = [e for e in history_since(host, "acme.lingerer", before) if e.action == "unload"]
    assert [(e.result, e.reason) for e in unloads] == [
        ("failed", "cleanup did not finish within 1 s; abandoned")
    ]
    assert await ended([pid])  # killed after its cleanup ran out of time
    await assert_unharmed(arena)


async def stop_a_host_whose_plugin_lingers(tmp_path: Path) -> tuple[list[int], list[HistoryEvent]]:
    """Start a host with the lingerer and a neighbour, stop it: their pids, and its history."""
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.lingerer", LINGERER, extra=LIMITS)
    factory("acme.neighbour", NEIGHBOUR, extra=LIMITS)
    host = Host(
        factory.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=30,
        cleanup_timeout=1.0,
    )
    await host.start()
    try:
        workers = [worker_pid(host, p) for p in ("acme.lingerer", "acme.neighbour")]
        assert await host.call("acme.lingerer", "ping") == "pong"
    finally:
        async with asyncio.timeout(60):  # a guard against a hang, not a timed assertion
            await host.stop()
    with contextlib.closing(StateStore.open(tmp_path / "state")) as state:
        return workers, state.history()


async def test_sleeping_forever_in_cleanup_does_not_hold_up_the_hosts_stop(
    tmp_path: Path,
) -> None:
    workers, history = await stop_a_host_whose_plugin_lingers(tmp_path)
    assert await ended(workers)
    stops = {e.plugin_id: (e.result, e.reason) for e in history if e.action == "shutdown"}
    assert stops == {
        "acme.lingerer": ("failed", "cleanup did not finish within 1 s; abandoned"),
        "acme.neighbour": ("ok", None),
    }


async def test_a_hung_cleanup_is_a_security_event(tmp_path: Path) -> None:
    _, history = await stop_a_host_whose_plugin_lingers(tmp_path)
    recorded = [e.action for e in history if e.plugin_id == "acme.lingerer"]
    assert any(a.startswith("security.") for a in recorded), recorded


async def test_opening_files_until_the_limit_fails_the_call(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.hoarder")
    before = mark(host)
    with pytest.raises(ResourceLimitExceeded, match="open-files limit") as info:
        await host.call("acme.hoarder", "files")
    assert info.value.details["limit"] == "open_files"
    assert "Too many open files" in str(info.value)
    assert_reported(host, caplog_security, before, "acme.hoarder", "limit", "open_files")
    await active_worker(host, "acme.hoarder", not_pid=pid)
    await assert_unharmed(arena)


async def test_a_huge_file_stops_at_the_file_size_limit(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.bloat")
    before = mark(host)
    with pytest.raises(ResourceLimitExceeded, match="file-size limit") as info:
        await host.call("acme.bloat", "huge")
    assert info.value.details["limit"] == "file_size"
    assert "File too large" in str(info.value)
    assert_reported(host, caplog_security, before, "acme.bloat", "limit", "file_size")
    assert (arena.data_dir("acme.bloat") / "huge.bin").stat().st_size <= 1 * MiB
    await active_worker(host, "acme.bloat", not_pid=pid)
    await assert_unharmed(arena)


async def test_many_small_files_stop_at_the_storage_quota(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.filler")
    before = mark(host)
    # the kernel refuses the write past the quota (isolation.quota): the plugin gets
    # ENOSPC, its caller "no space"; a full disk is no reason to replace the worker
    with pytest.raises(ResourceLimitExceeded, match="no space left in its data directory") as info:
        await host.call("acme.filler", "fill")
    assert info.value.details["limit"] == "storage"
    assert "storage quota of 2 MiB" in str(info.value)
    assert_reported(host, caplog_security, before, "acme.filler", "limit", "storage")
    st = os.statvfs(arena.data_dir("acme.filler"))
    assert (st.f_blocks - st.f_bfree) * st.f_frsize <= 2 * MiB
    assert worker_pid(host, "acme.filler") == pid
    await assert_unharmed(arena)


async def test_setrlimit_through_ctypes_cannot_raise_the_limits_back(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.escalator")
    limit = await host.call("acme.escalator", "address_space")
    assert limit[0] == limit[1] != -1  # soft and hard: the plugin cannot raise either
    before = mark(host)
    with denied("changing its resource limits", layer="seccomp"):
        await host.call("acme.escalator", "unlimit")
    assert_reported(host, caplog_security, before, "acme.escalator", "denied", "resource limits")
    for command in ("raw_unlimit", "raw_prlimit"):
        before = mark(host)
        with denied("a system call (Operation not permitted)"):
            await host.call("acme.escalator", command)
        assert_reported(host, caplog_security, before, "acme.escalator", "denied", "system call")
    assert await host.call("acme.escalator", "address_space") == limit
    # every trick at once, then allocate as if one had worked: the limit holds
    before = mark(host)
    with pytest.raises(ResourceLimitExceeded, match="memory limit") as info:
        await host.call("acme.escalator", "unlimit_then_allocate")
    assert info.value.details["limit"] == "memory"
    assert_reported(host, caplog_security, before, "acme.escalator", "limit", "memory")
    await active_worker(host, "acme.escalator", not_pid=pid)
    await assert_unharmed(arena)


# --------------------------------------------------------------------------- writing


async def test_writing_outside_the_data_directory_is_denied(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    code = arena.plugins / "acme.vandal-1.0.0" / "main.py"
    original = code.read_bytes()
    targets = [
        arena.state_dir / "planted.txt",  # beside the host's database
        arena.plugins / "acme.neighbour-1.0.0" / "planted.py",  # into another plugin
        arena.data_dir("acme.neighbour") / "planted.txt",  # into another plugin's data
        Path("/tmp") / f"plugbay-planted-{uuid.uuid4().hex}",
    ]
    for target in targets:
        before = mark(host)
        with denied(f"writing {target}", layer="landlock") as caught:
            await host.call("acme.vandal", "create", path=str(target))
        assert caught[0].details["permission"] == f"write:{target}"
        assert_reported(host, caplog_security, before, "acme.vandal", "denied", str(target))
        assert not target.exists()
    # files that exist are not overwritten: its own code, the host's database
    for target in (code, arena.state_db):
        before = mark(host)
        with pytest.raises(PermissionDenied, match=str(target)) as info:
            await host.call("acme.vandal", "overwrite", path=str(target))
        assert info.value.details["layer"] == "landlock"
        assert_reported(host, caplog_security, before, "acme.vandal", "denied", str(target))
    assert code.read_bytes() == original
    # its own data directory is its to write
    assert await host.call("acme.vandal", "own", name="mine.txt") == "mine"
    await assert_unharmed(arena)


async def test_overwriting_a_file_outside_the_data_directory_is_named_a_write(
    arena: Arena,
) -> None:
    with pytest.raises(PermissionDenied) as info:
        await arena.host.call("acme.vandal", "overwrite", path=str(arena.state_db))
    assert info.value.details["operation"] == f"writing {arena.state_db}"
    assert info.value.details["permission"] == f"write:{arena.state_db}"


# --------------------------------------------------------------------------- the wire


@pytest.mark.parametrize(
    ("command", "what"),
    [
        ("malformed", "malformed frame"),
        ("oversized", f"a frame of {16 * MiB + 1} bytes is over the {16 * MiB}-byte limit"),
        ("truncated", "the stream ended inside a frame"),
    ],
    ids=["malformed", "oversized", "truncated"],
)
async def test_a_forged_frame_stops_the_worker_not_the_host(
    arena: Arena, command: str, what: str
) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.forger")
    before = mark(host)
    with pytest.raises(PluginCrashed, match="its worker broke the protocol") as info:
        await host.call("acme.forger", command)
    assert what in str(info.value)
    assert info.value.plugin == "acme.forger"
    crashes = [e for e in history_since(host, "acme.forger", before) if e.action == "crash"]
    assert crashes and what in (crashes[0].reason or "")
    await active_worker(host, "acme.forger", not_pid=pid)
    assert not running(pid)
    await assert_unharmed(arena)


@pytest.mark.parametrize(
    ("plugin_id", "command", "error"),
    [
        ("acme.forger", "malformed", PluginCrashed),
        ("acme.sleeper", "stall", PluginTimeout),
        ("acme.sleeper", "nap", PluginTimeout),
    ],
    ids=["protocol-breach", "heartbeat-kill", "call-timeout"],
)
async def test_every_forced_stop_is_a_security_event(
    arena: Arena,
    caplog_security: pytest.LogCaptureFixture,
    plugin_id: str,
    command: str,
    error: type[PlugbayError],
) -> None:
    host = arena.host
    await active_worker(host, plugin_id)
    before = mark(host)
    with pytest.raises(error):
        await host.call(plugin_id, command)
    async with asyncio.timeout(30):
        while not any(e.action == "crash" for e in history_since(host, plugin_id, before)):
            if command == "nap":
                break  # the worker lives on: nothing more will come
            await asyncio.sleep(0.02)
    recorded = [e.action for e in history_since(host, plugin_id, before)]
    assert any(a.startswith("security.") for a in recorded), recorded


async def test_a_stall_of_the_host_does_not_kill_healthy_workers(tmp_path: Path) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.neighbour", NEIGHBOUR, extra=LIMITS)

    async def stalled_host() -> tuple[str, bool, list[tuple[str, str | None]]]:
        async with Host(
            factory.root, state_dir=tmp_path / "state", entry_points=False, init_timeout=30
        ) as host:
            pid = worker_pid(host, "acme.neighbour")
            time.sleep(1.5)  # noqa: ASYNC251 - the host's loop is blocked, not the worker's
            await asyncio.sleep(0.5)  # the heartbeat's next turns
            assert host.state is not None
            recorded = [(e.action, e.reason) for e in host.state.history("acme.neighbour")]
            same = getattr(host.plugin("acme.neighbour").handle, "pid", None) == pid
            return str(host.plugin("acme.neighbour").state), same, recorded

    # on a loop of its own, so that only this host stalls
    state, same_worker, recorded = await asyncio.to_thread(asyncio.run, stalled_host())
    assert state == "active", recorded
    assert same_worker, recorded


# --------------------------------------------------------------------------- results


async def test_a_result_of_the_wrong_type_is_refused(arena: Arena) -> None:
    host = arena.host
    pid = await active_worker(host, "acme.liar")
    with pytest.raises(
        ResultTypeError, match="command 'count' returned str but is declared to return int"
    ) as info:
        await host.call("acme.liar", "count")
    assert info.value.plugin == "acme.liar"
    with pytest.raises(
        ResultTypeError,
        match=r"command 'table' returned dict but is declared to return dict\[str, int\]",
    ) as caught:
        await host.call("acme.liar", "table")
    assert "Expected `int`, got `object`" in str(caught.value)
    # a lie is the plugin's own error: its worker carries on
    assert await host.call("acme.liar", "ping") == "pong"
    assert worker_pid(host, "acme.liar") == pid
    await assert_unharmed(arena)


# --------------------------------------------------------------------------- policy


async def test_a_manifest_asking_for_inline_still_runs_sandboxed(
    arena: Arena, caplog_security: pytest.LogCaptureFixture
) -> None:
    host = arena.host
    assert host.plugin("acme.stowaway").manifest.isolation == "inline"  # type: ignore[union-attr]
    info = host.info("acme.stowaway")
    assert info["sandbox"]["sandboxed"] is True
    assert (
        "its manifest asks for inline, which only the operator can allow"
        in (info["sandbox"]["reason"])
    )
    assert host.plugin("acme.stowaway").isolation == "process"
    assert await host.call("acme.stowaway", "pid") not in (os.getpid(), None)
    before = mark(host)
    with denied("reading /etc/passwd", layer="landlock"):
        await host.call("acme.stowaway", "read", path="/etc/passwd")
    assert_reported(host, caplog_security, before, "acme.stowaway", "denied", "/etc/passwd")
    await assert_unharmed(arena)


async def test_a_granted_destination_is_reachable_and_nothing_else(
    tmp_path: Path, caplog_security: pytest.LogCaptureFixture
) -> None:
    async with listening() as granted, listening() as other:
        factory = PluginFactory(tmp_path / "plugins")
        factory(
            "acme.courier",
            DIALER
            + """
    @command
    def system(self) -> int:
        return os.system("true")
""",
            extra=(
                "[permissions]\n"
                f'network = ["127.0.0.1:{granted.port}", "127.0.0.1:{other.port}"]\n'
                "subprocess = true\n" + LIMITS
            ),
        )
        factory("acme.neighbour", NEIGHBOUR, extra=LIMITS)
        state_dir = tmp_path / "state"
        with contextlib.closing(StateStore.open(state_dir)) as state:
            state.grant("acme.courier", f"network:127.0.0.1:{granted.port}")  # plugbay grant
        async with Host(
            factory.root, state_dir=state_dir, entry_points=False, init_timeout=30
        ) as host:
            info = host.info("acme.courier")
            assert info["permissions"]["effective"] == [f"network:127.0.0.1:{granted.port}"]
            assert await host.call("acme.courier", "connect", port=granted.port) == "hello back"
            assert granted.connections == [b"hello from a plugin"]
            # asked for, not granted: denied by name
            before = mark(host)
            with pytest.raises(PermissionDenied) as caught:
                await host.call("acme.courier", "connect", port=other.port)
            assert caught.value.details["permission"] == f"network:127.0.0.1:{other.port}"
            assert f"plugbay grant acme.courier network:127.0.0.1:{other.port}" in str(caught.value)
            assert_reported(host, caplog_security, before, "acme.courier", "denied", "127.0.0.1")
            # and through libc, past the audit hook, the kernel (Landlock) refuses that port
            before = mark(host)
            with denied("an access outside its grants", layer="landlock"):  # EACCES
                await host.call("acme.courier", "raw_connect", port=other.port)
            assert_reported(
                host, caplog_security, before, "acme.courier", "denied", "outside its grants"
            )
            assert other.connections == []
            # a grant of one thing grants nothing else: it asked for subprocess, in vain
            before = mark(host)
            with denied("running a program (os.system)", layer="seccomp"):
                await host.call("acme.courier", "system")
            assert_reported(host, caplog_security, before, "acme.courier", "denied", "os.system")
            assert await host.call("acme.neighbour", "ping") == "pong"
