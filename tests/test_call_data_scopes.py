"""Recorded and mirrored calls are the users' data: a token sees them only when it may
call the plugin (``call:ID``) or do everything (``admin``).

A real host serves its API on a free port; the flight recorder and a shadow hear a
call whose parameters and answer hold a value a read-only dashboard viewer must not
see. A ``read`` token, and a ``call:`` token for another plugin, still read the
figures (how many calls, how many differ) but not the recording nor the examples.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay.runtime.host import Host
from plugbay.web.scopes import create_token
from tests._served import api_served
from tests._trials import calc
from tests.conftest import PluginFactory

#: what the user sent: 1.1.0 answers one too many for it (a % 5 == 0), so it differs
USER_DATA = {"a": 5, "b": 31337}
SEEN = "31337"


@dataclass
class Served:
    host: Host
    url: str
    tokens: dict[str, str]

    def client(self, scope: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.tokens[scope]}"},
            timeout=60,
        )


async def _mirrored(host: Host, plugin_id: str, calls: int) -> None:
    end = time.monotonic() + 30
    while host.trials.shadow_status(plugin_id)["mirrored"] < calls:
        assert time.monotonic() < end, "the shadow did not compare the call"
        await asyncio.sleep(0.02)


@pytest.fixture
async def served(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> AsyncIterator[Served]:
    calc(plugins.root / "calc", "1.0.0")
    plugins("acme.other")
    async with make_host() as host, api_served(host) as (url, owner):
        host.install(calc(tmp_path / "src", "1.1.0", wrong=True))
        assert host.state is not None
        tokens = {"owner": owner}
        for scope in ("read", "call:acme.other", "call:acme.calc", "admin"):
            tokens[scope] = create_token(host.state, [scope], expires=None, note="test")[1]
        served = Served(host, url, tokens)
        async with served.client("admin") as admin:
            assert (await admin.post("/api/v1/plugins/acme.calc/recording")).status_code == 200
            assert (await admin.post("/api/v1/plugins/acme.calc/shadow")).status_code == 200
        async with served.client("call:acme.calc") as caller:
            r = await caller.post("/api/v1/plugins/acme.calc/commands/add", json=USER_DATA)
            assert r.json() == {"result": 31342}
        await _mirrored(host, "acme.calc", 1)
        yield served


@pytest.mark.parametrize("scope", ["read", "call:acme.other"])
async def test_a_token_that_may_not_call_the_plugin_reads_no_recorded_call(
    served: Served, scope: str
) -> None:
    async with served.client(scope) as http:
        refused = await http.get("/api/v1/plugins/acme.calc/recording")
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["code"] == "scope_denied" and error["details"]["needed"] == "call:acme.calc"
        assert "needs the scope call:acme.calc" in error["message"]
        assert SEEN not in refused.text

        shadow = await http.get("/api/v1/plugins/acme.calc/shadow")
        assert shadow.status_code == 200
        view = shadow.json()
        assert view["mirrored"] == 1 and view["differences"] == 1  # the figures: readable
        assert view["commands"]["add"]["differ"] == 1
        assert view["commands"]["add"]["examples"] == []
        assert "call:acme.calc" in view["withheld"]
        assert SEEN not in shadow.text

        trials = await http.get("/api/v1/trials")
        assert trials.status_code == 200
        assert [s["differences"] for s in trials.json()["shadows"]] == [1]
        assert trials.json()["recordings"][0]["calls"] == 1
        assert SEEN not in trials.text
    # refused, and nothing else: the plugin still serves, the recording is whole
    assert await served.host.call("acme.calc", "add", a=1, b=1) == 2
    assert SEEN.encode() in served.host.trials.recording("acme.calc")


@pytest.mark.parametrize("scope", ["call:acme.calc", "admin", "owner"])
async def test_a_token_that_may_call_the_plugin_reads_its_recorded_calls(
    served: Served, scope: str
) -> None:
    async with served.client(scope) as http:
        recording = await http.get("/api/v1/plugins/acme.calc/recording")
        assert recording.status_code == 200 and SEEN in recording.text
        view = (await http.get("/api/v1/plugins/acme.calc/shadow")).json()
        example: dict[str, Any] = view["commands"]["add"]["examples"][0]
        assert example["params"]["b"] == 31337 and example["expected"] == 31342
        assert example["got"] == 31343
        assert view.get("withheld") is None
        trials = (await http.get("/api/v1/trials")).json()
        assert trials["shadows"][0]["commands"]["add"]["examples"] == [example]
