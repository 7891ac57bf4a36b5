"""integration.protocol's ``send`` keeps to the destinations its manifest declares
(``network:127.0.0.1:*``): trusted inline, no sandbox does it for it. Against a real
plugbay-line/1 peer listening on 127.0.0.2, which its manifest does not declare."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugbay import PlugbayError
from tests.conftest import PluginFactory
from tests.plugins.conftest import load_engine
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


async def test_a_host_name_whose_lookup_hangs_is_given_up_within_the_timeout() -> None:
    """A resolver that never answers cannot be made without a network's help, so the
    lookup is the plugin's own seam (``peers.granted_address``'s ``lookup``) hanging."""
    peers = load_engine("integration/protocol", "peers")
    asked: list[str] = []

    async def never_answers(host: str, port: int) -> list[tuple[object, ...]]:
        asked.append(f"{host}:{port}")
        await asyncio.Event().wait()
        return []

    async with asyncio.timeout(10):  # without the send's timeout, this fails instead of hanging
        with pytest.raises(ConnectionError) as gave_up:
            await peers.granted_address(
                PLUGIN, "peer.invalid", 7878, ("127.0.0.1:*",), 0.2, never_answers
            )
    assert asked == ["peer.invalid:7878"]
    assert str(gave_up.value).startswith(
        "cannot reach peer peer.invalid:7878: looking up peer.invalid took longer than 0.2 s"
    ), gave_up.value
    assert not isinstance(gave_up.value, TimeoutError)  # the host would word it as its own


async def test_send_looks_a_host_name_up_within_its_timeout(
    tree: PluginFactory, tmp_path: Path
) -> None:
    async with start(tree, tmp_path) as host:
        own = int((await host.call(PLUGIN, "status")).port)
        reply = await host.call(PLUGIN, "send", text="hi", host="localhost", port=own, timeout=5)
    assert reply.startswith("echo(127.0.0.1:") and reply.endswith("): hi"), reply


def test_validate_finds_nothing_wrong_with_the_bundled_gateway() -> None:
    """It must listen (no sandbox lets it) and may send to any port of 127.0.0.1: it asks
    to run inline, so its 127.0.0.1:* is said as a note, not warned of as a mistake."""
    directory = Path(__file__).resolve().parents[2] / "plugins" / "integration" / "protocol"
    plugbay = Path(sys.executable).with_name("plugbay")
    done = subprocess.run(
        [str(plugbay), "validate", str(directory)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 errors, 0 warnings" in done.stdout, done.stdout
    assert "info[permission] network grant '127.0.0.1:*' names no port" in done.stdout
    assert "its manifest asks to run inline" in done.stdout, done.stdout
