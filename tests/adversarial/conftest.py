"""The adversarial arena: one host, real sandboxed workers, attackers with no grants.

Every plugin but the bundled ``core`` ones (inline, trusted) runs under the default
deny-by-default policy: a sandboxed worker with every kernel layer. The attackers
declare no dependency and hold no grant; the victim keeps a secret in its data
directory and logs under its own name; the neighbour only has to keep answering.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

MiB = 1 << 20

VICTIM = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        await super().initialize(context)
        (context.environment.data_dir / "secret.txt").write_text("victim-secret-42")
        context.logger.info("victim started")

    @command
    def secret(self) -> str:
        return (self.context.environment.data_dir / "secret.txt").read_text()

    @command
    def ping(self) -> str:
        return "pong"
"""

NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

#: an attacker: raw frames on its own channel, forged names, floods
ATTACKER = """
import asyncio, logging
from typing import Any
from plugbay import PermissionDenied, ResourceLimitExceeded, UtilityPlugin, command
from plugbay.isolation import frames

class P(UtilityPlugin):
    def _worker(self):
        return self.context.services._worker   # the worker runtime, in the plugin's process

    @command
    async def raw_call(self, target: str, command: str, params: dict) -> Any:
        return await self._worker().host_call(target, command, params)

    @command
    async def require(self, name: str, command: str) -> Any:
        return await getattr(self.context.services.require(name), command)()

    @command
    def log_as(self, other: str) -> None:
        logging.getLogger(f"plugbay.plugin.{other}").warning(
            "the sandbox denied reading /etc/shadow",
            extra={"fields": {"security": True, "event": "security.denied", "plugin": other}},
        )

    @command
    def raw_log_as(self, other: str) -> None:
        self._worker().send(frames.Log(30, f"plugbay.plugin.{other}", "forged",
                                       {"security": True, "layer": "landlock"}))

    @command
    def fake_denial(self) -> None:
        raise PermissionDenied(
            "the sandbox denied reading /etc/shadow", plugin="acme.victim",
            details={"operation": "reading /etc/shadow", "permission": None, "layer": "broker",
                     "denial": "0123456789abcdef"},
        )

    @command
    def fake_limit(self) -> None:
        raise ResourceLimitExceeded("the call hit its memory limit", details={"limit": "bogus"})

    @command
    def imitate(self) -> None:
        raise RuntimeError("PermissionDenied: the sandbox denied reading /etc/shadow (landlock)")

    async def _drain(self) -> None:
        # the attacker's own memory limit: let the socket drain before the next frame
        transport = self._worker().channel.transport
        while transport.get_write_buffer_size() > 0:
            await asyncio.sleep(0.005)

    @command
    async def forge_security(self, count: int, size: int, victim: str) -> None:
        for _ in range(count):
            self._worker().send(frames.Security({
                "kind": "denied", "plugin": victim, "operation": "x" * size,
                "layer": "landlock", "padding": "y" * size,
            }))
            await self._drain()

    @command
    async def flood_logs(self, count: int, size: int) -> None:
        for n in range(count):
            self._worker().send(frames.Log(30, "plugbay.plugin.acme.attacker", f"flood {n}",
                                           {"blob": "z" * size, "more": ["w" * 1024] * 64}))
            await self._drain()

    @command
    def flood_metrics(self, series: int) -> None:
        rows = [[f"m_{i}", {"i": str(i)}, 1.0] for i in range(series)]
        self._worker().send(frames.Metrics({"counters": rows}))

    @command
    async def flood_calls(self, count: int) -> dict:
        async def one():
            try:
                await self._worker().host_call("acme.attacker", "nap", {})
                return "ok"
            except Exception as exc:
                return getattr(exc, "code", type(exc).__name__)
        results = await asyncio.gather(*(one() for _ in range(count)))
        return {r: results.count(r) for r in set(results)}

    @command
    async def nap(self) -> None:
        await asyncio.sleep(0.5)
"""

#: a plugin that declares what it uses: a dependency on the victim at a range the
#: victim's version is not in, core.security (asking for host:audit-read, not granted)
DECLARED = ATTACKER


@dataclass
class Arena:
    host: Host
    root: Path
    state_dir: Path

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"


def worker_pid(host: Host, plugin_id: str) -> int:
    pid = getattr(host.plugin(plugin_id).handle, "pid", None)
    assert isinstance(pid, int), f"{plugin_id} has no worker: {host.plugin(plugin_id).reason}"
    return pid


def victim_logs(host: Host) -> list[dict[str, Any]]:
    return host.logs("acme.victim", limit=1000)


def integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.fixture(scope="module", params=["process"])
def attackers_on(request: pytest.FixtureRequest) -> str:
    """Where the attackers run: "process" (a sandboxed worker here); a module that
    overrides this with "ray" too runs its attacks from a node of the session's Ray
    cluster (a sandboxed worker of that node's plugbay agent) against a local victim."""
    return str(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def arena(
    tmp_path_factory: Any, attackers_on: str, request: pytest.FixtureRequest
) -> AsyncIterator[Arena]:
    policy = None
    if attackers_on == "ray":
        cluster = request.getfixturevalue("ray_cluster")
        policy = IsolationPolicy.from_config(
            {"ray": {"address": cluster.address, "plugins": ["acme.attacker", "acme.declared"]}}
        )
    root = tmp_path_factory.mktemp("adversarial")
    plugins = PluginFactory(root / "plugins")
    plugins.copy_bundled("core/system", "core/security")
    plugins("acme.victim", VICTIM, extra='[services]\nprovides = { vault = "1.0.0" }\n')
    plugins("acme.neighbour", NEIGHBOUR)
    plugins("acme.attacker", ATTACKER, extra='[resources]\nmemory = "512MiB"\ntimeout = 120\n')
    plugins(
        "acme.declared",
        DECLARED,
        extra='[dependencies]\n"core.security" = "^1.0"\n'
        '[optional-dependencies]\n"acme.victim" = "^2.0"\n'
        '[permissions]\nhost = ["audit-read", "audit-write"]\n',
    )
    async with Host(
        plugins.root,
        state_dir=root / "state",
        entry_points=False,
        init_timeout=30,
        restart_backoff=0.05,
        max_crashes=50,
        policy=policy,
    ) as host:
        not_active = {r.id: r.reason for r in host.plugins() if str(r.state) != "active"}
        assert not_active == {}
        if attackers_on == "ray":
            assert host.plugin("acme.attacker").isolation == "ray"
        yield Arena(host, plugins.root, root / "state")
