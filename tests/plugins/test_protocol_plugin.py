"""integration.protocol: plugbay-line/1 over real TCP on 127.0.0.1, on a real host over
copies of the bundled plugins, with a tiny echo plugin providing ``conversation``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plugbay import Message, PluginCallError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

ECHO = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def respond(self, text: str, session: str = "default") -> str:
        if text == "explode":
            raise RuntimeError("boom")
        return f"echo({session}): {text}"
"""
PROVIDES_CONVERSATION = '[services]\nprovides = { conversation = "1.0.0" }\n'


@pytest.fixture
def tree(plugins: PluginFactory) -> PluginFactory:
    plugins.copy_bundled("core/system", "integration/protocol")
    plugins("acme.echo", ECHO, extra=PROVIDES_CONVERSATION)
    return plugins


def start(
    tree: PluginFactory, tmp_path: Path, load: list[str] | None = None, **config: Any
) -> Host:
    return Host(
        tree.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        inline=["integration.protocol"],  # it listens on TCP: the operator trusts it
        config={"integration.protocol": {"port": 0, **config}},
        load=load,
    )


@pytest.fixture
async def host(tree: PluginFactory, tmp_path: Path) -> AsyncIterator[Host]:
    async with start(tree, tmp_path) as h:
        yield h


async def port_of(host: Host) -> int:
    return int((await host.call("integration.protocol", "status")).port)


