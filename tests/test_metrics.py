"""Prometheus exposition: what plugbay counts, in the text format, over HTTP and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugbay import PluginCallError
from plugbay.runtime.host import Host
from plugbay.runtime.prometheus import exposition, serve_metrics
from plugbay.web.token import TokenFile
from tests.conftest import PluginFactory

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def work(self, fail: bool = False) -> str:
        self.context.metrics.increment("cache-hits", 2)
        self.context.metrics.gauge("queue depth", 3)
        if fail:
            raise OSError("disk")
        return "ok"
"""


def fetch(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_calls_errors_durations_and_plugin_metrics(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.work", CODE, version="2.1.0")
    async with make_host() as host:
        for fail in (False, False, True):
            with contextlib.suppress(PluginCallError):
                await host.call("acme.work", "work", fail=fail)
        got = samples(exposition(host.manager).decode())
    who = (("command", "work"), ("plugin", "acme.work"), ("version", "2.1.0"))
    assert got[("plugbay_calls_total", who)] == 3
    assert got[("plugbay_call_errors_total", tuple(sorted((*who, ("error", "OSError")))))] == 1
    assert got[("plugbay_call_duration_seconds_count", who)] == 3
    assert got[("plugbay_call_duration_seconds_bucket", tuple(sorted((*who, ("le", "+Inf")))))] == 3
    assert got[("plugbay_plugin_up", (("plugin", "acme.work"), ("version", "2.1.0")))] == 1
    pv = (("plugin", "acme.work"), ("version", "2.1.0"))
    assert got[("plugbay_custom_cache_hits_total", pv)] == 6
    assert got[("plugbay_custom_queue_depth", pv)] == 3
    assert got[("plugbay_events_total", (("kind", "plugin.loaded"),))] >= 1


async def test_metrics_endpoint_serves_the_text_format(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.work", CODE)
    async with make_host() as host:
        await host.call("acme.work", "work")
        server, port = serve_metrics(host.manager, 0)
        try:
            status, content_type, text = await asyncio.to_thread(
                fetch, f"http://127.0.0.1:{port}/metrics"
            )
            assert status == 200
            assert content_type.startswith("text/plain")
        finally:
            server.shutdown()
    assert 'plugbay_calls_total{command="work",plugin="acme.work",version="1.0.0"} 1.0' in text


async def test_a_failed_scrape_names_its_request_id_in_the_answer_and_the_log(
    plugins: PluginFactory,
    make_host: Callable[..., Host],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import plugbay.runtime.prometheus as prometheus

    plugins("acme.work", CODE)
    async with make_host() as host:
        server, port = serve_metrics(host.manager, 0)
        try:
            # a page that is not /metrics says so, and carries the id the scraper sent
            asked = urllib.request.Request(
                f"http://127.0.0.1:{port}/other", headers={"X-Request-ID": "scrape-7"}
            )
            with pytest.raises(urllib.error.HTTPError) as missing:
                await asyncio.to_thread(urllib.request.urlopen, asked, timeout=10)
            assert missing.value.code == 404
            assert missing.value.headers["X-Request-ID"] == "scrape-7"
            assert "only /metrics is served here" in missing.value.read().decode()

            def broken(*_: object) -> bytes:
                raise RuntimeError("a collector broke")

            monkeypatch.setattr(prometheus, "exposition", broken)
            scrape = f"http://127.0.0.1:{port}/metrics"
            with (
                caplog.at_level(logging.ERROR, logger="plugbay.monitor.prometheus"),
                pytest.raises(urllib.error.HTTPError) as failed,
            ):
                await asyncio.to_thread(urllib.request.urlopen, scrape, timeout=10)
            assert failed.value.code == 500
            request_id = failed.value.headers["X-Request-ID"]
            assert request_id and len(request_id) == 16  # made by the host: none was sent
            body = failed.value.read().decode()
            assert "collecting metrics failed: a collector broke" in body
            assert f"under request {request_id}" in body
            logged = [r for r in caplog.records if request_id in r.getMessage()]
            assert logged and logged[0].exc_info is not None  # the traceback is kept
            # the host still serves: the next scrape, once the collector is back, works
            monkeypatch.undo()
            status, _, text = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics")
            assert status == 200 and "plugbay_plugin_up" in text
        finally:
            server.shutdown()


def test_plugbay_metrics_and_run_serve_it(plugins: PluginFactory, tmp_path: Path) -> None:
    plugins("acme.work", CODE)
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}

    def metrics_command() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "plugbay.cli", "metrics"], cwd=tmp_path, capture_output=True,
            text=True, timeout=60, env=env,
        )  # fmt: skip

    # no host: nothing to read, and none is started (not even a state directory is made)
    alone = metrics_command()
    assert alone.returncode == 1 and alone.stdout == ""
    assert "no host is running on" in alone.stderr
    assert not (tmp_path / ".plugbay").exists()
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugbay.cli", "run", "--metrics-port", "0",
         "--http", "127.0.0.1:0"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("metrics: "):
                url = line.split(" ", 1)[1].strip()
        assert url is not None and url.startswith("http://127.0.0.1:")
        # beside it, the command reads the host's own figures
        printed = metrics_command()
        assert printed.returncode == 0, printed.stderr
        assert ("plugbay_plugin_up", (("plugin", "acme.work"), ("version", "1.0.0"))) in samples(
            printed.stdout
        )
        # the metrics port asks for the API token, as the API does
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        assert "needs the host's API token" in refused.value.read().decode()
        token = TokenFile(tmp_path / ".plugbay").read()
        wrong = urllib.request.Request(url, headers={"Authorization": "Bearer nope"})
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(wrong, timeout=10)
        scrape = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(scrape, timeout=10) as response:
            assert "plugbay_plugin_info" in response.read().decode()
        _a_scoped_token_scrapes_until_revoked(url, tmp_path, env)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _a_scoped_token_scrapes_until_revoked(url: str, cwd: Path, env: dict[str, str]) -> None:
    """A read-scoped token scraped the API's /metrics but got 401 on the metrics port."""

    def plugbay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "plugbay.cli", *args], cwd=cwd, capture_output=True,
            text=True, timeout=60, env=env, check=True,
        )  # fmt: skip

    made = json.loads(plugbay("token", "create", "--scope", "call:acme.work", "--json").stdout)
    scrape = urllib.request.Request(url, headers={"Authorization": f"Bearer {made['token']}"})
    with urllib.request.urlopen(scrape, timeout=10) as response:  # every scope reads
        assert "plugbay_plugin_info" in response.read().decode()
    plugbay("token", "revoke", made["id"])
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(scrape, timeout=10)


