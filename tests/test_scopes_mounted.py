"""The HTTP API mounted under a prefix in an application's own ASGI app
(``Mount("/plugbay", app=web.asgi)``): each scope gets exactly what it gets at the
root, route by route, and a ``read`` token is still refused a plugin's recorded calls."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from plugbay.runtime.host import Host
from plugbay.web import create_app
from plugbay.web.scopes import create_token
from plugbay.web.token import TokenFile
from tests.conftest import PluginFactory
from tests.test_scopes import CALC, walk_every_route

PREFIX = "/plugbay"


class Mounted:
    """The application's server: ``url`` ends in the prefix the API is mounted under."""

    def __init__(self, host: Host, root: str, owner: str) -> None:
        self.host, self.root, self.owner = host, root, owner
        self.url = root + PREFIX

    def token(self, *scopes: str) -> str:
        assert self.host.state is not None
        return create_token(self.host.state, scopes, expires=None, note="test")[1]

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )


async def _mine(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the application's own page")


@contextlib.asynccontextmanager
async def _serve(app: Starlette) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a free port
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 30
    while not server.started:
        assert not serving.done() and time.monotonic() < deadline, "the server did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving
        sock.close()


@pytest.fixture
async def mounted(make_host: Callable[..., Any], plugins: PluginFactory) -> AsyncIterator[Mounted]:
    plugins("acme.calc", CALC)
    plugins("acme.other", CALC)
    host = make_host()
    async with host:
        assert host.state_dir is not None
        tokens = TokenFile(host.state_dir)
        owner, _ = tokens.ensure()
        web = create_app(host, tokens=tokens, max_body=4096)
        app = Starlette(routes=[Route("/mine", _mine), Mount(PREFIX, app=web.asgi)])
        web.start()
        try:
            async with _serve(app) as root:
                yield Mounted(host, root, owner)
        finally:
            await web.stop()


async def test_every_route_under_a_prefix_checks_the_scope_as_at_the_root(
    mounted: Mounted,
) -> None:
    await walk_every_route(mounted)


async def test_a_read_token_is_refused_recorded_calls_under_a_prefix(mounted: Mounted) -> None:
    recording = "/api/v1/plugins/acme.calc/recording"
    async with mounted.client(mounted.token("read")) as http:
        refused = await http.get(recording)
        assert refused.status_code == 403
        message = refused.json()["error"]["message"]
        assert "needs the scope call:acme.calc" in message
        assert f"GET {PREFIX}{recording}" in message  # the path as the caller asked it
        assert (await http.get("/api/v1/plugins")).status_code == 200
    async with mounted.client(mounted.token("call:acme.calc")) as http:
        r = await http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 2, "b": 3})
        assert r.json() == {"result": 5}
        assert (await http.get(recording)).status_code != 403
    async with httpx.AsyncClient(base_url=mounted.url, timeout=60) as anyone:
        assert (await anyone.get("/healthz")).status_code == 200  # open, as at the root
        assert (await anyone.get("/api/v1/plugins")).status_code == 401
    async with httpx.AsyncClient(base_url=mounted.root, timeout=60) as anyone:
        assert (await anyone.get("/mine")).text == "the application's own page"


async def test_a_wrong_method_under_a_prefix_names_the_methods_the_route_allows(
    mounted: Mounted,
) -> None:
    """A 405's ``Allow`` is read from the path within the mount (``_app._allowed``)."""
    async with mounted.client(mounted.owner) as http:
        r = await http.put("/api/v1/plugins")
    assert r.status_code == 405
    assert "GET" in r.headers["allow"].split(", ")


async def test_a_stopping_host_still_answers_its_probes_under_a_prefix() -> None:
    """While the host stops, ``/healthz`` and ``/readyz`` answer within a mount too
    (``_drain.Draining``); any other path is refused with 503."""
    from plugbay.web._drain import Draining

    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    class Stopping:
        phase = "stopping"

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    draining = Draining(app, Stopping())  # type: ignore[arg-type]
    for path in (f"{PREFIX}/healthz", f"{PREFIX}/api/v1/plugins"):
        scope = {"type": "http", "path": path, "root_path": PREFIX, "headers": []}
        await draining(scope, receive, send)
    assert reached == [f"{PREFIX}/healthz"]
    assert sent[0]["status"] == 503
