"""The dashboard: one page rendered on the server, a script, and a live stream.

``/`` is the plugins table, the dependency graph (inline SVG) and the panes,
filled in on the server so the page is useful before any script runs.
``/api/v1/stream`` sends every plugin's newest figures once a sample (server-sent
events); the script updates the table and draws the selected plugin's charts.
Everything the page needs is in ``static/``: nothing is fetched from elsewhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from html import escape
from importlib import resources
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from plugbay.runtime.host import Host
from plugbay.runtime.records import PluginRecord
from plugbay.web._api import errors
from plugbay.web._errors import error_response, http_error
from plugbay.web._graph import STATE_COLOURS, dependency_svg
from plugbay.web._rollback import rollback_targets
from plugbay.web.scopes import Access

__all__ = ["router"]

router = APIRouter()

_STATIC: Final = resources.files("plugbay.web") / "static"
_TYPES: Final = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _graph(host: Host) -> str:
    return dependency_svg((r.id, r.version, str(r.state), sorted(r.needs)) for r in host.plugins())


def _fmt_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


async def _rows(host: Host) -> str:
    out = []
    records = host.plugins()
    targets = await rollback_targets(host, records)
    for rec in records:
        d = rec.to_dict()
        state = d["state"]
        pid = escape(d["id"])
        reason = f' title="{escape(d["reason"])}"' if d["reason"] else ""
        out.append(
            f'<tr data-plugin="{pid}" data-state="{escape(state)}" '
            f'data-rollback="{escape(targets[rec.id] or "")}">'
            f'<td class="id"><button type="button" class="link select">{pid}</button></td>'
            f'<td class="version">{escape(d["version"] or "?")}</td>'
            f'<td class="type">{escape(d["type"] or "?")}</td>'
            f'<td class="state"><span class="badge s-{escape(state)}"{reason}>{escape(state)}</span></td>'
            f'<td class="isolation">{escape(_where(rec))}</td>'
            f'<td class="uptime num" data-since="{rec.started_at or ""}">'
            f"{_fmt_uptime(d['uptime_seconds'])}</td>"
            '<td class="rate num">–</td><td class="errors num">–</td>'
            '<td class="p99 num">–</td>'
            '<td class="actions">'
            '<button type="button" data-op="reload">reload</button>'
            '<button type="button" data-op="disable">disable</button>'
            '<button type="button" data-op="enable">enable</button>'
            '<button type="button" data-op="rollback">rollback</button>'
            "</td></tr>"
        )
    return "\n".join(out)


def _where(rec: PluginRecord) -> str:
    """Its isolation, and for a plugin on a cluster its node and mode ("ray · agent · 3f2a…")."""
    where = rec.handle.location() if rec.handle is not None else None
    if where is None:
        return rec.isolation
    return f"{where['backend']} · {where['mode']} · {str(where['node'])[:8]}"


def _has_route(request: Request, suffix: str) -> bool:
    # from the OpenAPI document: FastAPI keeps included routers' routes out of app.routes
    return "/api/v1/plugins/{plugin_id}" + suffix in request.app.openapi()["paths"]


@router.get("/", tags=["dashboard"], response_class=HTMLResponse, responses=errors(),
            summary="The dashboard page")  # fmt: skip
async def dashboard(request: Request) -> HTMLResponse:
    host: Host = request.app.state.host
    page = (_STATIC / "index.html").read_text(encoding="utf-8")
    colours = "".join(
        f".s-{state}{{background:{colour}}}" for state, colour in STATE_COLOURS.items()
    )
    records = host.plugins()
    active = sum(1 for r in records if str(r.state) == "active")
    page = (
        page.replace("{{colours}}", colours)
        .replace("{{version}}", escape(host.version))
        .replace("{{summary}}", f"{len(records)} plugins, {active} active" + _starting(host))
        .replace("{{rows}}", await _rows(host))
        .replace("{{graph}}", _graph(host))
        .replace("{{interval}}", str(request.app.state.series.interval))
        .replace("{{rollback}}", "yes" if _has_route(request, "/rollback") else "no")
        .replace("{{scopes}}", escape(" ".join(_scopes(request))))
        # the nodes pane: filled by the script from /api/v1/nodes, shown when there is [ray]
        .replace("{{nodes_hidden}}", "" if host.manager.settings.policy.ray else "hidden")
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/static/{name}", tags=["dashboard"], response_class=Response,
            responses={**errors(404), 200: {"content": {"text/javascript": {}, "text/css": {}},
                                           "description": "A file of the dashboard"}},
            summary="The dashboard's script and style")  # fmt: skip
async def static(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    target = _STATIC / name
    if "/" in name or name.startswith(".") or suffix not in _TYPES or not target.is_file():
        return error_response(http_error("not_found", f"the dashboard has no file '{name}'"), 404)
    return Response(
        target.read_bytes(), media_type=_TYPES[suffix], headers={"Cache-Control": "no-cache"}
    )


@router.get("/api/v1/graph.svg", tags=["dashboard"], response_class=Response,
            responses={**errors(), 200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}},
                                        "description": "The dependency graph as SVG"}},
            summary="The dependency graph as a picture")  # fmt: skip
async def graph(request: Request) -> Response:
    return Response(_graph(request.app.state.host), media_type="image/svg+xml")


@router.get(
    "/api/v1/stream", tags=["dashboard"], response_class=StreamingResponse,
    # the schema of each event is set where the document is built (_app._describe_stream)
    responses={**errors(), 200: {"content": {"text/event-stream": {}},
                                "description": "Server-sent events: one 'sample' a sample"}},
    summary="Every plugin's newest figures, as server-sent events",
)  # fmt: skip
async def stream(
    request: Request,
    max_events: Annotated[
        int, Query(ge=0, le=100_000, description="Stop after this many (0: until closed).")
    ] = 0,
) -> StreamingResponse:
    """Each event is ``{"t": time, "plugins": {id: point}}`` with the fields of a
    series point (state, version, uptime, calls/s, error rate, p50, p99, memory)."""
    web = request.app.state.web
    series = web.series

    async def events() -> AsyncIterator[str]:
        sent = 0
        yield "retry: 2000\n\n"
        while not web.closing.is_set():
            if not series.latest:
                series.sample()
            payload: dict[str, Any] = {"t": series.sampled_at or time.time(),
                                       "plugins": series.latest}  # fmt: skip
            yield f"event: sample\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"
            sent += 1
            if max_events and sent >= max_events:
                return
            await series.wait(series.interval * 2)
            if await request.is_disconnected():
                return

    return StreamingResponse(
        events(), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )  # fmt: skip


def _scopes(request: Request) -> list[str]:
    """What the page's token may do: the script offers only that (``web.scopes``)."""
    access = getattr(request.state, "access", None)
    return sorted(access.scopes) if isinstance(access, Access) else ["admin"]


def _starting(host: Host) -> str:
    """ " — starting: 12 of 40 active" while the host starts its plugins (/readyz)."""
    now = host.readiness()
    if now["status"] == "starting":
        return f" — starting: {now['active']} of {now['wanted']} active"
    return "" if now["status"] in ("ready", "degraded") else f" — {now['status']}"
