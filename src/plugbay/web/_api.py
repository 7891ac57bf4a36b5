"""The REST API's routes: plugins, calls, lifecycle operations, config, history, health.

Every handler is a thin layer over :class:`plugbay.host.Host`; errors are
:class:`PlugbayError`s, turned into a status and a JSON body in one place
(``_errors``). A lifecycle operation is one small function under
``# --- operations``: adding one (rollback, upgrade) is another such function.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from plugbay.api.errors import ConfigError, PlugbayError
from plugbay.model._config_words import pointing
from plugbay.runtime.config_aside import (
    kept_aside,
    kept_view,
    shown,
    unshown,
    versions_of,
    with_the_rest,
)
from plugbay.runtime.host import Host
from plugbay.runtime.live_config import masked, pending
from plugbay.web._bodies import not_json
from plugbay.web._errors import error_response, http_error
from plugbay.web._models import (
    AlertItem,
    CallResult,
    CommandInfo,
    ConfigChange,
    ConfigChanged,
    ConfigView,
    DisableRequest,
    HealthView,
    HistoryItem,
    LogRecord,
    OperationResult,
    PluginDetail,
    PluginSummary,
    Readiness,
    RollbackRequest,
    SeriesView,
    UnloadRequest,
    UpgradeRequest,
    UpgradeResult,
)
from plugbay.web._plugin_docs import check_json_values, schema_pointer
from plugbay.web._plugin_filter import known_to
from plugbay.web._responses import errors
from plugbay.web._rollback import rollback_targets, rollback_to
from plugbay.web._series import Series
from plugbay.web.scopes import Access

if TYPE_CHECKING:
    from plugbay.runtime.manager import PluginRecord

__all__ = ["as_on_disk", "caller", "errors", "router", "summary"]

log = logging.getLogger("plugbay.web")

router = APIRouter()


def _host(request: Request) -> Host:
    return request.app.state.host  # type: ignore[no-any-return]


HostDep = Annotated[Host, Depends(_host)]


def summary(rec: PluginRecord, rollback: str | None = None) -> PluginSummary:
    """A plugin's row; ``rollback``: the version a rollback would serve (``_rollback``)."""
    d = rec.to_dict()
    return PluginSummary(
        id=d["id"],
        version=d["version"],
        type=d["type"],
        state=d["state"],
        isolation=d["isolation"],
        uptime_seconds=d["uptime_seconds"],
        load_seconds=d["load_seconds"],
        reason=d["reason"],
        needs=d["needs"],
        restart=d["restart"],
        rollback_to=rollback,
    )


def caller(request: Request) -> str:
    """Who made a change, as the history and the events keep it: the API, with which token."""
    access = getattr(request.state, "access", None)
    if not isinstance(access, Access):  # the app served without its gate (tests)
        return "the API"
    if access.token_id == "host":  # the CLI with a host running, the dashboard
        return "the API, with the host's token"
    return f"the API, with token {access.token_id}"


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)


# --------------------------------------------------------------------------- health


@router.get("/healthz", tags=["health"], summary="Liveness: the host answers")
async def healthz() -> dict[str, str]:
    """Open to everyone (no token): says only that the host's event loop answers."""
    return {"status": "ok"}


@router.get(
    "/readyz", tags=["health"], response_model=Readiness,
    summary="Readiness: every plugin this start wants was started (with progress)",
    responses={**errors(), 503: {"model": Readiness, "description": "Starting or stopping."}},
)  # fmt: skip
async def readyz(host: HostDep) -> Response | Readiness:
    """``starting`` with ``active`` of ``wanted`` plugins while they start (503), then
    ``ready`` (or ``degraded`` when some failed); ``stopping`` once a stop began (503)."""
    now = host.readiness()
    ready = now["status"] in ("ready", "degraded")
    body = Readiness(ready=ready, **now)
    if not ready:
        return Response(body.model_dump_json(), status_code=503, media_type="application/json")
    return body


_HEALTH: Final = {
    "active": "green",
    "initializing": "degraded",
    "resolved": "degraded",
    "discovered": "degraded",
    "stopping": "degraded",
    "failed": "failing",
    "disabled": "disabled",
    "stopped": "stopped",
    "on-demand": "on-demand",
    "restarting": "degraded",
}


