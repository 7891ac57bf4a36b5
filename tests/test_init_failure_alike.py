"""A plugin whose ``initialize`` raises is answered alike inline and sandboxed:
``plugin_init_failed``, "initialize raised <Type>: <message>", the line it raised at and
the hint to its traceback, on the host's record and over the HTTP API; a sandboxed one
was answered ``plugin_raised`` with a command's hint (seen in ``plugbay bisect``'s
``failed`` lines), and a load through the API 502 rather than 409."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from plugbay.runtime.host import Host
from tests._served import api_served
from tests.conftest import PluginFactory

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

FAILS = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context) -> None:
        raise RuntimeError("the wheel fell off")

    @command
    def ping(self) -> str:
        return "pong"
"""


@pytest.mark.parametrize("inline", [["*"], []], ids=["inline", "sandboxed"])
async def test_an_initialize_that_raises_is_plugin_init_failed_on_both_backends(
    plugins: PluginFactory, make_host: Callable[..., Host], inline: list[str]
) -> None:
    plugins("acme.ok", PING)
    path = plugins("acme.bad", FAILS)
    async with (
        make_host(inline=inline, init_timeout=30) as host,
        api_served(host) as (
            url,
            token,
        ),
    ):
        error = host.plugin("acme.bad").error
        assert error is not None
        assert error.code == "plugin_init_failed"
        assert error.message == "initialize raised RuntimeError: the wheel fell off"
        assert error.hint == "see the traceback with 'plugbay info acme.bad --traceback'"
        assert error.where == f"{path / 'main.py'}:6"
        assert error.details["exception"] == "RuntimeError"
        assert error.details["raised_at"]["code"] == 'raise RuntimeError("the wheel fell off")'
        assert 'raise RuntimeError("the wheel fell off")' in error.details["traceback"]
        assert await host.call("acme.ok", "ping") == "pong"  # the neighbour still answers

        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            shown = (await http.get("/api/v1/plugins/acme.bad")).json()
            assert shown["error"]["code"] == "plugin_init_failed"
            assert shown["error"]["hint"] == error.hint
            # loaded again, the same answer, and the status of a start that failed
            again = await http.post("/api/v1/plugins/acme.bad/load")
            assert again.status_code == 409, again.text
            assert again.json()["error"]["code"] == "plugin_init_failed"
            assert (await http.post("/api/v1/plugins/acme.ok/commands/ping", json={})).json() == {
                "result": "pong"
            }
