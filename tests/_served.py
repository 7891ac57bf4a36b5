"""A host's HTTP API served for a test: on a free port of 127.0.0.1, with the host's own
token, stopped when the test is done."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from plugbay.runtime.host import Host
from plugbay.web import HttpServer, create_app
from plugbay.web.token import TokenFile


class Served(tuple[str, str]):
    """``(url, token)`` of a served API; ``server`` for a test that looks inside it (e.g.
    samples the dashboard's series now rather than on its next tick)."""

    server: HttpServer

    def __new__(cls, server: HttpServer, token: str) -> Served:
        served = super().__new__(cls, (server.url, token))
        served.server = server
        return served

    @property
    def url(self) -> str:
        return self[0]

    @property
    def token(self) -> str:
        return self[1]


@contextlib.asynccontextmanager
async def api_served(host: Host, **app_options: Any) -> AsyncIterator[Served]:
    """``(url, token)`` of ``host``'s API while the block runs (``create_app`` options:
    e.g. ``max_body``)."""
    assert host.state_dir is not None
    tokens = TokenFile(host.state_dir)
    owner, _ = tokens.ensure()
    server = HttpServer(create_app(host, tokens=tokens, **app_options), "127.0.0.1", 0)
    await server.start()
    try:
        yield Served(server, owner)
    finally:
        await server.stop()