@router.get(
    "/api/v1/health", tags=["health"], response_model=HealthView, responses=errors(),
    summary="Each plugin's health (liveness, readiness, reasons) and the host's overall",
)  # fmt: skip
async def health(host: HostDep) -> HealthView:
    counts: dict[str, int] = {}
    for rec in host.plugins():
        counts[str(rec.state)] = counts.get(str(rec.state), 0) + 1
    if host.monitor is not None:
        checks = _builtins(host.health())
        return HealthView(
            status=checks["status"],
            plugins={c["plugin"]: c["status"] for c in checks["plugins"]},
            counts=counts,
            checks=checks["plugins"],
        )
    # monitoring off: from the states alone
    plugins = {r.id: _HEALTH.get(str(r.state), "degraded") for r in host.plugins()}
    values = set(plugins.values())
    overall: Literal["green", "degraded", "failing"] = "green"
    if "failing" in values:
        overall = "failing" if "green" not in values else "degraded"
    elif "degraded" in values:
        overall = "degraded"
    return HealthView(status=overall, plugins=plugins, counts=counts)


# --------------------------------------------------------------------------- metrics


@router.get(
    "/metrics", tags=["metrics"], response_class=Response, responses={
        **errors(), 200: {"content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                          "description": "Prometheus text format"}},
    summary="Every plugin's metrics in the Prometheus text format",
)  # fmt: skip
def prometheus(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    # a def route: FastAPI runs it in a thread, and the collector works on snapshots
    return Response(_host(request).render_metrics(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/api/v1/metrics", tags=["metrics"], responses=errors(),
    summary="Every plugin's metrics snapshot (calls, errors, latency quantiles, own figures)",
)  # fmt: skip
async def metrics_json(host: HostDep) -> dict[str, dict[str, Any]]:
    return {r.id: r.metrics.snapshot() for r in host.plugins() if r.metrics is not None}


@router.get(
    "/api/v1/plugins/{plugin_id}/series", tags=["metrics"], response_model=SeriesView,
    responses=errors(404), summary="The plugin's figures over the last minutes (the charts)",
)  # fmt: skip
async def series(plugin_id: str, request: Request, host: HostDep) -> SeriesView:
    host.plugin(plugin_id)
    sampler: Series = request.app.state.series
    return SeriesView.model_validate(
        {
            "plugin": plugin_id,
            "interval_seconds": sampler.interval,
            "points": sampler.history(plugin_id),
        }
    )


# --------------------------------------------------------------------------- plugins


@router.get(
    "/api/v1/plugins", tags=["plugins"], response_model=list[PluginSummary], responses=errors(),
    summary="Every plugin with version, type, state, isolation, uptime and what a rollback serves",
)  # fmt: skip
async def list_plugins(host: HostDep) -> list[PluginSummary]:
    records = host.plugins()
    targets = await rollback_targets(host, records)
    return [summary(r, targets[r.id]) for r in records]


@router.get(
    "/api/v1/plugins/{plugin_id}", tags=["plugins"], response_model=PluginDetail,
    responses=errors(404),
    summary="A plugin's manifest, commands with JSON schemas, dependencies, grants, limits, usage",
)  # fmt: skip
async def plugin_detail(plugin_id: str, host: HostDep) -> PluginDetail:
    rec = host.plugin(plugin_id)
    info = _builtins(host.info(plugin_id))
    await rec.describe_commands()
    commands = []
    for name, spec in sorted(rec.commands.items()):
        described = spec.describe()
        schema = _builtins(spec.schema())
        commands.append(
            CommandInfo(
                name=name,
                signature=described["signature"],
                doc=described.get("doc") or "",
                params_schema=schema.get("params") or {},
                result_schema=schema.get("result") or {},
                defs=schema.get("$defs") or {},
            )
        )
    info["commands"] = commands
    info["config"] = info.get("config") or {}
    info["permissions"] = info.get("permissions") or {"asked": [], "granted": [], "effective": []}
    return PluginDetail.model_validate(info)


# --------------------------------------------------------------------------- calls

_CALL_BODY: Final = {
    "requestBody": {
        "required": False,
        "description": "The command's parameters by name; GET the plugin for their JSON Schema.",
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": True}}
        },
    }
}
_encode_result = msgspec.json.Encoder(enc_hook=str).encode


@router.post(
    "/api/v1/plugins/{plugin_id}/commands/{command}", tags=["calls"], response_model=CallResult,
    responses=errors(400, 404, 409, 502, 504), openapi_extra=_CALL_BODY,
    summary="Call a command; the body's parameters are checked against the command's types",
)  # fmt: skip
async def call_command(plugin_id: str, command: str, request: Request) -> Response:
    host = request.app.state.host
    return await call_response(host, plugin_id, command, await request.body(), request.headers)


async def call_response(
    host: Host, plugin_id: str, command: str, body: bytes, headers: Mapping[str, str]
) -> Response:
    """The whole call route: the gate runs it directly for POSTs to the route's path (the
    hot path skips FastAPI's routing and dependency solving); the route above documents
    it and serves the same way when reached. ``headers`` are read only when the body
    does not parse (:func:`not_json`)."""
    try:
        if body.strip():
            try:
                params = msgspec.json.decode(body)
            except msgspec.DecodeError as exc:
                error, status = not_json(
                    headers, exc,
                    hint='send the parameters as a JSON object, e.g. {"text": "hello"}',
                    see=f"GET /api/v1/plugins/{plugin_id} gives the command's parameters",
                )  # fmt: skip
                return error_response(error, status)
        else:
            params = {}
        if not isinstance(params, dict):
            error = http_error(
                "parameter_invalid",
                f"the body must be a JSON object of parameters, not {type(params).__name__}",
                hint='send the parameters by name, e.g. {"text": "hello"}',
            )
            return error_response(error, 422)
        result = await host.call_with(plugin_id, command, params, strict=False)
    except PlugbayError as exc:
        return error_response(exc)
    return Response(_encode_result({"result": result}), media_type="application/json")


# --------------------------------------------------------------------------- operations

_OP: Final[dict[str, Any]] = {
    "tags": ["operations"],
    "response_model": OperationResult,
    "responses": errors(400, 404, 409, 503),
}


async def _done(host: Host, plugin_id: str, affected: list[str]) -> OperationResult:
    rec = host.plugin(plugin_id)
    if str(rec.state) == "failed" and rec.error is not None:
        raise rec.error  # it was attempted and failed: say why, with the plugin's own error
    rollback = await rollback_to(host, plugin_id)
    return OperationResult(plugin=summary(rec, rollback), affected=affected)


def as_on_disk(error: ConfigError) -> Response:
    """A start refused by the plugin's config, which no start request gives (the host
    config file, the run-time values kept in the state, the manifest's schema): the
    request was fine, the plugin cannot be served as it is configured (409, not 422)."""
    return error_response(error, 409)


@router.post("/api/v1/plugins/{plugin_id}/reload", summary="Reload from its files", **_OP)
async def reload(plugin_id: str, host: HostDep) -> OperationResult | Response:
    """Swap the plugin for what its files say now; the old version serves until the new
    one is initialized, and keeps serving if the new one fails (409, with the reason)."""
    try:
        await host.reload(plugin_id)
        return await _done(host, plugin_id, [plugin_id])
    except ConfigError as exc:
        return as_on_disk(exc)


@router.post("/api/v1/plugins/{plugin_id}/load", summary="Load a plugin that is not active", **_OP)
async def load(plugin_id: str, host: HostDep) -> OperationResult | Response:
    """Not loaded, failed or unloaded: started, with its required dependencies that are
    not running (plugins added to its directories since the start are found); 409 while
    it is active. ``affected``: each plugin it started."""
    before = {r.id for r in host.plugins() if str(r.state) == "active"}
    try:
        await host.load(plugin_id)
        started = [r.id for r in host.plugins() if str(r.state) == "active" and r.id not in before]
        return await _done(host, plugin_id, started)
    except ConfigError as exc:
        return as_on_disk(exc)


@router.post("/api/v1/plugins/{plugin_id}/unload", summary="Stop a plugin", **_OP)
async def unload(
    plugin_id: str, host: HostDep, body: UnloadRequest | None = None
) -> OperationResult:
    """Refused (409) while active plugins depend on it, unless ``cascade``."""
    stopped = await host.unload(plugin_id, cascade=body.cascade if body else False)
    return await _done(host, plugin_id, stopped)


@router.post("/api/v1/plugins/{plugin_id}/enable", summary="Enable and start a plugin", **_OP)
async def enable(plugin_id: str, host: HostDep) -> OperationResult | Response:
    try:
        await host.enable(plugin_id)
        return await _done(host, plugin_id, [plugin_id])
    except ConfigError as exc:
        return as_on_disk(exc)


@router.post("/api/v1/plugins/{plugin_id}/disable", summary="Stop a plugin and keep it off", **_OP)
async def disable(
    plugin_id: str, host: HostDep, request: Request, body: DisableRequest | None = None
) -> OperationResult:
    """Kept in the state across restarts, with the reason; ``plugin.disabled`` says it
    and who asked (the API, with which token)."""
    body = body or DisableRequest()
    stopped = await host.manager.disable(
        plugin_id, body.reason, cascade=body.cascade, by=caller(request)
    )
    return await _done(host, plugin_id, stopped)


@router.post(
    "/api/v1/plugins/{plugin_id}/rollback", summary="Return to the version that served before",
    **_OP,
)  # fmt: skip
async def rollback(
    plugin_id: str, host: HostDep, body: RollbackRequest | None = None
) -> OperationResult:
    """With the state it had then; the choice is kept across restarts. ``affected``: the
    plugin, then each dependent rolled back with it."""
    body = body or RollbackRequest()
    before = {r.id: r.version for r in host.plugins()}
    await host.manager.rollback_plugin(plugin_id, body.to, with_dependents=body.with_dependents)
    moved = [r.id for r in host.plugins() if r.id != plugin_id and r.version != before.get(r.id)]
    return await _done(host, plugin_id, [plugin_id, *moved])


@router.post(
    "/api/v1/plugins/{plugin_id}/upgrade", summary="Move to a newer installed version",
    tags=["operations"], response_model=UpgradeResult, responses=errors(400, 404, 409, 503),
)  # fmt: skip
async def upgrade(
    plugin_id: str, host: HostDep, body: UpgradeRequest | None = None
) -> UpgradeResult:
    """Each moved plugin swapped like a reload (the old version serves until the new one
    is ready); refused, naming each dependent and its range, when one would not accept
    it. A version installed since the host started (``plugbay install``) is found."""
    body = body or UpgradeRequest()
    if body.dry_run:
        host.refresh_installed()
        plan = host.manager.upgrade_plan(
            plugin_id, body.version, with_dependents=body.with_dependents
        )
    else:
        plan = await host.upgrade(plugin_id, body.version, with_dependents=body.with_dependents)
    return UpgradeResult(
        moved=plan.to_dict(),
        dry_run=body.dry_run,
        passed_over=_builtins(plan.passed_over),
        command_changes=None if body.dry_run else plan.command_changes,
    )


# --------------------------------------------------------------------------- config


def _config_view(host: Host, plugin_id: str) -> ConfigView:
    """Secret fields shown as ``***`` (sent back so, they keep their value)."""
    rec = host.plugin(plugin_id)
    schema = rec.manifest.config.describe() if rec.manifest and rec.manifest.config else {}
    return ConfigView.model_validate(
        {
            "plugin": plugin_id,
            "config": _builtins(masked(rec.manifest, rec.config)),
            "runtime": _builtins(shown(host, plugin_id, host.runtime_config(plugin_id))),
            "schema": _builtins(schema),
            "pending": pending(rec),
            "kept": _builtins(kept_view(host, plugin_id)),
        }
    )


@router.get(
    "/api/v1/plugins/{plugin_id}/config", tags=["config"], response_model=ConfigView,
    responses=errors(404, 503), summary="The plugin's config, run-time values and schema",
)  # fmt: skip
async def get_config(plugin_id: str, host: HostDep) -> ConfigView:
    host.refresh_installed()  # keys kept for a version installed since the start
    return _config_view(host, plugin_id)


@router.put(
    "/api/v1/plugins/{plugin_id}/config", tags=["config"], response_model=ConfigChanged,
    responses=errors(400, 404, 409, 503),
    summary="Change the run-time config: checked against the schema, then applied by a reload",
)  # fmt: skip
async def put_config(plugin_id: str, change: ConfigChange, host: HostDep) -> ConfigChanged:
    """The document lists this operation once per known plugin, with that plugin's own
    schema for ``values``; 409 when the plugin fails to start with the new values (the
    old ones stay). For a plugin that is not active the values are kept for its next
    start, and ``pending`` says what starts it. ``unchanged``: the change only touched
    keys kept aside for another version (``kept``), so nothing was applied."""
    rec = host.plugin(plugin_id)
    # a key only a version installed since the start declares is kept for it, not refused
    host.refresh_installed()
    sent = unshown(host, plugin_id, change.values)
    try:
        config = rec.manifest.config if rec.manifest else None
        versions = versions_of(host, plugin_id)
        elsewhere = {k for v in versions if v.config is not None for k in v.config.fields}
        try:
            values = check_json_values(plugin_id, config, sent, elsewhere)
        except ConfigError as exc:  # the JSON check stops short: the host's names the rest
            raise with_the_rest(host, plugin_id, sent, exc) from None
        before = host.runtime_config(plugin_id) or {}
        changed = {
            k for k in before.keys() | values.keys() if before.get(k, _NONE) != values.get(k, _NONE)
        }
        aside = kept_aside(rec.manifest, changed, versions)
        await host.set_config(plugin_id, values)
    except ConfigError as exc:  # a refused key: the hint ends where the keys are read
        raise pointing(exc, schema_pointer(plugin_id)) from None
    view = _config_view(host, plugin_id).model_dump(by_alias=True)
    return ConfigChanged.model_validate({**view, "unchanged": changed <= aside.keys()})


#: a key's value when it has none (``None`` is a value: JSON null)
_NONE: Final = object()


# --------------------------------------------------------------------------- history and logs


def _history(host: Host, plugin_id: str | None, limit: int) -> list[HistoryItem]:
    if host.state is None:
        raise http_error("state_error", "this host keeps no history (no state directory)")
    return [
        HistoryItem.model_validate(_builtins(e)) for e in host.state.history(plugin_id, limit=limit)
    ]


Limit = Annotated[int, Query(ge=1, le=10_000, description="How many events, newest first.")]


@router.get(
    "/api/v1/history", tags=["history"], response_model=list[HistoryItem],
    responses=errors(404, 503),
    summary="Load, reload, failure, enable, disable… events, newest first",
)  # fmt: skip
async def history(
    host: HostDep, limit: Limit = 100, plugin: Annotated[str | None, Query()] = None
) -> list[HistoryItem]:
    """``plugin``: one plugin's, also after it was uninstalled; 404 for an id never seen."""
    known_to(host, plugin)
    return _history(host, plugin, limit)


@router.get(
    "/api/v1/plugins/{plugin_id}/history", tags=["history"], response_model=list[HistoryItem],
    responses=errors(404, 503), summary="One plugin's events, newest first",
)  # fmt: skip
async def plugin_history(plugin_id: str, host: HostDep, limit: Limit = 100) -> list[HistoryItem]:
    """Also after it was uninstalled; 404 for an id never seen."""
    known_to(host, plugin_id)
    return _history(host, plugin_id, limit)


Level = Literal["debug", "info", "warning", "error", "critical"]


@router.get(
    "/api/v1/logs", tags=["logs"], response_model=list[LogRecord], responses=errors(404, 409),
    summary="The newest log records (oldest first), by level and plugin",
)  # fmt: skip
async def logs(
    host: HostDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    level: Level = "debug",
    plugin: Annotated[str | None, Query()] = None,
) -> list[LogRecord]:
    """Each plugin's logger, its worker's output and security events, as the monitor keeps
    them in memory (``plugbay logs`` reads the longer history in the state)."""
    floor = logging.getLevelNamesMapping()[level.upper()]
    if not known_to(host, plugin):
        return []  # uninstalled: the state has its records ('plugbay logs')
    out = []
    for r in host.logs(plugin, min_level=floor, limit=limit):
        row = _builtins(r)
        row["level"] = logging.getLevelName(row["level"]).lower()
        out.append(LogRecord.model_validate(row))
    return out


@router.get(
    "/api/v1/alerts", tags=["alerts"], response_model=list[AlertItem],
    responses=errors(404, 409), summary="The alerts firing now (all: cleared ones too)",
)  # fmt: skip
async def alerts(
    host: HostDep,
    plugin: Annotated[str | None, Query()] = None,
    all: Annotated[bool, Query(description="Cleared alerts too.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertItem]:
    if not known_to(host, plugin) and not all:
        return []  # uninstalled: nothing of it fires now
    if all and host.state is not None:
        rows = host.state.alerts(plugin, open_only=False, limit=limit)
    else:
        rows = host.alerts(plugin)[:limit]
    return [AlertItem.model_validate(_builtins(r)) for r in rows]


async def plugbay_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PlugbayError)
    return error_response(exc)
