"""integration.protocol: plugbay-line/1 over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plugbay import PluginCallError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory


async def port_of(host: Host) -> int:
    return int((await host.call("integration.protocol", "status")).port)


async def exchange(port: int, *lines: bytes) -> list[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for line in lines:
            writer.write(line + b"\n")
            await writer.drain()
            answers.append((await asyncio.wait_for(reader.readline(), 5)).decode().rstrip("\n"))
    finally:
        writer.close()
    return answers


async def test_a_real_client_talks_to_the_doctor(bundled: Host) -> None:
    port = await port_of(bundled)
    assert port > 0
    answers = await exchange(
        port, b"HELLO ada", b"PING", b"SAY Men are all alike.", b"frob x", b"QUIT"
    )
    assert answers == [
        "WELCOME ada plugbay-line/1",
        "PONG",
        "REPLY In what way",
        "ERR unknown-command frob",
        "BYE",
    ]


async def test_client_command_against_its_own_server(bundled: Host) -> None:
    port = await port_of(bundled)
    reply = await bundled.call("integration.protocol", "send", text="I am unhappy", port=port)
    assert reply == "I am sorry to hear you are unhappy"


async def test_client_to_a_closed_port_names_the_peer(bundled: Host) -> None:
    with pytest.raises(PluginCallError) as err:
        await bundled.call("integration.protocol", "send", text="hi", port=1, timeout=2.0)
    assert "cannot reach peer 127.0.0.1:1" in str(err.value)


async def test_broadcast_reaches_connected_clients(bundled: Host) -> None:
    port = await port_of(bundled)
    clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for reader, writer in clients:
        writer.write(b"PING\n")
        await writer.drain()
        assert await reader.readline() == b"PONG\n"
    assert await bundled.call("integration.protocol", "broadcast", text="maintenance at noon") == 2
    for reader, writer in clients:
        assert await asyncio.wait_for(reader.readline(), 5) == b"MSG maintenance at noon\n"
        writer.close()


async def test_garbage_from_a_client_hurts_nobody(bundled: Host) -> None:
    port = await port_of(bundled)
    answers = await exchange(port, b"\xff\xfe\xfd")
    assert answers == ["ERR bad-encoding"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"x" * 1_000_000)
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 5) == b"ERR line-too-long\n"
    writer.close()
    assert (await exchange(port, b"PING")) == ["PONG"]
    assert await bundled.call("utility.formatters", "normalize", text=" ok ") == "ok"


async def test_say_without_a_conversation_service(tmp_path: Path, plugins: PluginFactory) -> None:
    plugins.copy_bundled("core/system", "integration/protocol")
    async with Host(
        plugins.root, state_dir=tmp_path / "s", entry_points=False,
        inline=["integration.protocol"],  # it listens on TCP: the operator trusts it
        config={"integration.protocol": {"port": 0}},
    ) as host:  # fmt: skip
        answers = await exchange(await port_of(host), b"SAY hello")
        assert answers[0].startswith("ERR unavailable service 'conversation' ^1 is not available")


async def test_say_through_any_conversation_provider(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins.copy_bundled("core/system", "integration/protocol")
    plugins(
        "acme.echo",
        "from plugbay import UtilityPlugin, command\n\nclass P(UtilityPlugin):\n"
        "    @command\n    def respond(self, text: str, session: str = 'default') -> str:\n"
        "        return text[::-1]\n",
        extra='[services]\nprovides = { conversation = "1.0.0" }\n',
    )
    async with Host(
        plugins.root, state_dir=tmp_path / "s", entry_points=False,
        inline=["integration.protocol"],  # it listens on TCP: the operator trusts it
        config={"integration.protocol": {"port": 0}},
    ) as host:  # fmt: skip
        assert await exchange(await port_of(host), b"SAY abc") == ["REPLY cba"]


async def test_refuses_to_listen_beyond_loopback(tmp_path: Path, plugins: PluginFactory) -> None:
    plugins.copy_bundled("core/system", "integration/protocol")
    async with Host(
        plugins.root, state_dir=tmp_path / "s", entry_points=False,
        inline=["integration.protocol"],  # it listens on TCP: the operator trusts it
        config={"integration.protocol": {"host": "0.0.0.0", "port": 0}},
    ) as host:  # fmt: skip
        rec = host.plugin("integration.protocol")
        assert str(rec.state) == "failed"
        assert "config host '0.0.0.0' is not a loopback address" in (rec.reason or "")
        assert str(host.plugin("system.logging").state) == "active"
