"""One view of a plugin's permissions (``runtime.permissions``): what its manifest asks
for, what is granted and where each grant comes from, what is in force in its running
worker and what it gets at its next start, what waits for the operator or was denied;
the same in ``plugbay info`` (text and ``--json``) and the API's plugin detail, on a
running host and after a restart. A grant of the config file cannot be revoked from the
command line: revoke names the file and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay.api.errors import PluginStateError
from plugbay.cli._console import out
from plugbay.cli._plugin_views import print_info
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow]

ASKS = '[permissions]\nnetwork = ["127.0.0.1:8080"]\nenv = ["HOME"]\n'


def permissions(cwd: Path, plugin_id: str = "acme.net") -> dict[str, Any]:
    shown = plugbay("info", plugin_id, "--json", cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    view: dict[str, Any] = json.loads(shown.stdout)["permissions"]
    return view


def test_a_grant_the_manifest_does_not_ask_for_is_shown_on_a_running_host(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.net", extra=ASKS)
    with plugbay_run(tmp_path) as host:
        granted = plugbay("grant", "acme.net", "subprocess", cwd=tmp_path)
        assert granted.returncode == 0, granted.stderr
        assert "does not ask for subprocess" in granted.stderr

        view = permissions(tmp_path)
        assert view["granted"] == ["subprocess"] and view["unasked"] == ["subprocess"]
        (grant,) = view["grants"]
        assert (grant["source"], grant["asked"], grant["in_force"]) == ("state", False, False)
        assert grant["file"] == str((tmp_path / ".plugbay" / "state.db").resolve())
        assert grant["by"] == "the API, with the host's token" and grant["since"] > 0
        # it changes nothing the plugin has: the worker was left as it was
        assert view["in_force"] == view["next_start"] == [] and view["pending"] == [
            "network:127.0.0.1:8080",
            "env:HOME",
        ]

        text = plugbay("info", "acme.net", cwd=tmp_path).stdout
        assert "granted: subprocess — the state database, by the API" in text
        assert "not asked for by its manifest: no effect until it is" in text

        detail = httpx.get(f"{host.url}/api/v1/plugins/acme.net", headers=host.auth, timeout=30)
        assert detail.status_code == 200
        assert detail.json()["permissions"]["grants"] == view["grants"]


def test_grants_and_revokes_made_while_running_hold_after_a_restart(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.net", extra=ASKS)
    assert plugbay("grant", "acme.net", "read:/srv", cwd=tmp_path).returncode == 0  # no host yet
    with plugbay_run(tmp_path):
        assert plugbay("grant", "acme.net", "env:HOME", cwd=tmp_path).returncode == 0
        assert plugbay("grant", "acme.net", "subprocess", cwd=tmp_path).returncode == 0
        assert plugbay("revoke", "acme.net", "read:/srv", cwd=tmp_path).returncode == 0
        running = permissions(tmp_path)
        assert running["granted"] == ["env:HOME", "subprocess"]
        assert running["in_force"] == running["next_start"] == ["env:HOME"]
    # meanwhile, with no host
    assert plugbay("revoke", "acme.net", "subprocess", cwd=tmp_path).returncode == 0
    assert plugbay("grant", "acme.net", "write:/srv/out", cwd=tmp_path).returncode == 0
    with plugbay_run(tmp_path):
        restarted = permissions(tmp_path)
        assert restarted["granted"] == ["env:HOME", "write:/srv/out"]
        assert restarted["in_force"] == ["env:HOME"]
        assert restarted["pending"] == ["network:127.0.0.1:8080"]
        text = plugbay("info", "acme.net", cwd=tmp_path).stdout
        assert "subprocess" not in text and "read:/srv" not in text
        assert "granted: write:/srv/out — the state database, by plugbay grant" in text


def test_a_grant_of_the_config_file_is_shown_with_its_file_and_is_not_revoked(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.net", extra=ASKS)
    config = (tmp_path / "plugbay.toml").resolve()
    config.write_text('[policy.grants]\n"acme.net" = ["env:HOME"]\n')
    assert plugbay("grant", "acme.net", "env:HOME", cwd=tmp_path).returncode == 0  # both places

    def refused() -> None:
        revoked = plugbay("revoke", "acme.net", "env:HOME", cwd=tmp_path)
        assert revoked.returncode == 1 and "revoked" not in revoked.stdout
        said = " ".join(revoked.stderr.split())
        assert f"env:HOME is granted by [policy.grants] in {config}" in said
        assert f'remove "env:HOME" from "acme.net" under [policy.grants] in {config}' in said
        assert "nothing was changed" in said and "also granted with 'plugbay grant'" in said

    refused()  # no host
    offline = permissions(tmp_path)  # the config file's policy is read without a host too
    assert [(g["source"], g["file"]) for g in offline["grants"]] == [
        ("config", str(config)),
        ("state", str(tmp_path / ".plugbay" / "state.db")),
    ]
    assert offline["in_force"] is None and offline["next_start"] == ["env:HOME"]
    with plugbay_run(tmp_path) as host:
        refused()
        view = permissions(tmp_path)
        by_source = {g["source"]: g for g in view["grants"]}
        assert by_source["config"]["file"] == str(config)
        assert by_source["config"]["where"] == f"[policy.grants] in {config}"
        assert by_source["config"]["in_force"] and view["in_force"] == ["env:HOME"]
        assert "state" in by_source  # the state's grant was not taken either
        text = plugbay("info", "acme.net", cwd=tmp_path).stdout
        assert f"granted: env:HOME — [policy.grants] in {config}" in text
        api = httpx.post(
            f"{host.url}/api/v1/plugins/acme.net/revoke",
            json={"permission": "env:HOME"},
            headers=host.auth,
            timeout=30,
        )
        assert api.status_code == 409 and str(config) in api.json()["error"]["message"]
    history = plugbay("history", "acme.net", "--json", cwd=tmp_path)
    assert "revoke" not in {e["action"] for e in json.loads(history.stdout)}


async def test_what_is_in_force_now_and_what_waits_for_the_next_start(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.net", extra='[permissions]\nenv = ["HOME"]\nread = ["/srv/data"]\n')
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        assert host.state is not None
        # kept in the state by another process (plugbay grant beside a host with no API)
        host.state.grant("acme.net", "env:HOME")
        view = host.info("acme.net")["permissions"]
        # env:HOME waits for a start, not for the operator's answer
        assert view["pending"] == ["read:/srv/data"]
        assert view["in_force"] == [] and view["next_start"] == ["env:HOME"]
        assert view["at_next_start"] == {"gains": ["env:HOME"], "loses": []}
        with out.capture() as shown:  # as plugbay info prints it
            print_info(host.info("acme.net"))
        text = " ".join(shown.get().split())
        assert "in effect: none (in force now)" in text
        assert "at its next start: +env:HOME" in text and "plugbay reload acme.net" in text

        # a grant of a directory covers what is asked beneath it: applied at once
        done = await host.grant("acme.net", "read:/srv")
        assert done["asked"] and done["restarted"]
        view = done["permissions"]
        assert view["in_force"] == view["next_start"] == ["read:/srv/data", "env:HOME"]
        assert view["at_next_start"] == {"gains": [], "loses": []} and view["pending"] == []

        host.state.revoke("acme.net", "env:HOME")
        view = host.info("acme.net")["permissions"]
        assert view["at_next_start"] == {"gains": [], "loses": ["env:HOME"]}
        assert view["effective"] == view["in_force"] == ["read:/srv/data", "env:HOME"]


async def test_a_plugin_that_has_not_started_shows_what_it_will_get(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.lazy", extra='activation = ["on-call"]\n[permissions]\nenv = ["HOME"]\n')
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        assert str(host.plugin("acme.lazy").state) == "on-demand"
        done = await host.grant("acme.lazy", "env:HOME")
        assert not done["restarted"]
        view = host.info("acme.lazy")["permissions"]
        assert view["pending"] == [] and view["effective"] == ["env:HOME"]
        assert view["in_force"] is None  # no worker of it runs


async def test_trusting_a_plugin_s_code_is_shown_as_where_its_host_permission_comes_from(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.trusted", extra='[permissions]\nhost = ["metrics-read"]\n')
    async with Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, inline=["acme.*"]
    ) as host:
        with pytest.raises(PluginStateError, match="because the host trusts the plugin's code"):
            await host.revoke("acme.trusted", "host:metrics-read")
        view = host.info("acme.trusted")["permissions"]
        (grant,) = view["grants"]
        assert (grant["permission"], grant["source"]) == ("host:metrics-read", "trust")
        assert "inline = 'acme.*'" in grant["where"] and view["in_force"] == ["host:metrics-read"]
