"""A network grant without a port (``network:127.0.0.1:*``): no layer of a sandbox can
honour it (``isolation.network_grants``), so it is refused where it is written, and a
sandboxed plugin asking for one is not loaded; one with a port works as before.

Real parts: sandboxed worker processes, a TCP server on 127.0.0.1 and a free port, the
state database, the ``plugbay`` CLI."""

from __future__ import annotations

import contextlib
import subprocess
import sys
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
