"""``PUT …/config`` through a real host and server when the change only sets a key kept
aside for another installed version: the answer says it was kept for that version and
not applied, as ``plugbay config`` does; and what a rollback would serve, per plugin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._running import plugbay_run
from tests._served import api_served
from tests.conftest import PluginFactory
from tests.test_upgrade_choices import COUNTS_HOOKS, HOOK, NEEDS_URL, _configured


async def test_a_change_of_a_kept_key_alone_says_it_was_kept_not_applied(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    svc = _configured(plugins.root / "svc", "1.0.0", '[config.greeting]\ntype = "string"\n')
    (svc / "main.py").write_text(COUNTS_HOOKS.format(hook=HOOK))
    async with make_host() as host, api_served(host) as (url, token):
        host.install(_configured(tmp_path / "v2", "2.0.0", NEEDS_URL))
        before = await host.call("acme.svc", "seen")
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            path = "/api/v1/plugins/acme.svc/config"
            kept = await http.put(path, json={"values": {"api-url": "https://api.example"}})
            assert kept.status_code == 200, kept.text
            answer = kept.json()
            assert answer["unchanged"] is True  # not applied: 1.0.0 does not declare it
            assert answer["kept"] == {
                "api-url": {"value": "https://api.example", "version": "2.0.0", "type": "string"}
            }
            assert answer["pending"] is None and answer["config"] == {"greeting": None}
            assert await host.call("acme.svc", "seen") == before  # no hook ran, no reload
            # a key the serving version declares is applied, the kept one stays kept
            both = {"api-url": "https://api.example", "greeting": "Hi"}
            applied = (await http.put(path, json={"values": both})).json()
            assert applied["unchanged"] is False and applied["config"] == {"greeting": "Hi"}
            assert (await host.call("acme.svc", "seen"))["hooked"] == 1
            # sending the same values again changes nothing the serving version runs with
            again = (await http.put(path, json={"values": both})).json()
            assert again["unchanged"] is True
            assert (await host.call("acme.svc", "seen"))["hooked"] == 1


async def test_each_plugin_row_says_what_a_rollback_would_serve(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    _configured(plugins.root / "svc", "1.0.0")
    async with (
        make_host() as host,
        api_served(host) as (url, token),
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http,
    ):
        [row] = (await http.get("/api/v1/plugins")).json()
        assert row["rollback_to"] is None  # only 1.0.0 ever served
        refused = await http.post("/api/v1/plugins/acme.svc/rollback", json={})
        assert refused.status_code == 409
        assert "has no earlier version to roll back to" in refused.json()["error"]["message"]
        host.install(_configured(tmp_path / "v2", "2.0.0"))
        up = await http.post("/api/v1/plugins/acme.svc/upgrade", json={})
        assert up.status_code == 200, up.text
        [row] = (await http.get("/api/v1/plugins")).json()
        assert (row["version"], row["rollback_to"]) == ("2.0.0", "1.0.0")
        back = await http.post("/api/v1/plugins/acme.svc/rollback", json={})
        assert back.status_code == 200, back.text
        assert back.json()["plugin"]["version"] == "1.0.0"
        assert back.json()["plugin"]["rollback_to"] == "2.0.0"
        # the detail keeps the shape `plugbay info --json` documents
        detail = (await http.get("/api/v1/plugins/acme.svc")).json()
        assert "rollback_to" not in detail


def test_a_key_of_a_version_installed_since_the_start_is_kept_not_refused(
    tmp_path: Path,
) -> None:
    _configured(tmp_path / "plugins" / "svc", "1.0.0")
    with plugbay_run(tmp_path) as host:
        installed = plugbay("install", str(_configured(tmp_path / "v2", "2.0.0", NEEDS_URL)),
                            cwd=tmp_path)  # fmt: skip
        assert installed.returncode == 0, installed.stderr
        with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as http:
            put = http.put(
                "/api/v1/plugins/acme.svc/config", json={"values": {"api-url": "https://a"}}
            )
            assert put.status_code == 200, put.text  # was: 422 unknown config key 'api-url'
            assert put.json()["unchanged"] is True
            assert put.json()["kept"]["api-url"]["version"] == "2.0.0"
        # the CLI, through the running host, says the same
        said = " ".join(plugbay("config", "acme.svc", "api-url=https://b", cwd=tmp_path)
                        .stdout.split())  # fmt: skip
        assert "the serving version declares none of api-url" in said