class Client:
    """A real TCP client speaking lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        host, port = writer.get_extra_info("sockname")[:2]
        self.address = f"{host}:{port}"

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), 5)
        assert raw.endswith(b"\n"), f"connection ended: {raw!r}"
        return raw[:-1].decode()

    async def ask(self, line: str, end: bytes = b"\n") -> str:
        await self.send(line.encode() + end)
        return await self.line()

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) == b""

    def close(self) -> None:
        self.writer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_conversation_over_tcp(host: Host) -> None:
    port = await port_of(host)
    assert port > 0
    c = await Client.connect(port)
    assert await c.ask("HELLO ada") == "WELCOME ada plugbay-line/1"
    assert await c.ask("PING", b"\r\n") == "PONG"  # CR LF is a line end too
    assert await c.ask("ping") == "PONG"  # verbs are case-insensitive
    assert await c.ask("SAY I am unhappy", b"\r\n") == f"REPLY echo({c.address}): I am unhappy"
    assert await c.ask("frob the widget") == "ERR unknown-command frob"
    assert await c.ask("SAY") == "ERR bad-argument SAY needs text"
    assert await c.ask("SAY explode") == "ERR failed plugin_raised"
    assert await c.ask("") == "ERR unknown-command (empty)"
    status = await host.call("integration.protocol", "status")
    assert (status.listening, status.host, status.clients) == (True, "127.0.0.1", 1)
    assert await c.ask("QUIT") == "BYE"
    assert await c.closed()
    status = await host.call("integration.protocol", "status")
    assert (status.clients, status.lines_in, status.lines_out) == (0, 9, 9)


async def test_line_length_limit(host: Host) -> None:
    port = await port_of(host)
    c = await Client.connect(port)
    longest = "SAY " + "é" * 2044  # 4 + 4088 = 4092 octets
    longest += "x" * (4096 - len(longest.encode()))
    reply = await c.ask(longest, b"\r\n")
    assert reply.startswith(f"REPLY echo({c.address}): éé")
    assert len(reply.encode()) <= 4096  # answers fit in a line too
    await c.send(longest.encode() + b"y\n")
    assert await c.line() == "ERR line-too-long"
    assert await c.closed()


async def test_client_command_against_its_own_server(host: Host) -> None:
    port = await port_of(host)
    reply = await host.call("integration.protocol", "send", text="I am unhappy", port=port)
    assert reply.startswith("echo(127.0.0.1:") and reply.endswith("): I am unhappy")
    with pytest.raises(PluginCallError, match="text must be one non-empty line"):
        await host.call("integration.protocol", "send", text="two\nlines", port=port)


async def test_client_errors_name_the_peer(host: Host) -> None:
    closed = free_port()
    with pytest.raises(PluginCallError) as refused:
        await host.call("integration.protocol", "send", text="hi", port=closed, timeout=2.0)
    assert f"raised ConnectionError: cannot reach peer 127.0.0.1:{closed}" in str(refused.value)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    mute = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(PluginCallError) as timed_out:
            await host.call("integration.protocol", "send", text="hi", port=mute, timeout=0.2)
    finally:
        server.close()
    assert f"raised PeerTimeout: peer 127.0.0.1:{mute} did not answer within 0.2 s" in str(
        timed_out.value
    )


async def test_broadcast_and_targeted_messages(host: Host) -> None:
    port = await port_of(host)
    a, b = await Client.connect(port), await Client.connect(port)
    for c in (a, b):
        assert await c.ask("PING") == "PONG"  # both are registered clients now
    assert await host.call("integration.protocol", "broadcast", text="noon\r\nmaintenance") == 2
    assert [await a.line(), await b.line()] == ["MSG noon maintenance"] * 2  # one line each

    plugin: Any = host.manager.get_plugin("integration.protocol")
    await plugin.send_message(Message("just you", endpoint=b.address))
    assert await b.line() == "MSG just you"
    assert await a.ask("PING") == "PONG"  # a got nothing before its answer
    with pytest.raises(LookupError, match=r"no client is connected from 127\.0\.0\.1:1;"):
        await plugin.send_message(Message("nobody", endpoint="127.0.0.1:1"))
    a.close()
    b.close()


async def test_garbage_from_a_client_hurts_nobody(host: Host) -> None:
    port = await port_of(host)
    c = await Client.connect(port)
    await c.send(b"\xff\xfe\xfd\n")
    assert await c.line() == "ERR bad-encoding"
    assert await c.ask("PING") == "PONG"  # still connected
    flood = await Client.connect(port)
    await flood.send(b"x" * 1_000_000)
    assert await flood.line() == "ERR line-too-long"
    assert await flood.closed()
    assert await c.ask("SAY still there?") == f"REPLY echo({c.address}): still there?"
    assert await host.call("system.logging", "stats") is not None
    assert (await host.call("integration.protocol", "status")).clients == 1
    c.close()


async def test_conversation_is_looked_up_at_say(tree: PluginFactory, tmp_path: Path) -> None:
    async with start(
        tree, tmp_path, load=["system.logging", "integration.protocol"]
    ) as host:  # acme.echo known, not loaded
        c = await Client.connect(await port_of(host))
        assert (await c.ask("SAY hello")).startswith(
            "ERR unavailable service 'conversation' ^1 is not available"
        )
        await host.load("acme.echo")
        assert await c.ask("SAY hello") == f"REPLY echo({c.address}): hello"
        await host.unload("acme.echo")
        assert (await c.ask("SAY hello")).startswith("ERR unavailable service 'conversation'")
        await host.load("acme.echo")
        assert await c.ask("SAY again") == f"REPLY echo({c.address}): again"
        c.close()


async def test_client_limits(tree: PluginFactory, tmp_path: Path) -> None:
    async with start(tree, tmp_path, **{"max-clients": 1, "idle-timeout": 0.3}) as host:
        port = await port_of(host)
        first = await Client.connect(port)
        assert await first.ask("PING") == "PONG"
        second = await Client.connect(port)
        assert await second.line() == "ERR too-many-clients"
        assert await second.closed()
        assert await first.line() == "ERR idle-timeout"  # after 0.3 s of silence
        assert await first.closed()
        third = await Client.connect(port)  # room again
        assert await third.ask("PING") == "PONG"
        third.close()


async def test_connect_disconnect_and_shutdown(host: Host) -> None:
    plugin: Any = host.manager.get_plugin("integration.protocol")
    port = await port_of(host)
    c = await Client.connect(port)
    assert await c.ask("PING") == "PONG"
    await plugin.disconnect()
    assert not plugin.is_connected() and plugin.endpoints == []
    assert await c.closed()
    with pytest.raises(ConnectionRefusedError):
        await Client.connect(port)
    assert (await host.call("integration.protocol", "status")).listening is False
    await plugin.connect()
    assert plugin.is_connected()
    c = await Client.connect(plugin.endpoints[0].port)
    assert await c.ask("PING") == "PONG"
    await host.stop()  # cleanup closes the clients too
    assert await c.closed()


@pytest.mark.parametrize("address", ["0.0.0.0", "localhost", "192.168.1.1"])
async def test_listens_on_loopback_only(tree: PluginFactory, tmp_path: Path, address: str) -> None:
    async with start(tree, tmp_path, host=address) as host:
        rec = host.plugin("integration.protocol")
        assert str(rec.state) == "failed"
        assert f"config host '{address}' is not a loopback address" in (rec.reason or "")
        assert str(host.plugin("acme.echo").state) == "active"


async def test_a_port_in_use_fails_the_plugin_clearly(tree: PluginFactory, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with start(tree, tmp_path, port=port) as host:
            rec = host.plugin("integration.protocol")
            assert str(rec.state) == "failed"
            assert f"cannot listen on 127.0.0.1:{port}" in (rec.reason or "")
            assert "set the config key 'port', or 0 for any free port" in (rec.reason or "")


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed-port", "port-0"])
async def test_hot_reload_keeps_the_port(tree: PluginFactory, tmp_path: Path, fixed: bool) -> None:
    # The new version starts beside the old one: it takes the old one's listener over
    # instead of failing to bind, so the port stays and new connections reach it at once.
    async with start(tree, tmp_path, port=free_port() if fixed else 0) as host:
        port = await port_of(host)
        before = await Client.connect(port)
        assert await before.ask("PING") == "PONG"
        manifest = tree.root / "integration" / "protocol" / "plugin.toml"
        manifest.write_text(manifest.read_text().replace('version = "1.0.0"', 'version = "1.0.1"'))
        await host.reload("integration.protocol")
        assert host.plugin("integration.protocol").version == "1.0.1"
        assert await port_of(host) == port
        assert await before.closed()  # the retired version's clients are let go
        after = await Client.connect(port)
        assert await after.ask("SAY hi") == f"REPLY echo({after.address}): hi"
        status = await host.call("integration.protocol", "status")
        assert (status.listening, status.clients) == (True, 1)
        after.close()
    with socket.socket() as probe:  # and nobody listens there once the host stops
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        probe.bind(("127.0.0.1", port))
        probe.listen()
