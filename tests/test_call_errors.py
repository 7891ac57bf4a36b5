"""Errors with the right class: a caller's mistake is a 4xx and not the plugin's error, a
plugin's failure a 5xx naming its exception, and the monitor's health probes are not calls.

A real host (inline and a sandboxed worker) behind the real HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay import MetricError
from plugbay.monitor.metrics import PluginMetrics
from plugbay.runtime.host import Host
from tests._served import api_served
from tests.conftest import PluginFactory

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b

    @command
    def boom(self) -> int:
        raise KeyError("no luck")

    @command
    def health(self) -> bool:
        return True

    @command
    def pack(self, items: int) -> int:
        self.context.metrics.histogram("batch_size", [1, 10, 100])
        self.context.metrics.observe("batch_size", items)
        return items
"""


@pytest.fixture(params=["inline", "process"])
async def served(
    request: pytest.FixtureRequest, plugins: PluginFactory, tmp_path: Path
) -> AsyncIterator[tuple[Host, httpx.AsyncClient]]:
    isolation = str(request.param)
    plugins("acme.calc", CALC, extra=f'isolation = "{isolation}"\n')
    host = Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, init_timeout=20,
        inline=["*"] if isolation == "inline" else [],
    )  # fmt: skip
    async with (
        host,
        api_served(host) as (url, token),
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http,
    ):
        yield host, http


def figures(host: Host, command: str) -> dict[str, Any]:
    metrics = host.info("acme.calc")["metrics"]
    return metrics["commands"].get(command, {"calls": 0, "errors": 0})  # type: ignore[no-any-return]


async def test_a_callers_mistake_is_4xx_and_not_the_plugins_error(
    served: tuple[Host, httpx.AsyncClient],
) -> None:
    host, http = served
    url = "/api/v1/plugins/acme.calc/commands"
    assert (await http.post(f"{url}/add", json={"a": 1})).json() == {"result": 2}
    wrong = await http.post(f"{url}/add", json={"a": "one"})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "parameter_invalid"
    missing = await http.post(f"{url}/add", json={})
    assert missing.status_code == 422
    unknown = await http.post(f"{url}/subtract", json={})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "command_not_found"
    add = figures(host, "add")
    assert add["errors"] == 0 and add["errors_by_type"] == {}
    assert "subtract" not in host.info("acme.calc")["metrics"]["commands"]
    assert b'plugbay_plugin_errors_total{command="add"' not in host.render_metrics()


async def test_a_plugin_failure_is_5xx_with_its_error_type_and_counted(
    served: tuple[Host, httpx.AsyncClient],
) -> None:
    host, http = served
    r = await http.post("/api/v1/plugins/acme.calc/commands/boom")
    assert 500 <= r.status_code < 600
    error = r.json()["error"]
    assert error["code"] == "plugin_raised" and error["details"]["exception"] == "KeyError"
    assert figures(host, "boom")["errors"] == 1
    assert (await http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 1})).json() == {
        "result": 2
    }


async def test_health_probes_are_not_counted_as_calls(
    served: tuple[Host, httpx.AsyncClient],
) -> None:
    host, _ = served
    monitor = host.monitor
    assert monitor is not None
    for _ in range(3):
        readiness = await monitor.check_readiness("acme.calc")
        assert readiness is not None and readiness.status == "green"
    assert figures(host, "health")["calls"] == 0
    # a caller's own call of the command is one
    assert await host.call("acme.calc", "health") is True
    assert figures(host, "health")["calls"] == 1


async def test_a_custom_histogram_takes_its_own_buckets(
    served: tuple[Host, httpx.AsyncClient],
) -> None:
    host, _ = served
    for items in (1, 7, 50, 500):
        await host.call("acme.calc", "pack", items=items)

    def exported() -> str:
        return host.render_metrics().decode()

    prefix = 'plugbay_custom_batch_size_bucket{le="'
    want = ['1.0"', '10.0"', '100.0"', '+Inf"']
    async with asyncio.timeout(30):  # a worker's figures come with its heartbeat
        while 'plugbay_custom_batch_size_count{plugin="acme.calc",version="1.0.0"} 4.0' not in (  # noqa: ASYNC110
            exported()
        ):
            await asyncio.sleep(0.05)
    lines = [line for line in exported().splitlines() if line.startswith("plugbay_custom_batch")]
    buckets = [line.split(prefix)[1].split(",")[0] for line in lines if prefix in line]
    assert buckets == want, lines
    counts = [float(line.rsplit(" ", 1)[1]) for line in lines if prefix in line]
    assert counts == [1.0, 2.0, 3.0, 4.0]


def test_bad_buckets_are_a_clear_error() -> None:
    metrics = PluginMetrics("acme.unit")
    with pytest.raises(MetricError, match="finite, increasing bucket bounds"):
        metrics.histogram("h", [10, 1])
    with pytest.raises(MetricError, match="finite, increasing bucket bounds"):
        metrics.histogram("h", [])
    metrics.observe("h", 3)
    with pytest.raises(MetricError, match="already observed with other buckets"):
        metrics.histogram("h", [1, 2])


def test_calling_a_plugin_that_failed_to_start_says_so_in_words(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """``plugbay call`` on a plugin whose initialize raised: what happened to it (it
    failed to start), why, and where to look; not the state machine's "is failed, not
    active"."""
    from tests._cli import plugbay

    plugins(
        "acme.broken",
        "from plugbay import UtilityPlugin, command\n\nclass P(UtilityPlugin):\n"
        "    async def initialize(self, context):\n"
        "        raise RuntimeError('the database is not there')\n\n"
        "    @command\n    def ping(self) -> str:\n        return 'pong'\n",
    )
    args = ("call", "acme.broken", "ping", "--plugins", str(plugins.root), "--state", "st")
    shown = plugbay(*args, cwd=tmp_path)
    assert shown.returncode == 1
    said = " ".join(shown.stderr.split())
    assert said.startswith(
        "error: plugin 'acme.broken': failed to start: initialize raised RuntimeError: the "
        "database is not there"
    ), said
    assert "see 'plugbay info acme.broken'" in said and "not active" not in said
