"""``plugbay run``'s own stop runs every step whatever an earlier one raised: a failure
stopping the plugins no longer leaves the HTTP API serving, ``host.json`` announcing a
host that is gone and the host unstopped (its state directory locked). The failure is
logged with what failed and what may be left, and raised once every step has run.

Nothing real is known to raise out of ``PluginManager.shutdown`` (a plugin's cleanup
that raises or hangs is caught and recorded), so the failure is made here, in-process,
by a patched ``shutdown``; the rest is a real ``plugbay run`` stop."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from plugbay.cli._defaults import host_kwargs
from plugbay.cli._serve import Serving, run_host
from plugbay.runtime.host import Host
from plugbay.runtime.manager import PluginManager
from plugbay.web import HttpServer, create_app
from plugbay.web._app import WebApp
from plugbay.web.token import TokenFile
from tests._waiting import until_sync
from tests.conftest import PluginFactory

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_failed_plugin_stop_still_closes_the_api_the_announcement_and_the_host(
    plugins: PluginFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins("acme.ok", PING)
    state = tmp_path / "state"
    announced = state / "host.json"
    monkeypatch.chdir(tmp_path)
    shutdown = PluginManager.shutdown

    failures = [RuntimeError("the history could not be written")]

    async def failing(self: PluginManager) -> None:  # once: plugbay run's own stop
        await shutdown(self)
        if failures:
            raise failures.pop()

    monkeypatch.setattr(PluginManager, "shutdown", failing)
    kwargs = {**host_kwargs([plugins.root], state, None), "inline": ["*"]}
    serving = Serving(bind=("127.0.0.1", 0), max_body=1 << 20, metrics_port=None, watch=False)
    seen: dict[str, str] = {}

    def stop_once_serving() -> None:  # SIGTERM, as an operator's stop, once the API answers
        def url() -> str | None:
            text = announced.read_text() if announced.exists() else ""
            return json.loads(text).get("http") if text.strip() else None

        seen["url"] = until_sync(url, "host.json to name the API")
        until_sync(lambda: _answers(f"{seen['url']}/healthz"), "/healthz to answer")
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_once_serving, daemon=True)
    stopper.start()
    with (
        caplog.at_level(logging.ERROR, logger="plugbay.host"),
        pytest.raises(RuntimeError, match="the history could not be written"),
    ):
        run_host(kwargs, serving, 0.0)
    stopper.join(timeout=60)

    assert not _answers(f"{seen['url']}/healthz")  # the API closed
    assert not announced.exists()  # no host announced any more
    said = [r.getMessage() for r in caplog.records if r.name == "plugbay.host"]
    assert any(
        "stopping the plugins (their cleanup) failed: RuntimeError: the history could not "
        "be written. The stop went on with its other steps" in line
        for line in said
    ), said
    # the host stopped: its state directory is free for the next one
    assert asyncio.run(_serves_again(plugins.root, state)) == "pong"


async def _serves_again(root: Path, state: Path) -> object:
    async with Host(root, state_dir=state, entry_points=False, inline=["*"]) as host:
        return await host.call("acme.ok", "ping")


async def test_the_api_closes_its_port_even_when_the_charts_fail_to_stop(
    plugins: PluginFactory, make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HttpServer.stop``: the charts' sampling stopped first, then the server; a failure
    of the first (made here: nothing real is known to raise there) still closes the port."""
    plugins("acme.ok", PING)
    async with make_host() as host:
        assert host.state_dir is not None
        tokens = TokenFile(host.state_dir)
        tokens.ensure()
        server = HttpServer(create_app(host, tokens=tokens), "127.0.0.1", 0)
        await server.start()
        url = f"{server.url}/healthz"
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(url)).status_code == 200

        async def failing(self: WebApp) -> None:
            raise RuntimeError("the sampler would not stop")

        monkeypatch.setattr(WebApp, "stop", failing)
        with pytest.raises(RuntimeError, match="the sampler would not stop"):
            await server.stop()
        async with httpx.AsyncClient(timeout=10) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(url)
