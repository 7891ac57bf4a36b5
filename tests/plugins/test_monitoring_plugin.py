"""core.monitoring: health from the host's own view, on a real host over copies of the
bundled plugins."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest

from plugbay import PluginCallError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

FLAKY = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def work(self, fail: bool = False) -> str:
        if fail:
            raise OSError("disk on fire")
        return "ok"
"""

BROKEN = """
from plugbay import UtilityPlugin

class P(UtilityPlugin):
    async def initialize(self, context):
        raise RuntimeError("cannot open the database")
"""

# Ordered after core.monitoring (same level, later id): its failure event reaches it.
NEEDS_LOGGING = '[dependencies]\n"system.logging" = "^1.0"\n'


@pytest.fixture
def tree(plugins: PluginFactory) -> PluginFactory:
    plugins.copy_bundled("core/system", "core/monitoring")
    plugins("acme.flaky", FLAKY)
    return plugins


def start(tree: PluginFactory, tmp_path: Path, **config: Any) -> Host:
    return Host(
        tree.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        config={"core.monitoring": config} if config else None,
    )


async def work(host: Host, *fails: bool) -> None:
    for fail in fails:
        with contextlib.suppress(PluginCallError):
            await host.call("acme.flaky", "work", fail=fail)


def by_id(report: Any) -> dict[str, Any]:
    return {p.id: p for p in report.plugins}


async def test_failing_disabled_degraded_and_overall(
    tree: PluginFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree("zeta.broken", BROKEN, extra=NEEDS_LOGGING)
    with caplog.at_level(logging.WARNING, logger="plugbay.plugin.core.monitoring"):
        async with start(tree, tmp_path) as host:
            await host.events.drain()
            report = await host.call("core.monitoring", "report")
            plugins = by_id(report)
            broken = plugins["zeta.broken"]
            assert (broken.state, broken.status) == ("failed", "failing")
            assert broken.reason.startswith(
                "plugin 'zeta.broken': initialize raised RuntimeError: cannot open the database"
            )
            assert {plugins[p].status for p in ("acme.flaky", "system.logging")} == {"green"}
            assert (report.overall, report.failures_seen) == ("failing", 1)
            assert await host.call("core.monitoring", "status") == "failing"

            # disabled: shown apart, and no longer part of the overall status
            await host.disable("zeta.broken", "waiting for a new database")
            report = await host.call("core.monitoring", "report")
            assert by_id(report)["zeta.broken"].status == "disabled"
            assert by_id(report)["zeta.broken"].reason == "waiting for a new database"
            assert report.disabled == ["zeta.broken"]
            assert report.overall == "green"

            # a command that raises: its recent calls are failing
            await work(host, False, True)
            report = await host.call("core.monitoring", "report")
            flaky = by_id(report)["acme.flaky"]
            assert (flaky.status, flaky.calls, flaky.errors) == ("degraded", 2, 1)
            assert flaky.reason == "1 of its last 2 calls failed (within 60 s)"
            assert report.overall == "degraded"
            assert await host.call("core.monitoring", "status") == "degraded"

            # unloaded: shown as stopped, not rated
            await host.unload("acme.flaky")
            report = await host.call("core.monitoring", "report")
            assert by_id(report)["acme.flaky"].status == "stopped"
            assert report.overall == "green"
    warnings = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("plugin zeta.broken failed: plugin 'zeta.broken'") for m in warnings)


async def test_error_rate_over_enough_calls(tree: PluginFactory, tmp_path: Path) -> None:
    async with start(
        tree, tmp_path, **{"error-rate-degraded": 0.25, "min-calls": 4, "window": 0.5}
    ) as host:
        await work(host, True, False, False)
        await asyncio.sleep(0.6)  # the failure is no longer recent; 3 calls are too few
        flaky = by_id(await host.call("core.monitoring", "report"))["acme.flaky"]
        assert (flaky.status, flaky.recent_calls, flaky.error_rate) == ("green", 0, 1 / 3)
        await work(host, False)  # 1 in 4 = 25 %, over enough calls
        flaky = by_id(await host.call("core.monitoring", "report"))["acme.flaky"]
        assert (flaky.status, flaky.calls, flaky.error_rate) == ("degraded", 4, 0.25)
        assert flaky.reason == "error rate 25.0% over 4 calls is at or above 25.0%"
        await work(host, *[False] * 4)  # 1 in 8
        assert await host.call("core.monitoring", "status") == "green"


async def test_recent_failures_fade_after_the_window(tree: PluginFactory, tmp_path: Path) -> None:
    async with start(tree, tmp_path, **{"min-calls": 1000, "window": 0.5}) as host:
        await work(host, *[False] * 50)
        await asyncio.sleep(0.6)  # the 50 good calls are history now
        await work(host, True)  # 1 of 51 overall, but 1 of 1 recently
        flaky = by_id(await host.call("core.monitoring", "report"))["acme.flaky"]
        assert (flaky.status, flaky.recent_calls, flaky.recent_errors) == ("degraded", 1, 1)
        await asyncio.sleep(0.6)
        assert await host.call("core.monitoring", "status") == "green"


async def test_a_bad_threshold_fails_the_plugin_not_the_host(
    tree: PluginFactory, tmp_path: Path
) -> None:
    async with start(tree, tmp_path, **{"error-rate-degraded": 2}) as host:
        rec = host.plugin("core.monitoring")
        assert str(rec.state) == "failed"
        assert "error-rate-degraded" in (rec.reason or "")
        assert await host.call("acme.flaky", "work") == "ok"
