"""What the HTTP API's requests leave in the security records, served by a real uvicorn
over a real host and state: a request naming a plugin the host does not know keeps
nothing under that name (a token holder, or anyone, could otherwise fill the host with
records under made-up ids), while a real plugin's requests stay on its own record."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests._served import api_served
from tests.conftest import PluginFactory

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b
"""


async def test_requests_for_made_up_plugin_ids_keep_no_record_under_those_ids(
    make_host: Callable[..., Any], plugins: PluginFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plugbay.security")
    plugins("acme.calc", CALC)
    host = make_host()
    async with host, api_served(host) as served:
        auth = {"Authorization": f"Bearer {served.token}"}
        made_up = [f"made.up{i}" for i in range(60)]
        async with (
            httpx.AsyncClient(base_url=served.url, headers=auth, timeout=30) as http,
            httpx.AsyncClient(base_url=served.url, timeout=30) as anonymous,
        ):
            for pid in made_up:
                r = await http.post(f"/api/v1/plugins/{pid}/reload")
                assert r.status_code == 404, r.text
                r = await http.put(f"/api/v1/plugins/{pid}/config", json={"values": {"a": 1}})
                assert r.status_code == 404, r.text
                r = await anonymous.post(f"/api/v1/plugins/{pid}/disable")
                assert r.status_code == 401
            # a real plugin's requests still land on its own record
            assert (await http.post("/api/v1/plugins/acme.calc/disable")).status_code == 200
            assert (await anonymous.post("/api/v1/plugins/acme.calc/enable")).status_code == 401
            await host.events.drain()
            assert host.monitor is not None and host.state is not None
            host.monitor.logs.persist(host.state)

            kept = await http.get("/api/v1/logs", params={"limit": 1000})
            owners = {r["plugin"] for r in kept.json()}
            assert not owners & set(made_up), sorted(owners)
            stored = {r["plugin"] for r in host.state.logs(limit=10_000)}
            assert not stored & set(made_up), sorted(stored)
            assert all(host.state.history(pid) == [] for pid in made_up)
            assert not set(host.manager.budgets) & set(made_up)
            assert (
                await http.get("/api/v1/logs", params={"plugin": "made.up0"})
            ).status_code == 404

            calc = [r["message"] for r in host.logs("acme.calc", limit=1000)]
            assert any(m.startswith("HTTP: POST /api/v1/plugins/acme.calc/disable") for m in calc)
            assert any("enable by 127.0.0.1" in m and "→ 401" in m for m in calc), calc
            assert [e.action for e in host.state.history("acme.calc", limit=5)].count("http") >= 1
    # the host's own security log still says what was asked, and by whom
    lines = [r.getMessage() for r in caplog.records if r.name == "plugbay.security"]
    assert any(
        m.startswith("POST /api/v1/plugins/made.up7/reload by 127.0.0.1:") and "→ 404" in m
        for m in lines
    ), lines[:5]


async def test_a_request_that_succeeded_is_on_the_record_at_info_a_refused_one_warns(
    make_host: Callable[..., Any], plugins: PluginFactory
) -> None:
    """A plugin's log showed every API change as a warning (the dashboard's Logs pane
    painted 'PUT …/config → 200' yellow): one that succeeded is info, a refused one
    still a warning, and both are security records."""
    plugins("acme.calc", CALC)
    host = make_host()
    async with host, api_served(host) as served:
        async with (
            httpx.AsyncClient(
                base_url=served.url,
                headers={"Authorization": f"Bearer {served.token}"},
                timeout=30,
            ) as http,
            httpx.AsyncClient(base_url=served.url, timeout=30) as anonymous,
        ):
            assert (await http.post("/api/v1/plugins/acme.calc/disable")).status_code == 200
            assert (await anonymous.post("/api/v1/plugins/acme.calc/enable")).status_code == 401
        await host.events.drain()
        records = {
            r["message"].split(" by ")[0]: r
            for r in host.logs("acme.calc", limit=100)
            if r["message"].startswith("HTTP: ")
        }
        done = records["HTTP: POST /api/v1/plugins/acme.calc/disable"]
        refused = records["HTTP: POST /api/v1/plugins/acme.calc/enable"]
        assert (done["level"], refused["level"]) == (logging.INFO, logging.WARNING), records
        assert done["fields"]["security"] and refused["fields"]["security"]
