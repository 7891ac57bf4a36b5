"""The web app: FastAPI routes behind the gate, the charts' sampler, and the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from plugbay.api.errors import PlugbayError
from plugbay.runtime.broker import HOST_PERMISSIONS
from plugbay.runtime.host import HOST_VERSION, Host
from plugbay.web import (
    _access,
    _batch,
    _dashboard,
    _environments,
    _grants,
    _nodes,
    _profile,
    _system_events,
    _uninstall,
    _upgrades,
)
from plugbay.web._api import call_response, plugbay_error, router
from plugbay.web._batch import batch_response
from plugbay.web._bodies import is_json, media_type, not_sent_as_json
from plugbay.web._drain import Draining
from plugbay.web._errors import error_response, http_error
from plugbay.web._gate import Caller, Gate, replay_body
from plugbay.web._models import SEMVER_PATTERN, StreamSample
from plugbay.web._plugin_docs import add_plugin_paths, plugins_key
from plugbay.web._responses import add_door_errors
from plugbay.web._series import Series
from plugbay.web.scopes import Access, route_path
from plugbay.web.token import TokenFile

__all__ = ["MAX_BODY", "WebApp", "create_app"]

#: request bodies larger than this are refused with 413 (a command's parameters, a config)
MAX_BODY: Final = 1 << 20

security_log = logging.getLogger("plugbay.security")


class WebApp:
    """The ASGI app to serve (``asgi``: the gate in front of ``api``) and its sampler."""

    def __init__(self, host: Host, api: FastAPI, gate: Gate, series: Series) -> None:
        self.host = host
        self.api = api
        self.asgi: ASGIApp = gate
        self.series = series
        self.closing = asyncio.Event()
        self._sampler: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling for the charts (on the running loop)."""
        if self._sampler is None:
            self._sampler = asyncio.get_running_loop().create_task(self.series.run())

    async def stop(self) -> None:
        self.closing.set()
        await self.series.wake()
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None


def create_app(
    host: Host,
    *,
    tokens: TokenFile,
    max_body: int = MAX_BODY,
    sample_interval: float = 1.0,
) -> WebApp:
    """The API and dashboard of a started ``host``; every request needs ``tokens``' token."""
    api = FastAPI(
        title="plugbay",
        version=HOST_VERSION,
        summary="A plugin host's REST API: plugins, calls, lifecycle, config, health, metrics.",
        description=_DESCRIPTION,
        docs_url=None,  # Swagger UI loads its script from a CDN; the document itself is enough
        redoc_url=None,
        # a path with a stray trailing slash is a 404 naming the path to use, in the API's
        # error shape (a redirect has an empty body, and a client re-sending a POST to it)
        redirect_slashes=False,
    )
    api.include_router(router)
    api.include_router(_grants.router)
    api.include_router(_profile.router)
    api.include_router(_uninstall.router)
    api.include_router(_environments.router)
    api.include_router(_access.router)
    api.include_router(_dashboard.router)
    api.include_router(_upgrades.router)
    api.include_router(_nodes.router)
    api.include_router(_batch.router)
    api.include_router(_system_events.router)
    series = Series(host, interval=sample_interval)
    api.state.host = host
    api.state.series = series
    api.add_exception_handler(PlugbayError, plugbay_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(StarletteHTTPException, _http_exception)
    api.add_exception_handler(Exception, _internal_error)
    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]

    def audit(caller: Caller) -> None:
        _audit(host, caller)

    async def call(
        plugin_id: str, command: str, body: bytes, batch: bool, headers: Mapping[str, str]
    ) -> Any:
        if batch:
            return await batch_response(host, plugin_id, command, body, headers)
        return await call_response(host, plugin_id, command, body, headers)

    def preflight(caller: Caller) -> None:
        _audit_before(host, caller)

    gate = Gate(
        JsonBodies(api), tokens=tokens, max_body=max_body, audit=audit, call=call, preflight=preflight,
        scoped=_scoped(host),
    )  # fmt: skip
    web = WebApp(host, api, gate, series)
    web.asgi = Draining(gate, host)  # 503 while stopping
    api.state.web = web
    return web


