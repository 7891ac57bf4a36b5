"""integration.irc held to what its docs promise, on a real ngIRCd of 127.0.0.1: the
documented ``plugbay config integration.irc server=…`` on a running host, a ``say``
target that would smuggle a command in, and a nick the server refuses."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from plugbay import PlugbayError
from plugbay.runtime.host import Host
from tests._ircd import Client, IrcServer, free_port
from tests.conftest import PluginFactory
from tests.plugins.test_irc_plugin import PLUGIN, start


@pytest.fixture
def tree(plugins: PluginFactory) -> PluginFactory:
    plugins.copy_bundled(
        "core/system", "utility/formatters", "extension/processor", "integration/irc"
    )
    return plugins


async def _nick_is(host: Host, nick: str) -> bool:
    return bool((await host.call(PLUGIN, "status")).nick == nick)


async def until(check: object, timeout: float = 20) -> None:
    """Poll ``await check()`` until true."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_plugbay_config_sets_the_server_of_a_running_host_as_the_docs_say(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    """operators.md: it stays idle until a server is set with ``plugbay config``; a line
    said meanwhile is refused at once, saying how to set one (nothing would send it)."""
    host = Host(tree.root, state_dir=tmp_path / "state", entry_points=False, inline=[PLUGIN])
    async with host:
        assert not (await host.call(PLUGIN, "status")).connected  # idle: no server yet
        with pytest.raises(PlugbayError, match="no IRC server is configured") as refused:
            await host.call(PLUGIN, "say", text="said while idle")
        assert refused.value.code == "irc_no_server"
        assert "'plugbay config integration.irc server=HOST'" in str(refused.value)
        assert (await host.call(PLUGIN, "status")).queued == 0  # not kept to go out later
        await host.set_config(PLUGIN, {"server": "127.0.0.1", "port": server.port})
        await alice.until(lambda: "plugbay" in alice.joined)
        await host.call(PLUGIN, "say", text="said once a server is set")
        await alice.until(lambda: alice.texts("plugbay"))
        assert alice.texts("plugbay") == ["said once a server is set"]
        # another channel is a new connection too: it leaves #plugbay for it
        bob = Client(server.port, nick="bob", channel="#elsewhere")
        await bob.connect()
        try:
            await host.set_config(
                PLUGIN, {"server": "127.0.0.1", "port": server.port, "channel": "#elsewhere"}
            )
            await bob.until(lambda: "plugbay" in bob.joined)
            await host.call(PLUGIN, "say", text="hello elsewhere")
            await bob.until(lambda: bob.texts("plugbay"))
            assert bob.texts("plugbay") == ["hello elsewhere"]
            assert (await host.call(PLUGIN, "status")).channel == "#elsewhere"
        finally:
            await bob.close()


@pytest.mark.parametrize(
    "target",
    ["#plugbay\r\nPRIVMSG #plugbay :injected", "#plugbay :injected", "#a,#plugbay", ":x", ""],
)
async def test_a_say_target_cannot_smuggle_a_command_onto_the_server(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client, target: str
) -> None:
    async with start(tree, tmp_path, server.port) as host:
        await alice.until(lambda: "plugbay" in alice.joined)
        if target:
            with pytest.raises(PlugbayError, match="is not one channel or nick: give a channel"):
                await host.call(PLUGIN, "say", text="hi", target=target)
        else:  # no target: the channel
            await host.call(PLUGIN, "say", text="hi", target=target)
        await host.call(PLUGIN, "say", text="marker")
        await alice.until(lambda: "marker" in alice.texts("plugbay"))
        # nothing but the marker reached the channel: no second line, no stray text
        assert alice.texts("plugbay") == (["hi", "marker"] if not target else ["marker"])
        assert (await host.call(PLUGIN, "status")).queued == 0


async def test_a_taken_nick_as_long_as_the_server_allows_still_gets_on(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    """The nick's ``_`` would make it longer than the server takes (432): it asks for a
    shorter variant, joins, and takes its own nick once the holder leaves."""
    nick = "a" * 30  # the test server's MaxNickLength
    camper = Client(server.port, nick=nick)  # in the channel: its QUIT is seen
    await camper.connect()
    try:
        async with start(tree, tmp_path, server.port, nick=nick) as host:
            await alice.until(lambda: "a" * 29 + "_" in alice.joined)
            await camper.close()
            await alice.until(lambda: nick in alice.joined, timeout=30)
            await until(lambda: _nick_is(host, nick))
    finally:
        await camper.close()


async def test_a_nick_longer_than_the_server_takes_is_shortened_and_said_so(
    tree: PluginFactory, tmp_path: Path
) -> None:
    (tmp_path / "irc").mkdir()
    server = IrcServer(tmp_path / "irc")
    server.config.write_text(  # ngIRCd's own default
        server.config.read_text().replace("MaxNickLength = 30", "MaxNickLength = 9")
    )
    server.start()
    alice = Client(server.port)
    try:
        await alice.connect()
        async with start(tree, tmp_path, server.port, nick="plugbay-helper") as host:
            await alice.until(lambda: "plugbay-h" in alice.joined)
            await until(lambda: _nick_is(host, "plugbay-h"))
            said = [r["message"] for r in host.logs(PLUGIN)]
            assert any(
                "refuses the nick 'plugbay-helper' (Nickname too long" in m
                and "set a nick it takes ('plugbay config integration.irc nick=...')" in m
                for m in said
            ), said
    finally:
        await alice.close()
        server.stop()


class GarblingServer:
    """No ngIRCd sends garbage, so this one does: before it welcomes a client it sends a
    line of 200 kB, undecodable bytes and lines with parts missing; then it speaks
    enough IRC to let the client join and to relay one question to it."""

    def __init__(self) -> None:
        self.connections = 0
        self.said: list[str] = []
        self.heard = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b":fake 020 * :" + b"x" * 200_000 + b"\r\n")
        writer.write(b"\xff\xfe\x00 garbage\r\n:\r\n\r\n   \r\nPRIVMSG\r\n303\r\n001\r\n")
        writer.write(b":a!b@c PRIVMSG plugbay\r\n:" + b"y" * 70_000)
        writer.write(b"\r\n")
        while line := (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n"):
            self.said.append(line)
            if line.startswith("USER "):
                writer.write(b":fake 001 plugbay :welcome\r\n")
            elif line.startswith("JOIN "):
                writer.write(b":plugbay!u@h JOIN #plugbay\r\n")
                writer.write(b":alice!a@h PRIVMSG #plugbay :plugbay: I am unhappy\r\n")
            elif line.startswith("PRIVMSG #plugbay :"):
                self.heard.set()
            await writer.drain()
        writer.close()


async def test_a_server_sending_garbage_and_overlong_lines_keeps_its_connection(
    tree: PluginFactory, tmp_path: Path
) -> None:
    fake = GarblingServer()
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with start(tree, tmp_path, port) as host:
            async with asyncio.timeout(20):
                await fake.heard.wait()
            said = [s for s in fake.said if s.startswith("PRIVMSG")]
            assert said == ["PRIVMSG #plugbay :alice: I am sorry to hear you are unhappy"]
            status = await host.call(PLUGIN, "status")
            assert (status.connected, status.reconnects, fake.connections) == (True, 0, 1)
    finally:
        server.close()


async def test_a_channel_with_a_line_break_is_refused_by_the_config_schema(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    """``JOIN <channel>`` is written as configured: a CR LF in it would end the line and
    send the rest (``QUIT``) as a command of its own, on every connection."""
    async with start(tree, tmp_path, server.port) as host:
        await alice.until(lambda: "plugbay" in alice.joined)
        for channel in ("#a\r\nQUIT", "#a\nQUIT", "#a\x00"):
            with pytest.raises(PlugbayError, match="config key 'channel' is invalid"):
                await host.set_config(PLUGIN, {"channel": channel})
        assert (await host.call(PLUGIN, "status")).channel == "#plugbay"
        await host.call(PLUGIN, "say", text="still here")
        await alice.until(lambda: alice.texts("plugbay") == ["still here"])


async def test_a_new_server_right_after_a_failed_swap_still_sends_what_was_queued(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    """A swap that fails leaves the old version frozen for up to 30 s (its lines handed
    over to a version that never came); a new server meanwhile must not leave it mute."""
    host = Host(tree.root, state_dir=tmp_path / "state", entry_points=False, inline=[PLUGIN])
    async with host:
        # a server that is not there: the line waits in the queue
        await host.set_config(PLUGIN, {"server": "127.0.0.1", "port": free_port()})
        handle = host.manager.record(PLUGIN).handle
        assert handle is not None and handle.instance is not None
        await host.call(PLUGIN, "say", text="queued before the swap")
        await handle.instance.export_state()  # what a swap does first; then it failed
        await host.set_config(PLUGIN, {"server": "127.0.0.1", "port": server.port})
        await alice.until(lambda: alice.texts("plugbay"), timeout=10)
        assert alice.texts("plugbay") == ["queued before the swap"]


async def test_a_queue_full_while_joined_says_it_is_the_send_rate(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    config = {"queue-size": 1, "send-timeout": 0.2, "rate": 0.1, "burst": 1}
    async with start(tree, tmp_path, server.port, **config) as host:
        await alice.until(lambda: "plugbay" in alice.joined)
        await host.call(PLUGIN, "say", text="first")  # the burst: it goes at once
        await alice.until(lambda: alice.texts("plugbay") == ["first"])
        await host.call(PLUGIN, "say", text="second")  # waits 10 s for its token
        with pytest.raises(PlugbayError, match="the send queue stayed full") as refused:
            await host.call(PLUGIN, "say", text="third")
        assert refused.value.hint == (
            "the server takes them at 0.1 lines a second after a burst of 1: "
            "raise rate or queue-size, or retry later"
        )


def sandboxed(tree: PluginFactory, tmp_path: Path) -> Host:
    """integration.irc in a sandboxed worker (not trusted inline), as an operator who
    did not follow the docs' advice would run it."""
    return Host(tree.root, state_dir=tmp_path / "state", entry_points=False)


