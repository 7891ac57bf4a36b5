"""What a plugin can make /metrics hold, scraped over HTTP from a real host: the
``error`` label's values are a bounded set, the same inline and in a worker; a plugin's
own metrics are capped in names and series; a gauge outlives the worker that set it;
uptime is the serving version's."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugbay import PlugbayError
from plugbay.isolation.policy import IsolationPolicy
from plugbay.monitor.metrics import MAX_NAMES, OVER_NAMES
from plugbay.runtime.host import Host
from plugbay.runtime.prometheus import serve_metrics
from tests._waiting import until
from tests.conftest import PluginFactory

FAST = {"interval": 0.1, "health-interval": 0.2}

FAILING = """
from plugbay import UtilityPlugin, command, PermissionDenied, PlugbayError

class Made(PlugbayError):
    code = "made_up"

class P(UtilityPlugin):
    @command
    def fail(self, n: int) -> int:
        if n == 0:
            raise ValueError("a built-in class")
        if n == 1:
            raise PermissionDenied("denied, says the plugin")
        if n == 2:
            raise type("Made", (Made,), {"code": f"made_{n}"})("its own plugbay error")
        raise type(f"Boom{n}", (Exception,), {})("a class made up per call")
"""

METERED = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        self.metrics = context.metrics

    @command
    def names(self, n: int) -> int:
        for i in range(n):
            self.metrics.increment(f"made_{i}")
        return n

    @command
    def series(self, names: int, labels: int) -> int:
        for i in range(names):
            for j in range(labels):
                self.metrics.gauge(f"wide_{i}", j, user=str(j))
        return names * labels

    @command
    def level(self, value: float) -> float:
        self.metrics.gauge("level", value)
        return value

    @command
    def tick(self) -> int:
        self.metrics.increment("ticks")
        return 1

    @command
    def declare(self, n: int) -> int:
        for i in range(n):
            self.metrics.histogram(f"sizes_{i}", [1, 10, 100])
        return n
"""


@asynccontextmanager
async def scraped(host: Host) -> AsyncIterator[Callable[[], Any]]:
    """The host's /metrics served on a free port; yields an awaitable scrape (text)."""
    server, port = serve_metrics(host.manager, 0, monitor=host.monitor)

    async def scrape() -> str:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert answer.status_code == 200, answer.text
        return answer.text

    try:
        yield scrape
    finally:
        server.shutdown()
        server.server_close()


