"""Shadow (plugbay.runtime.shadow): live calls mirrored to a new version in a sandboxed
worker with a scratch data directory; its answers compared, never returned."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from plugbay import PlugbayError, PluginStateError
from plugbay.runtime.host import Host
from tests._trials import calc, ended, expected_wrong
from tests._waiting import until
from tests.conftest import PluginFactory


async def _settled(host: Host, plugin_id: str, mirrored: int) -> dict[str, object]:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        summary = host.trials.shadow_status(plugin_id)
        if summary["mirrored"] >= mirrored:
            return summary
        await asyncio.sleep(0.02)
    raise AssertionError(f"the shadow compared {summary['mirrored']} of {mirrored} calls")


async def test_a_shadow_shows_where_the_new_version_differs_and_callers_never_see_it(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host(inline=[]) as host:
        await host.call("acme.calc", "remember", text="before")
        host.install(calc(tmp_path / "src", "1.1.0", wrong=True))
        started = await host.trials.shadow("acme.calc")
        assert started["from"] == "1.0.0" and started["to"] == "1.1.0"
        shadow = host.trials.shadows["acme.calc"]
        assert shadow.handle is not None and shadow.handle.pid is not None
        worker = psutil.Process(shadow.handle.pid)
        scratch = tmp_path / "state" / "shadows" / "acme.calc"
        answers = []
        for a in range(30):  # paced: each mirrored before the next (none dropped)
            answers.append(await host.call("acme.calc", "add", a=a, b=1, token="pw"))
            await _settled(host, "acme.calc", a + 1)
        # every caller had the serving version's answer, errors of the shadow included
        assert answers == [a + 1 for a in range(30)]
        assert await host.call("acme.calc", "remember", text="during") == 2
        summary = await _settled(host, "acme.calc", 31)
        assert summary["dropped"] == 0
        add = summary["commands"]["add"]  # type: ignore[index]
        raises = [a for a in range(30) if expected_wrong(a, 1) is None]
        off = [a for a in range(30) if a not in raises and expected_wrong(a, 1) != a + 1]
        assert (add["new_errors"], add["differ"]) == (len(raises), len(off))
        assert add["same"] == 30 - len(raises) - len(off)
        example = add["examples"][0]
        assert example["params"] == {"a": 0, "b": 1, "token": "<redacted>"}
        # the shadow wrote into its copy (it had the note from before), not the live store
        assert summary["commands"]["remember"]["same"] == 1  # type: ignore[index]
        assert await host.call("acme.calc", "recalled") == 2
        assert scratch.is_dir()
        with pytest.raises(PluginStateError, match="a shadow running already"):
            await host.trials.shadow("acme.calc")
        stopped = await host.trials.stop_shadow("acme.calc")
        assert stopped["state"] == "stopped"
        # killed as the shadow stopped; its exit is the kernel's, a moment later
        await until(lambda: ended(worker), "the shadow's worker ended", seconds=10)
        assert not scratch.exists()
        # the serving version and its data are as they were
        assert host.plugin("acme.calc").version == "1.0.0"
        assert await host.call("acme.calc", "recalled") == 2
        assert host.trials.shadow_status("acme.calc")["differences"] == len(raises) + len(off)
        actions = [(e.action, e.result) for e in host.history("acme.calc", limit=50)]
        assert ("shadow", "stopped") in actions


async def test_a_shadow_needs_a_newer_installed_version(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host() as host:
        with pytest.raises(PlugbayError, match="newest version installed"):
            await host.trials.shadow("acme.calc")
        assert "acme.calc" not in host.trials.shadows
        assert await host.call("acme.calc", "add", a=1, b=1) == 2


async def test_asking_for_a_shadow_while_a_canary_runs_names_the_canary_and_how_to_stop_it(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host(inline=[]) as host:
        host.install(calc(tmp_path / "src", "1.2.0"))
        await host.trials.canary("acme.calc")
        # 'plugbay shadow ID' while the canary runs: not "start one", which is refused
        with pytest.raises(PluginStateError) as shown:
            host.trials.shadow_status("acme.calc")
        assert "a canary of 1.2.0 runs instead" in shown.value.message
        assert shown.value.hint is not None
        assert "'plugbay canary acme.calc --stop'" in shown.value.hint
        with pytest.raises(PluginStateError, match="a shadow cannot start until the canary ends"):
            await host.trials.shadow("acme.calc")
        with pytest.raises(PluginStateError, match="a second canary cannot start"):
            await host.trials.canary("acme.calc")
        assert await host.call("acme.calc", "add", a=2, b=2) == 4  # callers still answered
        await host.trials.stop_canary("acme.calc")
        assert (await host.trials.wait_canary("acme.calc", timeout=30))["state"] == "rolled-back"
        with pytest.raises(PluginStateError, match="has no shadow running"):
            host.trials.shadow_status("acme.calc")
        started = await host.trials.shadow("acme.calc")  # the canary ended: a shadow starts
        assert started["to"] == "1.2.0"
        with pytest.raises(PluginStateError) as stopped:
            await host.trials.stop_canary("acme.calc")
        assert "a shadow of 1.2.0 runs instead" in stopped.value.message
        await host.trials.stop_shadow("acme.calc")
