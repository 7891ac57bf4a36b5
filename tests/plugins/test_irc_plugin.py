"""integration.irc against a real IRC server (Debian's ngIRCd on 127.0.0.1): it answers on
the channel through the bundled ELIZA, reconnects when the server restarts, applies
backpressure and a send rate, and a hot reload loses no queued line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from plugbay import PlugbayError
from plugbay.runtime.host import Host
from tests._ircd import Client, IrcServer
from tests.conftest import PluginFactory

PLUGIN = "integration.irc"


@pytest.fixture
def tree(plugins: PluginFactory) -> PluginFactory:
    plugins.copy_bundled(
        "core/system", "utility/formatters", "extension/processor", "integration/irc"
    )
    return plugins


def start(tree: PluginFactory, tmp_path: Path, port: int, **config: Any) -> Host:
    return Host(
        tree.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        inline=[PLUGIN],  # it talks to the network: the operator trusts it
        config={PLUGIN: {"server": "127.0.0.1", "port": port, **config}},
    )


async def test_it_answers_on_the_channel_through_eliza(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    async with start(tree, tmp_path, server.port) as host:
        await alice.until(lambda: "plugbay" in alice.joined)
        alice.say("plugbay: I am unhappy")
        await alice.until(lambda: alice.texts("plugbay"))
        # the 1966 DOCTOR script's answer, through the real server, to the one who asked
        assert alice.texts("plugbay") == ["alice: I am sorry to hear you are unhappy"]
        alice.say("nobody is talking to plugbay here")  # not addressed: no answer
        alice.say("plugbay, Men are all alike.")
        await alice.until(lambda: len(alice.texts("plugbay")) == 2)
        assert alice.texts("plugbay")[1] == "alice: In what way"
        status = await host.call(PLUGIN, "status")
        assert (status.connected, status.nick, status.queued) == (True, "plugbay", 0)


async def test_it_reconnects_after_the_server_restarts_and_sends_what_waited(
    tree: PluginFactory, tmp_path: Path, server: IrcServer
) -> None:
    async with start(tree, tmp_path, server.port) as host:
        alice = Client(server.port)
        await alice.connect()
        await alice.until(lambda: "plugbay" in alice.joined)
        await alice.close()
        server.stop()
        deadline = time.monotonic() + 20
        while (await host.call(PLUGIN, "status")).connected:
            assert time.monotonic() < deadline
            await alice_pause()
        for i in range(3):  # said while the server is away: kept, not lost
            await host.call(PLUGIN, "say", text=f"while away {i}")
        assert (await host.call(PLUGIN, "status")).queued == 3
        server.start()
        alice = Client(server.port)
        await alice.connect()
        await alice.until(lambda: len(alice.texts("plugbay")) == 3)
        assert alice.texts("plugbay") == [f"while away {i}" for i in range(3)]
        status = await host.call(PLUGIN, "status")
        assert status.connected and status.reconnects >= 1 and status.queued == 0
        await alice.close()


async def alice_pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def test_a_full_queue_holds_senders_back_then_refuses(
    tree: PluginFactory, tmp_path: Path, server: IrcServer
) -> None:
    server.stop()  # nothing drains the queue
    async with start(tree, tmp_path, server.port, **{"queue-size": 3, "send-timeout": 0.3}) as h:
        for i in range(3):
            await h.call(PLUGIN, "say", text=f"line {i}")
        started = time.monotonic()
        with pytest.raises(PlugbayError, match="the send queue stayed full") as refused:
            await h.call(PLUGIN, "say", text="one too many")
        assert refused.value.code == "irc_queue_full"
        assert time.monotonic() - started >= 0.3  # it waited for room before refusing
        # the cause in its words: the server is not reached, not merely slow
        hint = refused.value.hint or ""
        assert f"not joined to #plugbay on 127.0.0.1:{server.port} yet" in hint, hint
        assert "raise queue-size, or retry once it has joined" in hint, hint
        server.start()
        alice = Client(server.port)
        await alice.connect()
        await alice.until(lambda: len(alice.texts("plugbay")) == 3)
        assert alice.texts("plugbay") == ["line 0", "line 1", "line 2"]
        await alice.close()


async def test_it_keeps_to_the_send_rate(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    async with start(tree, tmp_path, server.port, rate=5.0, burst=2) as host:
        await alice.until(lambda: "plugbay" in alice.joined)
        for i in range(8):
            await host.call(PLUGIN, "say", text=f"paced {i}")
        await alice.until(lambda: len(alice.texts("plugbay")) == 8)
        times = [t for t, s, _ in alice.heard if s == "plugbay"]
        # 2 at once, then 5 a second: the last 6 need at least 1.2 s (never faster)
        assert times[-1] - times[0] >= 1.0
        assert alice.texts("plugbay") == [f"paced {i}" for i in range(8)]


async def test_a_hot_reload_loses_no_queued_line(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    async with start(tree, tmp_path, server.port, rate=4.0, burst=1) as host:
        await alice.until(lambda: "plugbay" in alice.joined)
        for i in range(12):
            await host.call(PLUGIN, "say", text=f"queued {i}")
        await alice.until(lambda: len(alice.texts("plugbay")) >= 2)
        manifest = tree.root / "integration" / "irc" / "plugin.toml"
        manifest.write_text(manifest.read_text().replace('version = "1.0.0"', 'version = "1.0.1"'))
        await host.reload(PLUGIN)
        assert host.plugin(PLUGIN).version == "1.0.1"
        await alice.until(lambda: len([t for t in alice.texts() if t.startswith("queued")]) >= 12)
        said = [t for t in alice.texts() if t.startswith("queued")]
        assert said == [f"queued {i}" for i in range(12)]  # each once, in order
        # the new version took the nick back when the old one quit
        await alice.until(lambda: "plugbay" in alice.joined)
        status = await host.call(PLUGIN, "status")
        assert status.connected and status.queued == 0


async def test_it_takes_its_nick_back_from_a_holder_outside_the_channel(
    tree: PluginFactory, tmp_path: Path
) -> None:
    """Someone holds the nick without joining the channel, so the bot never sees them
    quit: it asks ``ISON`` again at each of the server's PINGs, and takes the nick once
    nobody holds it."""
    (tmp_path / "irc").mkdir()
    server = IrcServer(tmp_path / "irc", ping_timeout=2)  # the server's PINGs come often
    server.start()
    camper, alice = Client(server.port, nick="plugbay", join=False), Client(server.port)
    try:
        await camper.connect()
        await alice.connect()
        async with start(tree, tmp_path, server.port) as host:
            await alice.until(lambda: "plugbay_" in alice.joined)  # the nick was taken
            assert (await host.call(PLUGIN, "status")).nick == "plugbay_"
            await camper.close()  # a QUIT the bot cannot see: it is not in the channel
            await alice.until(lambda: "plugbay" in alice.joined, timeout=30)
            assert (await host.call(PLUGIN, "status")).nick == "plugbay"
    finally:
        await alice.close()
        server.stop()
