"""Grants are bound and live: the denial names the command, the grant applies at once."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from plugbay import PermissionDenied
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._running import plugbay_run
from tests.adversarial.conftest import ATTACKER
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow]

READER = '[dependencies]\n"core.security" = "^1.0"\n[permissions]\nhost = ["audit-read"]\n'
GREEDY = (
    '[dependencies]\n"core.security" = "^1.0"\n'
    '[permissions]\nhost = ["audit-read", "audit-write"]\n'
)


def arena(tmp_path: Path) -> PluginFactory:
    plugins = PluginFactory(tmp_path / "plugins")
    plugins.copy_bundled("core/system", "core/security")
    plugins("acme.reader", ATTACKER, extra=READER)
    plugins("acme.neighbour")
    return plugins


def worker(host: Host, plugin_id: str) -> int:
    pid = getattr(host.plugin(plugin_id).handle, "pid", None)
    assert isinstance(pid, int)
    return pid


async def read_trail(host: Host) -> object:
    return await host.call(
        "acme.reader", "raw_call", target="core.security", command="trail", params={}
    )


async def test_a_grant_applies_to_the_running_plugin_at_once(tmp_path: Path) -> None:
    plugins = arena(tmp_path)
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        with pytest.raises(PermissionDenied) as caught:
            await read_trail(host)
        assert "'plugbay grant acme.reader host:audit-read'" in (caught.value.hint or "")
        assert host.info("acme.reader")["permissions"]["pending"] == ["host:audit-read"]
        before, neighbour = worker(host, "acme.reader"), worker(host, "acme.neighbour")

        done = await host.grant("acme.reader", "host:audit-read")
        assert done["restarted"] and done["permissions"]["pending"] == []
        assert worker(host, "acme.reader") != before  # restarted under the new policy
        assert isinstance(await read_trail(host), list)
        assert worker(host, "acme.neighbour") == neighbour  # the others are not touched

        await host.revoke("acme.reader", "host:audit-read")
        with pytest.raises(PermissionDenied):
            await read_trail(host)


async def test_a_new_version_asking_for_more_starts_without_it(tmp_path: Path) -> None:
    plugins = arena(tmp_path)
    state = tmp_path / "state"
    async with Host(plugins.root, state_dir=state, entry_points=False) as host:
        await host.grant("acme.reader", "host:audit-read")
        assert isinstance(await read_trail(host), list)
        # 1.1.0 asks for audit-write as well: the operator has not approved that
        plugins("acme.reader", ATTACKER, version="1.1.0", extra=GREEDY)
        await host.reload("acme.reader", source=plugins.root / "acme.reader-1.1.0")
        assert host.plugin("acme.reader").version == "1.1.0"
        permissions = host.info("acme.reader")["permissions"]
        assert permissions["effective"] == ["host:audit-read"]  # the grant stays bound
        assert permissions["pending"] == ["host:audit-write"]  # the diff to approve
        assert isinstance(await read_trail(host), list)
        with pytest.raises(PermissionDenied) as caught:
            await host.call(
                "acme.reader", "raw_call", target="core.security", command="record",
                params={"kind": "x", "detail": "y"},
            )  # fmt: skip
        assert "plugbay grant acme.reader host:audit-write" in (caught.value.hint or "")


def test_plugbay_grant_goes_through_the_running_host_and_says_so(tmp_path: Path) -> None:
    plugins = arena(tmp_path)
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)) as running:
        detail = httpx.get(f"{running.url}/api/v1/plugins/acme.reader", headers=running.auth)
        assert detail.json()["permissions"]["pending"] == ["host:audit-read"]
        info = plugbay("info", "acme.reader", cwd=tmp_path)
        assert "plugbay grant acme.reader host:audit-read" in info.stdout, info.stdout

        done = plugbay("grant", "acme.reader", "host:audit-read", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "restarted under the new policy" in done.stdout, done.stdout
        call = httpx.post(
            f"{running.url}/api/v1/plugins/acme.reader/commands/raw_call",
            headers=running.auth,
            json={"target": "core.security", "command": "trail", "params": {}},
        )
        assert call.status_code == 200, call.text
        assert isinstance(call.json()["result"], list)  # the audit trail, now readable
        detail = httpx.get(f"{running.url}/api/v1/plugins/acme.reader", headers=running.auth)
        assert detail.json()["permissions"]["pending"] == []
    history = plugbay("history", "acme.reader", "--json", cwd=tmp_path)
    assert any(e["action"] == "grant" for e in json.loads(history.stdout))
