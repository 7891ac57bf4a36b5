"""integration.irc at its edges, on a real ngIRCd of 127.0.0.1: a line whose bytes are
not UTF-8, and a server given by name to a sandboxed instance (whose grants are IP
addresses)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from plugbay import Environment, PluginConfig, PluginContext
from plugbay.runtime.host import Host
from tests._ircd import Client, IrcServer
from tests.conftest import PluginFactory
from tests.plugins.conftest import load_engine
from tests.plugins.test_irc_plugin import PLUGIN, start


@pytest.fixture
def tree(plugins: PluginFactory) -> PluginFactory:
    plugins.copy_bundled(
        "core/system", "utility/formatters", "extension/processor", "integration/irc"
    )
    return plugins


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    """Poll ``await check()`` until true."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def said(host: Host, words: str) -> list[str]:
    return [r["message"] for r in host.logs(PLUGIN) if words in r["message"]]


async def test_a_line_that_is_not_utf8_is_not_answered(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    """operators.md: a server line that is not UTF-8 is skipped. Read with its bytes
    replaced, 'I am \\xe9nervated' (Latin-1) would be answered as words alice never
    wrote; she is answered only for what she wrote in UTF-8, and the log says why once."""
    async with start(tree, tmp_path, server.port) as host:
        await alice.until(lambda: "plugbay" in alice.joined)
        for _ in range(2):
            alice.send_raw(b"PRIVMSG #plugbay :plugbay: I am \xe9nervated\r\n")
        alice.say("plugbay: I am unhappy")
        answer = "alice: I am sorry to hear you are unhappy"
        await alice.until(lambda: answer in alice.texts("plugbay"))
        assert alice.texts("plugbay") == [answer]  # nothing said to the mangled lines

        async def skipped() -> bool:
            return bool(said(host, "not UTF-8"))

        await until(skipped)
        (record,) = said(host, "not UTF-8")  # once for the two lines
        assert "PRIVMSG from alice" in record and "it is not answered" in record, record
        status = await host.call(PLUGIN, "status")
        assert status.connected  # a line it cannot read is no reason to reconnect
        assert status.reconnects == 0


async def test_a_sandboxed_instance_given_a_host_name_says_to_write_an_address(
    tree: PluginFactory, tmp_path: Path, server: IrcServer
) -> None:
    """Sandboxed, network grants are IP addresses, and a name's failed lookup there
    said only 'cannot reach'. The config change that names the server by name says at
    once what to write instead; an address then gets the grant's own advice."""
    async with Host(tree.root, state_dir=tmp_path / "state", entry_points=False) as host:
        await host.set_config(PLUGIN, {"server": "localhost", "port": server.port})
        problem = str((await host.call(PLUGIN, "status"))["problem"])  # at once, no retry
        assert "the server 'localhost' is a host name" in problem, problem
        assert "'plugbay config integration.irc server=ADDRESS'" in problem, problem
        assert "'getent hosts localhost'" in problem, problem
        assert f"'plugbay grant integration.irc network:ADDRESS:{server.port}'" in problem
        assert said(host, "is a host name") == [problem]  # in its log too
        await host.set_config(PLUGIN, {"server": "127.0.0.1"})

        async def refused() -> bool:
            return "the sandbox refused" in str((await host.call(PLUGIN, "status"))["problem"])

        await until(refused)
        assert "is a host name" not in str((await host.call(PLUGIN, "status"))["problem"])


async def test_a_trusted_instance_in_a_worker_reaches_a_server_given_by_name(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    """A trusted plugin in a worker of its own is not sandboxed: it looks the name up
    as inline does, so it is not told to write an address; it joins."""
    manifest = tree.root / "integration" / "irc" / "plugin.toml"
    text = manifest.read_text()
    manifest.write_text(
        text.replace("\n[dependencies]", 'isolation = "process"\n\n[dependencies]', 1)
    )
    async with start(tree, tmp_path, server.port, server="localhost") as host:
        await alice.until(lambda: "plugbay" in alice.joined)
        assert (await host.call(PLUGIN, "status"))["problem"] == ""  # (from a worker: a dict)
        assert said(host, "is a host name") == []  # never told, not only cleared on joining
        assert host.info(PLUGIN)["isolation"] == "process"  # in a worker, not the host's


@pytest.mark.parametrize(
    ("isolation", "sandboxed", "advised"),
    [
        ("process", True, True),  # sandboxed in a worker, here or on a Ray node
        ("process", False, False),  # trusted in a worker of its own, here or on a node
        ("inline", False, False),
    ],
)
async def test_the_host_name_advice_follows_the_sandbox_not_the_backend(
    tmp_path: Path, isolation: str, sandboxed: bool, advised: bool
) -> None:
    """On Ray a plugin runs in the same worker runtime, on a node: what decides the
    advice is whether a sandbox confines it, which its environment says (no cluster
    needed to check the decision)."""
    module = load_engine("integration/irc", "irc_plugin")
    plugin = module.IrcPlugin()
    plugin.context = PluginContext(
        environment=Environment("0.1.0", PLUGIN, "1.0.0", tmp_path, isolation=isolation,
                                sandboxed=sandboxed),
        services=None,  # type: ignore[arg-type]
        config=PluginConfig({}),
        logger=logging.getLogger("test.irc"),
        metrics=None,  # type: ignore[arg-type]
    )  # fmt: skip
    plugin.id, plugin.server, plugin.port = PLUGIN, "irc.example", 6667
    plugin._named_in_a_sandbox()
    assert ("the server 'irc.example' is a host name" in plugin._problem) is advised
