"""Many calls in one request (``POST …/commands/{command}/batch``): the HTTP form of
``host.call_many``. Each call answered in order and counted, one bad call failing only
itself, the whole request refused with a clear error when its body or its target is
wrong, and the Python client's ``call_many`` giving values and errors as the host does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from plugbay.api.errors import ParameterError, PlugbayError
from plugbay.runtime.host import Host
from plugbay.runtime.prometheus import exposition
from plugbay.web._batch import MAX_BATCH
from plugbay.web.client import HostClient
from tests._served import api_served
from tests.conftest import PluginFactory
from tests.test_metrics import samples

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def div(self, a: int, b: int = 1) -> int:
        return a // b
"""


class Api:
    def __init__(self, host: Host, url: str, token: str) -> None:
        self.host, self.url, self.token = host, url, token

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60
        )


@pytest.fixture(params=["inline", "process"])
async def api(
    request: pytest.FixtureRequest, make_host: Callable[..., Host], plugins: PluginFactory
) -> AsyncIterator[Api]:
    plugins("acme.calc", CALC)
    host = make_host(inline=["*"] if request.param == "inline" else [], init_timeout=30.0)
    async with host, api_served(host) as (url, token):
        yield Api(host, url, token)


BATCH = "/api/v1/plugins/acme.calc/commands/div/batch"


def _counted(host: Host) -> dict[str, float]:
    """The command's counters as /metrics shows them: calls and errors by type."""
    got = samples(exposition(host.manager).decode())
    return {
        "+".join(v for k, v in labels if k == "error") or name: value
        for (name, labels), value in got.items()
        if name in ("plugbay_calls_total", "plugbay_call_errors_total")
        and ("command", "div") in labels
    }


async def test_each_call_is_answered_in_order_and_one_bad_call_fails_only_itself(
    api: Api,
) -> None:
    params = [{"a": 10, "b": 2}, {"a": 7, "b": 0}, {"a": "x"}, {"a": 9, "b": 3}]
    async with api.client() as http:
        r = await http.post(BATCH, json={"params": params})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0] == {"result": 5}
    assert results[1]["error"]["type"] == "PluginCallError"  # the plugin raised on this one
    assert "ZeroDivisionError" in results[1]["error"]["message"]
    assert results[2]["error"]["code"] == "parameter_invalid"  # refused before the plugin
    assert "'a'" in results[2]["error"]["message"]
    assert results[3] == {"result": 3}
    # counted as the same calls one by one are counted; and the plugin serves on
    batched = _counted(api.host)
    assert batched["plugbay_calls_total"] == 4
    async with api.client() as http:
        for one in params:
            await http.post("/api/v1/plugins/acme.calc/commands/div", json=one)
    assert _counted(api.host) == {k: 2 * v for k, v in batched.items()}


async def test_a_large_batch_is_answered_whole(api: Api) -> None:
    params = [{"a": i, "b": 1} for i in range(2_000)]
    async with api.client() as http:
        r = await http.post(BATCH, json={"params": params})
    assert [x["result"] for x in r.json()["results"]] == list(range(2_000))


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        (b"{not json", 400, "body_invalid", "not JSON"),
        (b'{"params": {"a": 1}}', 422, "parameter_invalid", "a list 'params' of objects"),
        (b'[{"a": 1}]', 422, "parameter_invalid", "a list 'params' of objects"),
        (b'{"params": [1, 2]}', 422, "parameter_invalid", "a list 'params' of objects"),
        (b"", 422, "parameter_invalid", "a list 'params' of objects"),
    ],
)
async def test_a_malformed_batch_is_refused_whole_and_says_what_a_batch_is(
    api: Api, body: bytes, status: int, code: str, says: str
) -> None:
    async with api.client() as http:
        r = await http.post(BATCH, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["code"] == code and says in error["message"]
        assert '{"params": [{...}, {...}]}' in error["hint"]
        # nothing was called, and the host serves on
        ok = await http.post(BATCH, json={"params": [{"a": 4, "b": 2}]})
    assert ok.json() == {"results": [{"result": 2}]}


async def test_a_batch_over_the_bound_says_the_bound(api: Api) -> None:
    body = b'{"params": [' + b",".join([b"{}"] * (MAX_BATCH + 1)) + b"]}"
    async with api.client() as http:
        r = await http.post(BATCH, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert f"{MAX_BATCH:,} calls" in r.json()["error"]["message"]


async def test_no_such_command_or_plugin_fails_the_request_as_a_single_call_would(
    api: Api,
) -> None:
    async with api.client() as http:
        wrong = await http.post(
            "/api/v1/plugins/acme.calc/commands/dvi/batch", json={"params": [{"a": 1}]}
        )
        missing = await http.post(
            "/api/v1/plugins/acme.nope/commands/div/batch", json={"params": [{"a": 1}]}
        )
        single = await http.post("/api/v1/plugins/acme.calc/commands/dvi", json={"a": 1})
    assert wrong.status_code == 404 and wrong.json() == single.json()
    assert "did you mean 'div'" in wrong.json()["error"]["hint"]
    assert missing.status_code == 404 and "acme.nope" in missing.json()["error"]["message"]


async def test_the_client_gives_values_and_errors_in_order(api: Api) -> None:
    def run() -> list[Any]:
        with HostClient(api.url, api.token) as client:
            return client.call_many("acme.calc", "div", [{"a": 6, "b": 3}, {"a": "six"}])

    got = await asyncio.to_thread(run)
    assert got[0] == 2
    assert isinstance(got[1], ParameterError) and isinstance(got[1], PlugbayError)
