"""Every route the HTTP API serves is in the table of docs/http-api.md, and every route
the table names is served: a route added without its row (uninstall, the trials, bisect
were) fails here, as tests/test_cli_usage.py does for a command missing from docs/cli.md.

The table's first column names routes as ``METHOD /path`` spans; ```GET`/`PUT /path```
gives one path several methods, and a span of one word after a path (``· `rollback```)
is a sibling of that path with the same methods. A query (``?plugin=ID``) is not part of
the route."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from plugbay.runtime.host import Host
from plugbay.web import create_app
from plugbay.web.token import TokenFile

HTTP_MD = Path(__file__).resolve().parents[1] / "docs" / "http-api.md"
_METHOD = re.compile(r"^(GET|POST|PUT|DELETE|PATCH)$")
_ROUTE = re.compile(r"^(GET|POST|PUT|DELETE|PATCH) (/\S*)$")
_SIBLING = re.compile(r"^[a-z][a-z0-9._-]*$")


def _route(method: str, path: str) -> tuple[str, str]:
    """``{id}`` and ``{plugin_id}`` are the same route."""
    return method, re.sub(r"\{[^}]*\}", "{}", path)


def documented() -> set[tuple[str, str]]:
    """Each (method, path) the first column of the table names."""
    found: set[tuple[str, str]] = set()
    for cell in re.findall(r"^\| (`(?:GET|POST|PUT|DELETE).*?) \| ", HTTP_MD.read_text(), re.M):
        methods: set[str] = set()
        pending: set[str] = set()
        base = ""
        for span in re.findall(r"`([^`]*)`", cell):
            span = re.sub(r"\[?\?.*$", "", span)  # a query is not the route
            if _METHOD.match(span):
                pending.add(span)
            elif (route := _ROUTE.match(span)) is not None:
                methods, pending = {*pending, route.group(1)}, set()
                base = route.group(2)
                found |= {_route(m, base) for m in methods}
            elif _SIBLING.match(span) and base:
                found |= {_route(m, base.rsplit("/", 1)[0] + "/" + span) for m in methods}
    return found


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """The app's API routes, those of the routers it includes too (FastAPI keeps an
    included router as one entry of ``app.routes``; none has a prefix here)."""
    out: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "original_router"):
            out += _api_routes(route.original_router.routes)
    return out


async def test_every_served_route_is_documented_and_every_documented_one_served(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    async with make_host() as host:
        app = create_app(host, tokens=TokenFile(tmp_path / "state")).api
        served = {
            _route(method, route.path) for route in _api_routes(app.routes)
            for method in route.methods or ()
        }  # fmt: skip
    doc = documented()
    assert len(served) > 40  # the walk found the routers' routes
    missing = sorted(served - doc)
    assert not missing, f"served, and not in the table of docs/http-api.md: {missing}"
    stale = sorted(doc - served)
    assert not stale, f"docs/http-api.md names routes the API does not serve: {stale}"


def test_the_table_is_read_as_a_reader_reads_it() -> None:
    doc: Any = documented()
    # a sibling span, several methods for one path, a query left out
    assert {("POST", "/api/v1/plugins/{}/rollback"), ("POST", "/api/v1/plugins/{}/unload")} <= doc
    assert {("GET", "/api/v1/plugins/{}/config"), ("PUT", "/api/v1/plugins/{}/config")} <= doc
    assert ("GET", "/api/v1/history") in doc and ("GET", "/healthz") in doc
