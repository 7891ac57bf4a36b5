"""integration.protocol's ``send`` ends within its ``timeout``: one deadline, computed
once, covers looking the host name up and the conversation; each step is given what is
left, the conversation is not started when nothing is, and the error says the timeout
the caller gave. Against a real peer on 127.0.0.1 that accepts and never answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plugbay import PluginCallError
from tests.conftest import PluginFactory
from tests.plugins.test_protocol_plugin import ECHO, PROVIDES_CONVERSATION, start

PLUGIN = "integration.protocol"


@pytest.fixture
def tree(plugins: PluginFactory) -> PluginFactory:
    plugins.copy_bundled("core/system", "integration/protocol")
    plugins("acme.echo", ECHO, extra=PROVIDES_CONVERSATION)
    return plugins


class SilentPeer:
    """Accepts on 127.0.0.1 and never answers; keeps the client port of each connection
    it accepted, in the order it accepted them."""

    def __init__(self) -> None:
        self.accepted: list[int] = []
        self.arrived = asyncio.Event()  # set at each connection accepted
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(int(writer.get_extra_info("peername")[1]))
        self.arrived.set()
        await reader.read()
        writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def first_accepted_is_a_probe(self) -> bool:
        """Connect once more and wait for it to be accepted: whether it is the first
        connection the peer accepted (the listen queue is in order)."""
        _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        mine = int(writer.get_extra_info("sockname")[1])
        try:
            async with asyncio.timeout(10):
                while mine not in self.accepted:
                    self.arrived.clear()
                    await self.arrived.wait()
        finally:
            writer.close()
        return self.accepted[0] == mine


@pytest.fixture
async def silent() -> AsyncIterator[SilentPeer]:
    peer = SilentPeer()
    peer.server = await asyncio.start_server(peer._serve, "127.0.0.1", 0)
    try:
        yield peer
    finally:
        peer.server.close()


def readings(*values: float) -> Iterator[float]:
    yield from values
    while True:
        yield values[-1]


async def test_a_send_whose_deadline_passed_in_the_lookup_does_not_talk(
    tree: PluginFactory, tmp_path: Path, silent: SilentPeer
) -> None:
    """The clock reads 0 when the deadline is set and as the lookup starts, then 100 s
    later: the conversation is refused in the timeout's words, never started."""
    async with start(tree, tmp_path) as host:
        handle = host.manager.record(PLUGIN).handle
        assert handle is not None and handle.instance is not None
        clock = readings(0.0, 0.0, 100.0)
        handle.instance.clock = lambda: next(clock)
        with pytest.raises(PluginCallError) as timed_out:
            await host.call(
                PLUGIN, "send", text="hi", host="localhost", port=silent.port, timeout=0.3
            )
    assert f"raised PeerTimeout: peer 127.0.0.1:{silent.port} did not answer within 0.3 s" in str(
        timed_out.value
    )
    assert await silent.first_accepted_is_a_probe(), "the conversation was started"


async def test_a_send_to_a_silent_peer_ends_within_its_timeout_in_its_words(
    tree: PluginFactory, tmp_path: Path, silent: SilentPeer
) -> None:
    """A name looked up (it spends part of the timeout), then a peer that never answers:
    the error names the timeout the caller gave, not what was left of it."""
    async with start(tree, tmp_path) as host:
        started = time.monotonic()
        with pytest.raises(PluginCallError) as timed_out:
            await host.call(
                PLUGIN, "send", text="hi", host="localhost", port=silent.port, timeout=0.3
            )
        elapsed = time.monotonic() - started
    assert f"raised PeerTimeout: peer 127.0.0.1:{silent.port} did not answer within 0.3 s" in str(
        timed_out.value
    )
    assert silent.accepted, "the peer was never reached"
    assert elapsed < 0.3 + 5.0  # scheduling slack on a loaded machine, not a performance goal
