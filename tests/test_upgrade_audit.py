"""What an operator upgrading plugins on a running host met, and now meets instead: a
rollback after ``upgrade --with-dependents``, a rollback after a bisect, a swap while a
canary or shadow compares with the serving version, ``plugbay canary`` after a shadow,
a version the API refuses, and a new version's config schema refusing a value set with
``plugbay config``."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay import PlugbayError, PluginStateError
from plugbay.runtime.bisect import bisect_versions, call_check
from plugbay.runtime.canary import CanarySettings
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._running import plugbay_run
from tests._served import api_served
from tests._trials import calc
from tests.conftest import PluginFactory
from tests.test_cli_json import documented, same_shape

COUNTER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    @command
    def bump(self) -> int:
        self.n += 1
        return self.n

    @command
    def which(self) -> str:
        return "{pid} {version}"

    def export_state(self) -> dict[str, int]:
        return {{"n": self.n}}

    def import_state(self, state: dict[str, int]) -> None:
        self.n = state["n"]
"""


def _plugin(directory: Path, pid: str, version: str, extra: str = "") -> Path:
    """A counter plugin ``pid`` at ``version`` that keeps its count across swaps."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plugin.toml").write_text(
        f'id = "{pid}"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n'
        + textwrap.dedent(extra)
    )
    (directory / "main.py").write_text(textwrap.dedent(COUNTER.format(pid=pid, version=version)))
    return directory


def _pair(plugins_root: Path, versions: Path) -> None:
    """acme.base 1.0.0 and acme.app 1.0.0 (needs base ^1) serving; base 2.0.0 and app
    2.0.0 (needs base ^2) in ``versions``, to install."""
    _plugin(plugins_root / "base", "acme.base", "1.0.0")
    _plugin(plugins_root / "app", "acme.app", "1.0.0", '[dependencies]\n"acme.base" = "^1"\n')
    _plugin(versions / "base-2", "acme.base", "2.0.0")
    _plugin(versions / "app-2", "acme.app", "2.0.0", '[dependencies]\n"acme.base" = "^2"\n')


def _versions(host: Host) -> dict[str, str | None]:
    return {r.id: r.version for r in host.plugins() if str(r.state) == "active"}


async def test_an_upgrade_with_dependents_is_rolled_back_with_its_dependents(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    _pair(plugins.root, tmp_path / "v")
    async with make_host() as host:
        assert await host.call("acme.base", "bump") == 1
        host.install(tmp_path / "v" / "base-2")
        host.install(tmp_path / "v" / "app-2")
        await host.upgrade("acme.base", "2.0.0", with_dependents=True)
        assert _versions(host) == {"acme.base": "2.0.0", "acme.app": "2.0.0"}
        assert await host.call("acme.base", "bump") == 2
        # alone, the rollback is refused naming the dependent, and says what works
        with pytest.raises(PlugbayError) as refused:
            await host.rollback("acme.base")
        assert "'acme.app' 2.0.0 requires 'acme.base' ^2" in refused.value.message
        assert "'plugbay rollback acme.base --to 1.0.0 --with-dependents'" in str(refused.value)
        assert _versions(host) == {"acme.base": "2.0.0", "acme.app": "2.0.0"}
        # with its dependents, both go back, each to the version it had, state and all
        await host.manager.rollback_plugin("acme.base", with_dependents=True)
        assert _versions(host) == {"acme.base": "1.0.0", "acme.app": "1.0.0"}
        assert await host.call("acme.app", "which") == "acme.app 1.0.0"
        assert await host.call("acme.base", "bump") == 3
        moves = [
            (e.plugin_id, e.action, e.details.get("from"), e.details.get("to"))
            for e in host.history(limit=4)
            if e.result == "ok"
        ]
        assert ("acme.base", "rollback", "2.0.0", "1.0.0") in moves
        assert ("acme.app", "rollback", "2.0.0", "1.0.0") in moves


async def test_a_rollback_after_a_bisect_returns_to_the_version_before_the_upgrade(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host() as host:
        for version, wrong in (("1.1.0", False), ("1.2.0", True), ("1.3.0", True)):
            host.install(calc(tmp_path / version, version, wrong=wrong))
        await host.upgrade("acme.calc", "1.1.0")
        await host.upgrade("acme.calc", "1.3.0")  # the operator's last move: 1.1.0 → 1.3.0

        async def call(pid: str, command: str, params: dict[str, Any]) -> Any:
            return await host.call_with(pid, command, params)

        check = call_check(call, "acme.calc", "add", {"a": 5, "b": 1}, "6")
        result = await bisect_versions(host.trials.bisect, "acme.calc", check, lambda s: None)
        assert result.culprit == "acme.calc 1.2.0" and result.restored
        assert host.plugin("acme.calc").version == "1.3.0"
        # the bisect's trials are in the history as what they were, not as rollbacks
        tried = [e for e in host.history("acme.calc", limit=20) if e.action == "bisect"]
        assert {e.version for e in tried} >= {"1.0.0", "1.2.0", "1.3.0"}
        # and the operator's rollback goes where it went before the bisect: 1.1.0, not
        # the last version the bisect tried (1.2.0, the broken one)
        rec = await host.rollback("acme.calc")
        assert rec.version == "1.1.0"
        assert await host.call("acme.calc", "add", a=5, b=1) == 6


async def test_a_plugin_under_a_shadow_or_canary_is_not_swapped_until_it_ends(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host() as host:
        for version in ("1.1.0", "1.2.0"):
            host.install(calc(tmp_path / version, version))
        await host.trials.shadow("acme.calc", "1.1.0")
        # an upgrade now would leave the shadow comparing 1.1.0 with 1.1.0 as "1.0.0"
        with pytest.raises(PluginStateError) as refused:
            await host.upgrade("acme.calc", "1.2.0")
        assert "has a shadow of 1.1.0 running" in refused.value.message
        assert refused.value.hint == (
            "wait for the shadow to end, or stop it first: 'plugbay shadow acme.calc --stop'"
        )
        with pytest.raises(PluginStateError) as busy:  # a canary beside it: the same words
            await host.trials.canary("acme.calc", "1.1.0")
        assert "'plugbay shadow acme.calc --stop'" in str(busy.value.hint)
        assert host.plugin("acme.calc").version == "1.0.0"
        assert host.trials.shadow_status("acme.calc")["from"] == "1.0.0"
        await host.trials.stop_shadow("acme.calc")
        # a canary: a rollback waits for it too, and its own promotion is not held back
        # (judged on errors alone: the same code's latency differs by noise only)
        settings = CanarySettings(share=0.5, window_calls=20, min_calls=2, max_latency_ratio=1e3)
        await host.trials.canary("acme.calc", "1.2.0", settings)
        with pytest.raises(PluginStateError, match=r"has a canary of 1\.2\.0 running"):
            await host.upgrade("acme.calc", "1.1.0")
        for a in range(40):
            assert await host.call("acme.calc", "add", a=a, b=1) == a + 1
            if "acme.calc" not in host.trials.canaries:
                break
        summary = await host.trials.wait_canary("acme.calc", timeout=30)
        assert summary["state"] == "promoted", summary["reason"]
        assert host.plugin("acme.calc").version == "1.2.0"


async def test_the_api_answers_canary_status_after_a_shadow_and_names_a_bad_version(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host() as host, api_served(host) as (url, token):
        host.install(calc(tmp_path / "1.1.0", "1.1.0"))
        await host.trials.shadow("acme.calc")
        await host.trials.stop_shadow("acme.calc")
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=auth) as client:
            # 'plugbay canary ID' after a shadow ended: there is no canary, not a host bug
            status = await client.get("/api/v1/plugins/acme.calc/canary")
            assert status.status_code == 409, status.text
            assert status.json()["error"]["message"] == "has no canary running"
            # 'plugbay upgrade ID 1.9' beside a running host: a version, in words
            for op, body in (("upgrade", {"version": "1.9"}), ("rollback", {"to": "latest"})):
                bad = await client.post(f"/api/v1/plugins/acme.calc/{op}", json=body)
                assert bad.status_code == 422
                message = bad.json()["error"]["message"]
                value = next(iter(body.values()))
                assert f"'{value}' is not a SemVer 2.0.0 version: write MAJOR.MINOR.PATCH" in (
                    message
                )
                assert "should match pattern" not in message
        assert host.plugin("acme.calc").version == "1.0.0"


async def test_a_new_config_schema_refusing_a_run_time_value_says_how_to_drop_it(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    schema = '[config.mode]\ntype = "string"\ndefault = "{d}"\nenum = ["{d}", "{e}"]\n'
    _plugin(plugins.root / "ctr", "acme.ctr", "1.0.0", schema.format(d="a", e="b"))
    async with make_host() as host:
        await host.set_config("acme.ctr", {"mode": "b"})  # 'plugbay config acme.ctr mode=b'
        host.install(_plugin(tmp_path / "v2", "acme.ctr", "2.0.0", schema.format(d="x", e="y")))
        with pytest.raises(PlugbayError) as refused:
            await host.upgrade("acme.ctr", "2.0.0")
        # not "host config": no file has it; where it is, and how to drop it there
        assert refused.value.where == "run-time config set with 'plugbay config acme.ctr': mode"
        assert "'plugbay config acme.ctr --unset mode'" in str(refused.value.hint)
        assert host.plugin("acme.ctr").version == "1.0.0"
        await host.set_config("acme.ctr", {})  # what --unset does
        await host.upgrade("acme.ctr", "2.0.0")
        assert host.plugin("acme.ctr").config == {"mode": "x"}


@pytest.mark.slow
def test_rollback_with_dependents_beside_a_running_host(tmp_path: Path) -> None:
    _pair(tmp_path / "plugins", tmp_path / "v")
    with plugbay_run(tmp_path):
        for name in ("base-2", "app-2"):
            installed = plugbay("install", str(tmp_path / "v" / name), cwd=tmp_path)
            assert installed.returncode == 0, installed.stderr
        up = plugbay("upgrade", "acme.base", "--with-dependents", cwd=tmp_path)
        assert up.returncode == 0, up.stderr
        alone = plugbay("rollback", "acme.base", cwd=tmp_path)
        assert alone.returncode == 1
        assert "'plugbay rollback acme.base --to 1.0.0 --with-dependents'" in alone.stderr
        back = plugbay("rollback", "acme.base", "--with-dependents", "--json", cwd=tmp_path)
        assert back.returncode == 0, back.stderr
        answer = json.loads(back.stdout)
        same_shape(answer, documented()["rollback"], "rollback")
        assert (answer["from"], answer["to"]) == ("2.0.0", "1.0.0")
        assert answer["dependents"] == {"acme.app": {"from": "2.0.0", "to": "1.0.0"}}
        shown = plugbay("call", "acme.app", "which", cwd=tmp_path)
        assert shown.stdout.strip() == "acme.app 1.0.0"