class JsonBodies:
    """A JSON body is read as JSON whatever media type it was sent as: ``curl -d '{…}'``
    without ``-H 'Content-Type: application/json'`` says ``application/x-www-form-urlencoded``,
    a browser's ``fetch`` with a string body ``text/plain``, and FastAPI would not read the
    body of such a request as JSON. Only a body that parses as JSON is taken so (the
    command routes, which the gate serves without this, read theirs so already and look at
    no header unless the body fails to parse); a real form or text body is left for FastAPI
    to refuse, with the error saying what to send (:func:`_validation_error`).
    A cookie-authenticated change needs this host's ``Origin`` (``_gate``), so a form on
    another site gains nothing from it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (sent := _media_type(scope)) and not is_json(sent):
            body, receive = await _whole_body(receive)
            try:
                msgspec.json.decode(body)
            except msgspec.DecodeError:
                pass
            else:
                headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def _media_type(scope: Scope) -> str:
    """The request's Content-Type without its parameters (``""``: none)."""
    for key, value in scope["headers"]:
        if key.lower() == b"content-type":
            return media_type(value.decode("latin-1"))
    return ""


async def _whole_body(receive: Receive) -> tuple[bytes, Receive]:
    """The request's body, and a ``receive`` that gives it again (then waits as before)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), replay_body(b"".join(chunks), receive, message)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), replay_body(b"".join(chunks), receive, None)


def _scoped(host: Host) -> Callable[[str], Access | str] | None:
    """Scoped tokens live in the state; a host without one has only its own token."""
    from plugbay.web.scopes import scoped_access

    state = host.state
    if state is None:
        return None
    return lambda given: scoped_access(state, given)


def _audit(host: Host, caller: Caller) -> None:
    """A request that changed something, or was refused: the security log, the host's
    ``security.http.*`` events (the audit trail plugin keeps them), and the plugin's history.

    Only a plugin the host knows has its own record: a request naming any other id (a
    404, or refused before that) is the host's event, kept as the host's are (the event
    queue is bounded), so no one can make the host keep records under made-up ids."""
    plugin = caller.pop("plugin", None)
    if plugin is not None and (caller.pop(_KNOWN, False) or _knows(host, plugin)):
        caller["plugin"] = plugin  # known before the change (an uninstall) or after (a load)
    else:
        plugin = None
    result = caller.get("result", "ok")
    who = f"{caller['address']} ({caller.get('auth', 'no token')}"
    who += f" {caller['token']})" if caller.get("token") else ")"
    text = f"{caller['method']} {caller['path']} by {who} → {caller.get('status')}"
    level = logging.INFO if result == "ok" else logging.WARNING
    security_log.log(level, "%s%s", text, f": {caller['reason']}" if caller.get("reason") else "")
    host.events.emit(
        "security.http.denied" if result == "denied" else "security.http.request",
        source="http",
        message=f"HTTP: {text}",  # what the monitor's security log shows for the plugin
        **{k: v for k, v in caller.items() if k != "login"},
    )
    if result != "denied" and plugin and host.state is not None:
        # PlugbayError: removed meanwhile (the request unloaded it): the security log has it
        with contextlib.suppress(PlugbayError):
            host.state.add_event(
                plugin, "http", version=host.plugin(plugin).version, result=result,
                reason=f"{caller['method']} …/{caller['path'].rsplit('/', 1)[-1]} by {who} → "
                f"{caller.get('status')}",
                details={k: caller.get(k) for k in ("address", "auth", "token", "user_agent", "status")},
            )  # fmt: skip


#: set on a caller by :func:`_audit_before` when the plugin it names was known then
_KNOWN: Final = "_known"


def _knows(host: Host, plugin_id: str) -> bool:
    """Whether ``plugin_id`` is a plugin of this host (any state: a record it keeps)."""
    try:
        host.plugin(plugin_id)
    except PlugbayError:
        return False
    return True


def _audit_before(host: Host, caller: Caller) -> None:
    """The record of a change to a plugin, kept before the change is made: when the state
    cannot keep it (a full disk), the StateError refuses the request and nothing changes."""
    plugin = caller.get("plugin")
    if not plugin or host.state is None:
        return
    try:
        version = host.plugin(plugin).version
    except PlugbayError:
        return  # not a plugin this host knows: the request answers 404 on its own
    caller[_KNOWN] = True
    who = f"{caller['address']} ({caller.get('auth', 'no token')}"
    who += f" {caller['token']})" if caller.get("token") else ")"
    host.state.add_event(
        plugin, "http", version=version, result="requested",
        reason=f"{caller['method']} …/{caller['path'].rsplit('/', 1)[-1]} by {who}",
        details={k: caller.get(k) for k in ("address", "auth", "token", "user_agent")},
    )  # fmt: skip


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    sent = _media_type(request.scope)
    if not is_json(sent) and any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors()):
        # the body was not read as JSON at all: say how to send it, not what pydantic saw
        see = f"see {request.base_url}openapi.json for what this endpoint takes"
        return error_response(not_sent_as_json(sent, see), 422)
    broken = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
    if broken is not None:
        # sent as JSON but not JSON: a 400, as the command routes answer (not a field's 422)
        return error_response(_not_json(request, broken), 400)
    found = [(e, _problem(e)) for e in exc.errors()]
    problems = [".".join(str(p) for p in e.get("loc", ())) + f": {msg}" for e, msg in found]
    error = http_error(
        "request_invalid",
        "the request does not match the API: " + "; ".join(problems),
        hint=f"see {request.base_url}openapi.json for what this endpoint takes",
        errors=[{"loc": list(e.get("loc", ())), "msg": msg} for e, msg in found],
    )
    return error_response(error, 422)


def _not_json(request: Request, error: Any) -> PlugbayError:
    """A body declared JSON that does not parse: what broke, and at which character."""
    loc = tuple(error.get("loc", ()))
    at = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    why = str((error.get("ctx") or {}).get("error") or "it does not parse")
    return http_error(
        "body_invalid",
        f"the request body is not valid JSON: {why.lower()}"
        + (f" at character {at}" if at is not None else ""),
        hint=f"send a JSON object; see {request.base_url}openapi.json for what this endpoint takes",
        errors=[{"loc": ["body"], "msg": "not valid JSON", "position": at}],
    )


def _problem(error: Any) -> str:
    """What is wrong with one field, in words (a version, not the expression it missed)."""
    if error.get("type") == "string_pattern_mismatch" and (
        (error.get("ctx") or {}).get("pattern") == SEMVER_PATTERN
    ):
        return (
            f"{error.get('input')!r} is not a SemVer 2.0.0 version: write MAJOR.MINOR.PATCH, "
            "e.g. '1.2.0' or '2.0.0-rc.1'"
        )
    if error.get("type") == "string_pattern_mismatch" and (
        (error.get("ctx") or {}).get("pattern") == _grants.PERMISSION_PATTERN
    ):
        return (
            f"{error.get('input')!r} is not a permission: write network:HOST:PORT, read:PATH, "
            "write:PATH, env:NAME, secret:NAME, subprocess, or one of "
            + ", ".join(sorted(HOST_PERMISSIONS))
        )
    return str(error.get("msg", ""))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error = http_error(
            "not_found",
            f"there is no {request.url.path} on this host",
            hint=_without_slash(request) + f"see {request.base_url}openapi.json for the API",
        )
    elif exc.status_code == 405:
        allowed = _allowed(request)
        error = http_error(
            "method_not_allowed",
            f"{request.method} is not allowed on {request.url.path}",
            hint=f"use {', '.join(allowed)}; see {request.base_url}openapi.json",
        )
        return error_response(error, 405, {"Allow": ", ".join(allowed)})
    elif exc.status_code == 400:
        error = http_error(
            "body_invalid",
            f"the request body is not valid JSON ({exc.detail})",
            hint=f"send a JSON object; see {request.base_url}openapi.json for what this endpoint takes",
        )
    else:
        error = http_error("http_error", str(exc.detail))
    return error_response(error, exc.status_code, dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug in the host: the one JSON error shape, with the request id the log has (the
    gate logs the traceback under it, as the exception goes on past this answer)."""
    request_id = getattr(request.state, "request_id", None) or "?"
    error = http_error(
        "internal_error",
        "plugbay failed on this request (a bug in the host)",
        hint=f"the host's log (host.log in the state directory of 'plugbay run') has the traceback under request {request_id}; please report it",
    )
    return error_response(error, 500)