def series(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of ``name`` in an exposition, by their labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def promtool_accepts(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make promtool` installs Debian's prometheus package"
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --------------------------------------------------------------------------- the error label


async def test_the_error_label_is_bounded_and_the_same_inline_and_in_a_worker(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.inline", FAILING)
    plugins("acme.boxed", FAILING, extra='isolation = "process"\n')
    async with make_host(monitor=FAST) as host, scraped(host) as scrape:
        for plugin in ("acme.inline", "acme.boxed"):
            for n in range(10):  # seven exception classes made up, one per call
                with pytest.raises(PlugbayError):
                    await host.call(plugin, "fail", n=n)
        text = await scrape()
    await promtool_accepts(text)
    errors = series(text, "plugbay_call_errors_total")

    def labels(plugin: str) -> dict[str, float]:
        return {dict(lb)["error"]: v for lb, v in errors.items() if dict(lb)["plugin"] == plugin}

    inline, boxed = labels("acme.inline"), labels("acme.boxed")
    # a built-in class by its name, its own classes as 'other' however many it makes
    # up, its own plugbay error by plugbay's class: in a worker as in the host
    assert inline["ValueError"] == boxed["ValueError"] == 1
    assert inline["other"] == boxed["other"] == 7
    assert inline["PlugbayError"] == boxed["PlugbayError"] == 1
    # a denial only the host may issue: a worker's claim of one is the plugin's own error
    # (the host judged it so); an inline plugin is trusted, and raised it in the host
    assert boxed["PluginCallError"] == 1 and "PermissionDenied" not in boxed
    assert inline["PermissionDenied"] == 1
    assert len(inline) == len(boxed) == 4


# --------------------------------------------------------------------------- a plugin's own metrics


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_a_plugin_making_up_metric_names_is_capped_and_told(
    plugins: PluginFactory, make_host: Callable[..., Host], isolation: str
) -> None:
    plugins("acme.metered", METERED, extra=f'isolation = "{isolation}"\n')
    async with make_host(monitor=FAST) as host, scraped(host) as scrape:
        assert await host.call("acme.metered", "names", n=3 * MAX_NAMES) == 3 * MAX_NAMES

        async def capped() -> str | None:
            text = await scrape()
            dropped = series(text, "plugbay_plugin_metric_series_dropped_total")
            over = {dict(lb)["metric"]: v for lb, v in dropped.items()}.get(OVER_NAMES)
            return text if over == 2 * MAX_NAMES else None

        text = await until(capped, "the names over the cap counted in /metrics")
        said = await until(
            lambda: [
                r["message"] for r in host.logs("acme.metered") if "was refused" in r["message"]
            ],
            "the refusal said in the plugin's log",
        )
    await promtool_accepts(text)
    made = {
        f.name for f in text_string_to_metric_families(text) if "plugbay_custom_made_" in f.name
    }
    assert len(made) == MAX_NAMES  # the first hundred names are kept, no more
    assert len(said) == 1  # said once, not per write
    assert "the counter 'made_100'" in said[0] and f"{MAX_NAMES} metric names" in said[0]
    assert OVER_NAMES in said[0]  # where what is dropped is counted


async def test_a_plugin_s_metrics_are_capped_in_label_sets_in_all(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.metered", METERED)
    async with make_host(monitor=FAST) as host, scraped(host) as scrape:
        # ten metrics of 90 label sets each: each under its own cap, 900 in all
        assert await host.call("acme.metered", "series", names=10, labels=90) == 900
        text = await scrape()
        said = [r["message"] for r in host.logs("acme.metered") if "was refused" in r["message"]]
    kept = sum(
        len(family.samples)
        for family in text_string_to_metric_families(text)
        if family.name.startswith("plugbay_custom_wide_")
    )
    assert kept == 500  # [policy.bounds] metric-series, its default
    dropped = series(text, "plugbay_plugin_metric_series_dropped_total")
    assert sum(dropped.values()) == 400
    assert len(said) == 1 and "500 label sets in all" in said[0]
    assert "[policy.bounds] metric-series" in said[0]


async def test_an_inline_plugin_s_metrics_are_capped_at_its_own_bound(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """An inline plugin's `[policy.bounds] metric-series` holds as a sandboxed one's: with
    5, its 6th label set is refused, in the words a worker's refusal uses."""
    plugins("acme.metered", METERED)
    bounds = {"plugins": {"acme.metered": {"metric-series": 5}}}
    policy = IsolationPolicy.from_config({"policy": {"bounds": bounds}}, inline=["acme.*"])
    async with make_host(monitor=FAST, policy=policy) as host, scraped(host) as scrape:
        assert host.info("acme.metered")["isolation"] == "inline"
        assert await host.call("acme.metered", "series", names=1, labels=6) == 6
        text = await scrape()
        said = [r["message"] for r in host.logs("acme.metered") if "was refused" in r["message"]]
    assert list(series(text, "plugbay_custom_wide_0")) == [
        (("plugin", "acme.metered"), ("user", str(j)), ("version", "1.0.0")) for j in range(5)
    ]
    dropped = series(text, "plugbay_plugin_metric_series_dropped_total")
    assert {dict(lb)["metric"]: v for lb, v in dropped.items()} == {"wide_0": 1.0}
    assert len(said) == 1 and "a new series of the gauge 'wide_0' was refused" in said[0]
    assert "5 label sets in all" in said[0] and "[policy.bounds] metric-series" in said[0]


async def test_a_plugin_declaring_histograms_without_end_is_refused(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.metered", METERED)
    async with make_host(monitor=FAST) as host:
        assert await host.call("acme.metered", "declare", n=MAX_NAMES) == MAX_NAMES
        with pytest.raises(PlugbayError) as refused:
            await host.call("acme.metered", "declare", n=MAX_NAMES + 1)
    said = str(refused.value)
    assert f"the histogram 'sizes_{MAX_NAMES}' cannot be declared" in said
    assert f"declared {MAX_NAMES} histograms already" in said


async def test_a_gauge_an_old_worker_set_is_kept_until_the_new_one_sets_it(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.metered", METERED, extra='isolation = "process"\n')
    async with make_host(monitor=FAST) as host, scraped(host) as scrape:

        async def figures(name: str, want: float) -> str | None:
            text = await scrape()
            got = series(text, name)
            return text if any(v == want for v in got.values()) else None

        await host.call("acme.metered", "level", value=7.0)
        await until(lambda: figures("plugbay_custom_level", 7.0), "the first worker's gauge")
        await host.reload("acme.metered")
        await host.call("acme.metered", "tick")  # the new worker sends figures, no gauge
        text = await until(lambda: figures("plugbay_custom_ticks_total", 1.0), "its figures")
        assert list(series(text, "plugbay_custom_level").values()) == [7.0]
        await host.call("acme.metered", "level", value=3.0)
        text = await until(lambda: figures("plugbay_custom_level", 3.0), "the new gauge")
        assert list(series(text, "plugbay_custom_level").values()) == [3.0]


# --------------------------------------------------------------------------- uptime


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_uptime_starts_again_when_a_reload_serves_a_new_version(
    plugins: PluginFactory, make_host: Callable[..., Host], isolation: str
) -> None:
    plugins("acme.metered", METERED, extra=f'isolation = "{isolation}"\n')
    async with make_host(monitor=FAST) as host, scraped(host) as scrape:

        def uptime() -> float:
            return float(host.info("acme.metered")["uptime_seconds"])

        await until(lambda: uptime() >= 1.0, "a second of uptime")
        await host.reload("acme.metered")
        info = host.info("acme.metered")
        text = await scrape()
    scraped_uptime = list(series(text, "plugbay_plugin_uptime_seconds").values())
    # the version now serving has served for less than the one before it had
    assert info["uptime_seconds"] < 1.0
    assert info["metrics"]["uptime_seconds"] < 1.0
    assert len(scraped_uptime) == 1 and scraped_uptime[0] < 1.0
