"""A network grant without a port (``network:127.0.0.1:*``) or naming a host
(``network:example.org:443``): no layer of a sandbox can honour it
(``isolation.network_grants``), so it is refused where it is written, and a sandboxed
plugin asking for one is not loaded; one with an address and a port works as before.
One kept by an older plugbay is named at the host's start, and ``plugbay revoke``
removes it.

Real parts: sandboxed worker processes, a TCP server on 127.0.0.1 and a free port, the
state database, the ``plugbay`` CLI."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plugbay import ConfigError, PermissionDenied
from plugbay.isolation.policy import IsolationPolicy
from plugbay.pdk.analyzer import validate_plugin
from plugbay.runtime.host import Host
from plugbay.state import StateStore
from tests.conftest import PluginFactory
from tests.test_sandbox import DIALER, LIMITS, listening


async def test_a_sandboxed_plugin_asking_for_any_port_is_not_loaded_and_says_what_to_write(
    tmp_path: Path,
) -> None:
    async with listening() as granted, listening() as other:
        factory = PluginFactory(tmp_path / "plugins")
        factory("acme.wild", DIALER, extra='[permissions]\nnetwork = ["127.0.0.1:*"]\n' + LIMITS)
        factory(
            "acme.courier",
            DIALER,
            extra=f'[permissions]\nnetwork = ["127.0.0.1:{granted.port}"]\n' + LIMITS,
        )
        state_dir = tmp_path / "state"
        with contextlib.closing(StateStore.open(state_dir)) as state:
            state.grant("acme.wild", "network:127.0.0.1:*")  # kept before it was refused
            state.grant("acme.courier", f"network:127.0.0.1:{granted.port}")
        async with Host(
            factory.root, state_dir=state_dir, entry_points=False, init_timeout=30
        ) as host:
            wild = host.info("acme.wild")
            assert wild["state"] == "failed", wild["state"]
            error = wild["error"]
            assert "network grant '127.0.0.1:*' names no port" in error["message"], error
            assert "a sandboxed plugin's network grant needs one (ADDRESS:PORT)" in error["message"]
            assert "plugin.toml" in error["message"]
            assert "network:127.0.0.1:6667" in error["hint"], error
            # its neighbour, granted an address and a port, reaches it and nothing else
            assert await host.call("acme.courier", "connect", port=granted.port) == "hello back"
            with pytest.raises(PermissionDenied) as caught:
                await host.call("acme.courier", "connect", port=other.port)
            assert caught.value.details["permission"] == f"network:127.0.0.1:{other.port}"
            assert other.connections == []
            # and 'plugbay grant' (the host's) refuses another grant of any port, keeping none
            with pytest.raises(ConfigError) as refused:
                await host.grant("acme.courier", "network:127.0.0.1:*")
            assert "network grant '127.0.0.1:*' names no port" in refused.value.message
            assert "network:127.0.0.1:6667" in (refused.value.hint or "")
            assert host.state is not None
            assert "network:127.0.0.1:*" not in host.state.grants("acme.courier")


GATEWAY = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


async def test_a_plugin_asking_to_run_inline_is_told_so_first_and_how_to_trust_it(
    tmp_path: Path,
) -> None:
    """A manifest asking for isolation = "inline" (a gateway listening on any port of
    127.0.0.1) under a policy that does not trust it: its load refusal says first that it
    asks to run inline and how the operator trusts it, then why it cannot run sandboxed;
    trusted so, it loads and answers."""
    factory = PluginFactory(tmp_path / "plugins")
    factory(
        "acme.gateway",
        GATEWAY,
        extra='isolation = "inline"\n[permissions]\nnetwork = ["127.0.0.1:*"]\n',
    )
    async with Host(
        factory.root, state_dir=tmp_path / "state", entry_points=False, init_timeout=30
    ) as host:
        error = host.info("acme.gateway")["error"]
        assert error["message"].startswith(
            'it asks to run inline (isolation = "inline" in its manifest), but the host\'s '
            "policy does not trust it, so it runs sandboxed, where its network grant "
            "'127.0.0.1:*' names no port"
        ), error
        assert error["hint"].startswith(
            'to run it inline, trust it: inline = ["acme.gateway"] under [policy] in the '
            "host's config file (plugbay.toml); else write one grant a port"
        ), error
    config = tmp_path / "plugbay.toml"
    config.write_text('[policy]\ninline = ["acme.gateway"]\n')
    async with Host(
        factory.root,
        state_dir=tmp_path / "state",
        config_file=config,
        entry_points=False,
        init_timeout=30,
    ) as host:
        assert await host.call("acme.gateway", "ping") == "pong"
        placement = host.plugin("acme.gateway").placement
        assert placement is not None and placement.isolation == "inline"


def test_the_host_config_refuses_a_grant_of_any_port(tmp_path: Path) -> None:
    config = tmp_path / "plugbay.toml"
    config.write_text('[policy.grants]\n"acme.irc" = ["network:127.0.0.1:*"]\n')
    with pytest.raises(ConfigError) as info:
        IsolationPolicy.from_file(config)
    assert "network grant '127.0.0.1:*' names no port" in info.value.message
    assert "network:127.0.0.1:6667" in (info.value.hint or "")


def test_plugbay_grant_refuses_any_port_and_revoke_still_takes_one_back(tmp_path: Path) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.wild", DIALER, extra='[permissions]\nnetwork = ["127.0.0.1:*"]\n')
    state_dir = tmp_path / "state"
    with contextlib.closing(StateStore.open(state_dir)) as state:
        state.grant("acme.wild", "network:127.0.0.1:*")  # kept before it was refused

    def plugbay(*args: str) -> subprocess.CompletedProcess[str]:
        where = ("--plugins", str(factory.root), "--state", str(state_dir))
        return subprocess.run(
            [sys.executable, "-m", "plugbay.cli", *args, *where],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )

    granted = plugbay("grant", "acme.wild", "network:127.0.0.1:*")
    assert granted.returncode == 2, granted
    said = " ".join((granted.stdout + granted.stderr).split())
    assert "names no port" in said and "network:127.0.0.1:6667" in said, said
    revoked = plugbay("revoke", "acme.wild", "network:127.0.0.1:*")
    assert revoked.returncode == 0, revoked
    with contextlib.closing(StateStore.open(state_dir)) as state:
        assert state.grants("acme.wild") == []


def test_validate_warns_of_a_manifest_asking_for_any_port(tmp_path: Path) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.wild", DIALER, extra='[permissions]\nnetwork = ["127.0.0.1:*"]\n')
    result = validate_plugin(factory.root / "acme.wild-1.0.0", import_check=False)
    found = [f for f in result.findings if "names no port" in f.message]
    assert len(found) == 1, [f.message for f in result.findings]
    assert found[0].severity == "warning"
    assert "refused when loaded" in found[0].message
    assert "network:127.0.0.1:6667" in (found[0].hint or "")


# -- a grant naming a host (network:example.org:443) -----------------------------------

#: connects by the name its manifest asks for: a trusted (inline) plugin may (async:
#: inline, it shares the loop of the test's server)
NAMED_DIALER = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def connect(self, port: int) -> str:
        reader, writer = await asyncio.open_connection("localhost", port)
        writer.write(b"hello by name")
        await writer.drain()
        answer = await reader.read(100)
        writer.close()
        return answer.decode()
"""