async def _problem(host: Host) -> str:
    return str((await host.call(PLUGIN, "status"))["problem"])  # a worker's answer: a dict


async def test_a_sandboxed_instance_says_which_grant_it_lacks_and_how_to_give_it(
    tree: PluginFactory, tmp_path: Path, server: IrcServer
) -> None:
    """Sandboxed and granted nothing, it may connect nowhere (its manifest asks for
    ``network:127.0.0.1:6667``, the default port): each try is refused, and it says what would allow it,
    once, for the configured server and again for a remote one set later."""
    async with sandboxed(tree, tmp_path) as host:
        await host.set_config(PLUGIN, {"server": "127.0.0.1", "port": server.port})
        await until(lambda: _problem(host))
        where = f"127.0.0.1:{server.port}"
        problem = await _problem(host)
        assert f"the sandbox refused connecting to {where}" in problem, problem
        assert f"'plugbay grant integration.irc network:{where}'" in problem, problem
        assert '"integration.irc" to inline under [policy] in plugbay.toml' in problem, problem
        await until(lambda: _reconnected(host, 3))  # refused again and again: said once
        said = [r["message"] for r in host.logs(PLUGIN) if r["message"] == problem]
        assert len(said) == 1, said
        await host.set_config(PLUGIN, {"server": "192.0.2.7"})  # a remote server
        await until(lambda: _names(host, "192.0.2.7:6667"))
        assert "network:192.0.2.7:6667" in await _problem(host)


async def _reconnected(host: Host, times: int) -> bool:
    return bool((await host.call(PLUGIN, "status"))["reconnects"] >= times)


async def _names(host: Host, where: str) -> bool:
    return f"connecting to {where}" in await _problem(host)


async def test_following_the_sandbox_advice_gets_it_on_the_channel(
    tree: PluginFactory, tmp_path: Path, server: IrcServer, alice: Client
) -> None:
    """The second way the refusal gives: the destination in its manifest, and the grant."""
    where = f"127.0.0.1:{server.port}"
    manifest = tree.root / "integration" / "irc" / "plugin.toml"
    manifest.write_text(
        manifest.read_text().replace(
            'network = ["127.0.0.1:6667"]', f'network = ["127.0.0.1:6667", "{where}"]'
        )
    )
    async with sandboxed(tree, tmp_path) as host:
        await host.set_config(PLUGIN, {"server": "127.0.0.1", "port": server.port})
        await until(lambda: _problem(host))
        await host.grant(PLUGIN, f"network:{where}")  # what 'plugbay grant' does
        await alice.until(lambda: "plugbay" in alice.joined)
        assert await _problem(host) == ""
