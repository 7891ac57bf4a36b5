"""The OpenAPI document lists, for each route, the error statuses it really answers:
every request the door in front of the routes refuses (no token, a token without the
scope, a body too large or nested too deep) is answered with a status the document
lists for that operation, in the one error shape; and each operation lists the head
and body deadlines (408), the stop (503) and, for a change, a full disk (507)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from plugbay.runtime.host import Host
from plugbay.web.scopes import create_token
from tests._served import api_served
from tests.conftest import PluginFactory

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b
"""
_SAFE = {"get", "head", "options"}
#: what each templated part of a path is in these requests
_FILLED = {"plugin_id": "acme.calc", "command": "add", "name": "dashboard.js"}
_ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _FILLED[m.group(1)], path)


async def test_each_refusal_of_the_door_has_a_status_the_document_lists(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.calc", CALC, extra='[config.label]\ntype = "string"\ndefault = "x"\n')
    async with make_host() as host, api_served(host, max_body=1024) as (url, token):
        assert host.state is not None
        _, read_only = create_token(host.state, ["read"], expires=None, note="test")
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            doc = (
                await http.get("/openapi.json", headers={"Authorization": f"Bearer {token}"})
            ).json()
            undocumented: list[str] = []
            for method, path, op in _operations(doc):
                listed = set(op["responses"])
                for status in listed - {"200"}:
                    content = op["responses"][status].get("content", {}).get("application/json")
                    if path != "/readyz":  # its 503 is the readiness, not an error
                        assert content == {"schema": _ERROR_BODY}, (method, path, status)
                asks: list[tuple[str, dict[str, str], bytes | None]] = []
                if path != "/healthz":
                    asks.append(("no token", {}, None))
                if method not in _SAFE:
                    bearer = {"Authorization": f"Bearer {token}"}
                    asks += [
                        ("read-only token", {"Authorization": f"Bearer {read_only}"}, b"{}"),
                        ("too large", bearer, b'{"a": "' + b"x" * 2048 + b'"}'),
                        ("too deep", bearer, b"[" * 65 + b"]" * 65),
                    ]
                for what, headers, body in asks:
                    r = await http.request(
                        method.upper(), _url(path), content=body,
                        headers={**headers, "Content-Type": "application/json"},
                    )  # fmt: skip
                    assert "error" in r.json(), (method, path, what, r.text)
                    if str(r.status_code) not in listed:
                        undocumented.append(f"{method.upper()} {path} ({what}): {r.status_code}")
            assert not undocumented, undocumented

            # the deadlines, the stop and a full disk, where a client would look for them
            put = doc["paths"]["/api/v1/plugins/acme.calc/config"]["put"]["responses"]
            assert {"400", "401", "403", "404", "408", "409", "413", "422", "503", "507"} <= set(
                put
            )
            assert "within 10 s" in put["408"]["description"]
            assert "full" in put["507"]["description"]
            for method, path, op in _operations(doc):
                assert "408" in op["responses"], (method, path)
                if path not in ("/healthz", "/readyz"):
                    assert "503" in op["responses"], (method, path)
                if method not in _SAFE:
                    assert "507" in op["responses"], (method, path)


async def test_a_read_refused_to_a_read_only_token_has_its_403_in_the_document(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """``GET …/plugins/ID/recording`` needs ``call:ID``: a ``read`` token is refused with
    a 403, which the document did not list (only changes had one)."""
    plugins("acme.calc", CALC)
    async with make_host() as host, api_served(host) as (url, token):
        assert host.state is not None
        _, read_only = create_token(host.state, ["read"], expires=None, note="test")
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            bearer = {"Authorization": f"Bearer {token}"}
            doc = (await http.get("/openapi.json", headers=bearer)).json()
            refused: list[str] = []
            for method, path, op in _operations(doc):
                if method not in _SAFE or path in ("/api/v1/events", "/api/v1/stream"):
                    continue  # a stream a read token may follow would not end
                r = await http.request(
                    method.upper(), _url(path), headers={"Authorization": f"Bearer {read_only}"}
                )
                if r.status_code == 403:
                    assert r.json()["error"]["details"]["needed"] == "call:acme.calc"
                    if "403" not in op["responses"]:
                        refused.append(f"{method.upper()} {path}")
            assert not refused, f"answer 403 to a read token, undocumented: {refused}"
