"""The status of an error a plugin's code ran into while serving a call over HTTP: its
failure (502), not a bad request (400)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from plugbay.runtime.host import Host
from tests._served import api_served
from tests.conftest import PluginFactory

HOARDER = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def files(self) -> int:
        fds = []
        while True:
            fds.append(os.open("/dev/null", os.O_RDONLY))
"""


async def test_a_call_that_hits_the_plugins_limit_is_the_plugins_failure_502(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.hoarder", HOARDER, extra="[resources]\nopen-files = 32\n")
    host = make_host(inline=[], init_timeout=30)
    async with host, api_served(host) as served, httpx.AsyncClient(base_url=served.url) as http:
        r = await http.post(
            "/api/v1/plugins/acme.hoarder/commands/files",
            json={},
            headers={"Authorization": f"Bearer {served.token}"},
            timeout=60,
        )
        # was 400, "the request cannot be done": the request was fine, the plugin failed
        assert r.status_code == 502, r.text
        assert r.json()["error"]["code"] == "resource_limit"
        assert "open-files limit" in r.json()["error"]["message"]