def _allowed(request: Request, path: str | None = None) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first's), or
    at ``path`` (within the app)."""
    # from the OpenAPI document: what the API says it serves is what Allow should say
    methods: set[str] = set()
    path = path or route_path(request.scope)  # (under a mount's prefix: the path within it)
    for template, operations in request.app.openapi()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            methods |= {m.upper() for m in operations}
    if not methods:  # a path the document lists per plugin, for a plugin it does not know
        for route in (*router.routes, *_dashboard.router.routes):
            if isinstance(route, APIRoute) and route.path_regex.match(path):
                methods |= route.methods or set()
    return sorted(methods)


def _without_slash(request: Request) -> str:
    """The start of a 404's hint when the path is a route's with a trailing slash: the
    path to use (``""``: it is not)."""
    path = route_path(request.scope)
    if len(path) < 2 or not path.endswith("/"):
        return ""
    if not _allowed(request, path.rstrip("/")):
        return ""
    return f"use {request.url.path.rstrip('/')} (without the trailing slash); "


def _openapi(api: FastAPI) -> dict[str, Any]:
    """The document: the routes, plus each known plugin's exact config body
    (``_plugin_docs``), rebuilt when the plugins change."""
    host = api.state.host
    key = plugins_key(host)
    cached = getattr(api.state, "openapi_for", None)
    if cached is not None and cached[0] == key:
        return cached[1]  # type: ignore[no-any-return]
    doc = add_plugin_paths(_routes_openapi(api), host)
    api.state.openapi_for = (key, doc)
    return doc


def _routes_openapi(api: FastAPI) -> dict[str, Any]:
    if api.openapi_schema:
        return api.openapi_schema
    schema = get_openapi(
        title=api.title,
        version=api.version,
        summary=api.summary,
        description=api.description,
        routes=api.routes,
        tags=[
            {"name": "plugins", "description": "What is loaded, and each plugin's detail."},
            {"name": "calls", "description": "Run a plugin's command."},
            {"name": "operations", "description": "Load, unload, reload, enable, disable."},
            {"name": "config", "description": "Read and change a plugin's config."},
            {"name": "history", "description": "What happened to each plugin."},
            {"name": "logs", "description": "Log records."},
            {"name": "health", "description": "Liveness, readiness and health."},
            {"name": "metrics", "description": "Prometheus text and JSON figures."},
            {"name": "dashboard", "description": "The dashboard page and its live stream."},
            {"name": "events", "description": "The host's system events, live."},
            {"name": "cluster", "description": "Where plugins run: a cluster's nodes (Ray)."},
        ],
    )
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The host's API token: 'plugbay token' prints it.",
        },
        "cookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "plugbay_token",
            "description": "Set by opening /?token=… (the dashboard).",
        },
    }
    schema["security"] = [{"bearer": []}, {"cookie": []}]
    schema["paths"]["/healthz"]["get"]["security"] = []
    _describe_stream(schema)
    _system_events.describe(schema)
    add_door_errors(schema)
    api.openapi_schema = schema
    return schema


def _describe_stream(schema: dict[str, Any]) -> None:
    """Each server-sent event of ``/api/v1/stream``: ``event: sample`` with a JSON
    ``data`` line (OpenAPI before 3.2 has a ``text/event-stream`` schema describe one
    event, with ``data`` as text whose ``contentSchema`` is what it decodes to)."""
    components = schema["components"]["schemas"]
    sample = StreamSample.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in sample.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components["StreamSample"] = sample
    content = schema["paths"]["/api/v1/stream"]["get"]["responses"]["200"]["content"]
    content["text/event-stream"]["schema"] = _system_events.event_schema("sample", "StreamSample")


_DESCRIPTION: Final = """
Every endpoint but `/healthz` needs the host's token: `Authorization: Bearer <token>`
(`plugbay token` prints it). Errors are `{"error": {"code", "message", "where", "hint", …}}`
with the status that fits: 401 no or wrong token, 403 a cookie used across origins or
a token without the scope, 404 unknown plugin or command, 408 headers not whole within
10 s (or a body within 30 s after them), 409 not in a state for this, 413 body too
large, 400 a body sent as JSON that is not JSON, 422 parameters or body of the wrong
shape, 502/504 the plugin's own failure or time limit, 503 the host is stopping or its
state cannot be used, 507 the disk holding the state is full (nothing was changed).
Each operation lists the statuses it can answer. Every response carries
`X-Request-ID`; a 5xx has it in its body too, and the host's log has it with the traceback.

Request bodies are JSON (`Content-Type: application/json`). A body that parses as JSON
but was sent as another media type (`application/x-www-form-urlencoded`, what `curl -d`
sends without `-H 'Content-Type: application/json'`, or `text/plain`) is read as JSON too,
on every route; a body that is not JSON is refused, saying how to send it.

Paths have no trailing slash: `/api/v1/plugins/` is a 404 whose hint names
`/api/v1/plugins`. A `plugin` filter of a list (`history`, `logs`, `alerts`) takes a
plugin the host knows or has history of (an uninstalled one); an id never seen is a 404.
"""
