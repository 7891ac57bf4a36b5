"""A sandboxed plugin's own metrics in its worker: the host's ``[policy.bounds]
metric-series`` is the worker's too, so a series past it is dropped there and said in the
plugin's log, never sent for the host to drop; the plugin serves on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from plugbay.runtime.host import Host
from tests._waiting import until
from tests.conftest import PluginFactory

METERED = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        self.metrics = context.metrics

    @command
    def series(self, n: int) -> int:
        for i in range(n):
            self.metrics.gauge("wide", i, user=str(i))
        return n
"""


async def test_a_series_past_the_metric_series_bound_is_dropped_in_the_worker(
    plugins: PluginFactory, tmp_path: Path, make_host: Callable[..., Host]
) -> None:
    plugins("acme.metered", METERED)
    config = tmp_path / "plugbay.toml"
    config.write_text('[policy.bounds.plugins."acme.metered"]\nmetric-series = 5\n')
    host = make_host(inline=[], config_file=config, init_timeout=30.0, monitor={"interval": 0.1})
    async with host:
        record = host.plugin("acme.metered")
        assert record.placement is not None and record.placement.sandboxed
        pid = record.handle.pid
        # the 6th and 7th label sets are past the bound: the write does not fail
        assert await host.call("acme.metered", "series", n=7) == 7

        def figures() -> dict[str, object] | None:
            metrics = host.info("acme.metered")["metrics"]
            return metrics if metrics["dropped_series"].get("wide") == 2 else None

        metrics = await until(figures, "the dropped series counted by the worker")
        assert len(metrics["gauges"]) == 5
        said = await until(
            lambda: (
                [r["message"] for r in host.logs("acme.metered") if "was refused" in r["message"]]
                or None
            ),
            "the drop said in the plugin's log",
        )
        assert len(said) == 1
        assert "the plugin's metrics already have 5 label sets in all" in said[0]
        assert "[policy.bounds] metric-series" in said[0]
        # the worker sent no series past the bound: the host had none to drop
        assert host.manager.budgets["acme.metered"].dropped["metric_series"] == 0
        assert host.plugin("acme.metered").handle.pid == pid