def _plugbay(tmp_path: Path, plugins: Path, state_dir: Path, *args: str) -> tuple[int, str]:
    where = ("--plugins", str(plugins), "--state", str(state_dir))
    done = subprocess.run(
        [sys.executable, "-m", "plugbay.cli", *args, *where],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def test_plugbay_grant_and_the_host_config_refuse_a_host_name_saying_to_grant_addresses(
    tmp_path: Path,
) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.web", DIALER, extra='[permissions]\nnetwork = ["127.0.0.1:443"]\n')
    state_dir = tmp_path / "state"
    code, said = _plugbay(
        tmp_path, factory.root, state_dir, "grant", "acme.web", "network:example.org:443"
    )
    assert code == 2, said
    assert "network grant 'example.org:443' names a host, not an IP address" in said, said
    assert "network:ADDRESS:443" in said and "getent ahosts example.org" in said, said
    with contextlib.closing(StateStore.open(state_dir)) as state:
        assert state.grants("acme.web") == []
    config = tmp_path / "plugbay.toml"
    config.write_text('[policy.grants]\n"acme.web" = ["network:example.org:443"]\n')
    with pytest.raises(ConfigError) as info:
        IsolationPolicy.from_file(config)
    assert "names a host, not an IP address" in info.value.message
    assert "getent ahosts example.org" in (info.value.hint or "")
    # an address, IPv6 included, and any address on one port are taken as before
    config.write_text('[policy.grants]\n"acme.web" = ["network:[::1]:443", "network:*:443"]\n')
    IsolationPolicy.from_file(config)


def test_validate_warns_of_a_manifest_asking_for_a_host_name(tmp_path: Path) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.web", DIALER, extra='[permissions]\nnetwork = ["example.org:443"]\n')
    result = validate_plugin(factory.root / "acme.web-1.0.0", import_check=False)
    found = [f for f in result.findings if "names a host" in f.message]
    assert len(found) == 1, [f.message for f in result.findings]
    assert found[0].severity == "warning"
    assert "refused when loaded" in found[0].message
    assert "getent ahosts example.org" in (found[0].hint or "")


async def test_a_sandboxed_plugin_asking_for_a_host_is_not_loaded_and_an_inline_one_is(
    tmp_path: Path,
) -> None:
    async with listening() as server:
        factory = PluginFactory(tmp_path / "plugins")
        asks = f'[permissions]\nnetwork = ["localhost:{server.port}"]\n'
        factory("acme.named", NAMED_DIALER, extra=asks + LIMITS)
        factory("acme.trusted", NAMED_DIALER, extra=asks)
        async with Host(
            factory.root,
            state_dir=tmp_path / "state",
            entry_points=False,
            init_timeout=30,
            policy=IsolationPolicy(inline=("acme.trusted",)),
        ) as host:
            named = host.info("acme.named")
            assert named["state"] == "failed", named["state"]
            error = named["error"]
            assert f"network grant 'localhost:{server.port}' names a host" in error["message"]
            assert "plugin.toml" in error["message"], error
            assert "getent ahosts localhost" in error["hint"], error
            # trusted, nothing checks its connections: it reaches the server by name
            assert await host.call("acme.trusted", "connect", port=server.port) == "hello back"
            assert server.connections == [b"hello by name"]
            with pytest.raises(ConfigError) as refused:
                await host.grant("acme.trusted", f"network:localhost:{server.port}")
            assert "names a host, not an IP address" in refused.value.message
            assert host.state is not None
            assert host.state.grants("acme.trusted") == []


async def test_legacy_grants_are_named_once_at_start_and_plugbay_revoke_removes_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with listening() as server:
        factory = PluginFactory(tmp_path / "plugins")
        asks = f'[permissions]\nnetwork = ["127.0.0.1:{server.port}"]\n'
        factory("acme.wild", DIALER, extra=asks + LIMITS)
        state_dir = tmp_path / "state"
        StateStore.open(state_dir).close()
        with contextlib.closing(sqlite3.connect(state_dir / "state.db")) as db, db:
            # as an older plugbay kept them, before either was refused
            db.executemany(
                "INSERT INTO grants (plugin_id, permission, granted) VALUES (?, ?, ?)",
                [
                    ("acme.wild", "network:127.0.0.1:*", time.time()),
                    ("acme.wild", f"network:127.0.0.1:{server.port}", time.time()),
                    ("acme.wild", "network:example.org:443", time.time()),
                ],
            )
        caplog.set_level(logging.WARNING, logger="plugbay")
        async with Host(
            factory.root, state_dir=state_dir, entry_points=False, init_timeout=30
        ) as host:
            said = [r.getMessage() for r in caplog.records if "no sandbox can honour" in r.message]
            assert len(said) == 1, said
            assert "network:127.0.0.1:* of acme.wild" in said[0], said
            assert "network:example.org:443 of acme.wild" in said[0], said
            assert "plugbay revoke acme.wild 'network:127.0.0.1:*'" in said[0], said
            assert "plugbay revoke acme.wild network:example.org:443" in said[0], said
            assert f"network:127.0.0.1:{server.port} of" not in said[0], said
            assert "allow a sandboxed plugin no connection" in said[0], said
            # what its manifest asks for, granted as it is written, is still allowed
            assert await host.call("acme.wild", "connect", port=server.port) == "hello back"
        for permission in ("network:127.0.0.1:*", "network:example.org:443"):
            code, out = _plugbay(
                tmp_path, factory.root, state_dir, "revoke", "acme.wild", permission
            )
            assert code == 0, out
        with contextlib.closing(sqlite3.connect(state_dir / "state.db")) as db:
            kept = db.execute("SELECT permission FROM grants WHERE plugin_id='acme.wild'")
            assert [row[0] for row in kept] == [f"network:127.0.0.1:{server.port}"]
        caplog.clear()
        async with Host(
            factory.root, state_dir=state_dir, entry_points=False, init_timeout=30
        ) as host:
            assert host.info("acme.wild")["state"] == "active"
            assert await host.call("acme.wild", "connect", port=server.port) == "hello back"
            assert not [r for r in caplog.records if "no sandbox can honour" in r.message]
