"""integration.protocol's ``send`` keeps to the destinations its manifest declares
(``network:127.0.0.1:*``): trusted inline, no sandbox does it for it. Against a real
plugbay-line/1 peer listening on 127.0.0.2, which its manifest does not declare."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugbay import PlugbayError
from tests.conftest import PluginFactory
from tests.plugins.test_protocol_plugin import ECHO, PROVIDES_CONVERSATION, start

PLUGIN = "integration.protocol"


@pytest.fixture
def tree(plugins: PluginFactory) -> PluginFactory:
    plugins.copy_bundled("core/system", "integration/protocol")
    plugins("acme.echo", ECHO, extra=PROVIDES_CONVERSATION)
    return plugins


class Peer:
    """A plugbay-line/1 server on 127.0.0.2 that answers SAY with its text back, and
    keeps every line it was sent."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answers = {"HELLO": "WELCOME peer plugbay-line/1", "QUIT": "BYE"}
        while line := (await reader.readline()).decode().rstrip("\r\n"):
            self.heard.append(line)
            verb, _, text = line.partition(" ")
            writer.write(f"{answers.get(verb, 'REPLY ' + text)}\n".encode())
            await writer.drain()
        writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    peer = Peer()
    peer.server = await asyncio.start_server(peer._serve, "127.0.0.2", 0)
    try:
        yield peer
    finally:
        peer.server.close()
        await peer.server.wait_closed()


async def test_send_refuses_a_peer_its_manifest_does_not_declare(
    tree: PluginFactory, tmp_path: Path, peer: Peer
) -> None:
    where = f"127.0.0.2:{peer.port}"
    async with start(tree, tmp_path) as host:
        with pytest.raises(PlugbayError) as refused:
            await host.call(PLUGIN, "send", text="hello there", host="127.0.0.2", port=peer.port)
        error = refused.value
        assert error.code == "permission_denied", error
        assert f"denied connecting to {where}" in error.message, error
        assert "its manifest declares only network:127.0.0.1:*" in error.message, error
        assert error.hint == (
            "declare it under [permissions] and have the operator run "
            f"'plugbay grant {PLUGIN} network:{where}'"
        )
        assert peer.heard == []  # nothing reached it
        # what it declares it still reaches: its own listener on 127.0.0.1
        own = int((await host.call(PLUGIN, "status")).port)
        reply = await host.call(PLUGIN, "send", text="hi", port=own)
        assert reply.startswith("echo(127.0.0.1:") and reply.endswith("): hi")


async def test_send_reaches_a_peer_once_its_manifest_declares_it(
    tree: PluginFactory, tmp_path: Path, peer: Peer
) -> None:
    manifest = tree.root / "integration" / "protocol" / "plugin.toml"
    manifest.write_text(
        manifest.read_text().replace(
            'network = ["127.0.0.1:*"]', f'network = ["127.0.0.1:*", "127.0.0.2:{peer.port}"]'
        )
    )
    async with start(tree, tmp_path) as host:
        reply = await host.call(
            PLUGIN, "send", text="hello there", host="127.0.0.2", port=peer.port
        )
    assert reply == "hello there"
    assert peer.heard == [f"HELLO {PLUGIN}", "SAY hello there", "QUIT"]