@pytest.mark.parametrize("name", ["cache-hits", "queue depth", "9lives"])
def test_plugin_metric_names_are_made_valid(name: str) -> None:
    from plugbay.runtime.prometheus import _metric_name

    assert _metric_name(name)[0].isalpha() or _metric_name(name)[0] == "m"
    assert all(c.isalnum() or c == "_" for c in _metric_name(name))


def test_command_stats_fold_and_read_consistently() -> None:
    import threading

    from plugbay.monitor.metrics import BUCKETS, CommandStats

    stats = CommandStats()
    durations = [0.00001 * (i % 50 + 1) for i in range(CommandStats.FOLD_AT * 2 + 10)]
    for d in durations:
        stats.record(d)
    stats.record(0.5, "OSError")
    assert stats.calls == len(durations) + 1
    assert len(stats.pending) < CommandStats.FOLD_AT  # folded in batches
    assert sum(stats.buckets) == stats.calls
    assert stats.max_time == 0.5
    assert abs(stats.total_time - (sum(durations) + 0.5)) < 1e-9
    assert stats.errors_by_type == {"OSError": 1}
    assert stats.quantile(0.5) in BUCKETS
    # a reader in another thread never sees a histogram that disagrees with itself
    problems: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            buckets = stats.buckets
            if any(n < 0 for n in buckets):
                problems.append("negative bucket")

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(50_000):
        stats.record(0.00002)
    done.set()
    reader.join()
    assert not problems
    assert stats.calls == len(durations) + 1 + 50_000
