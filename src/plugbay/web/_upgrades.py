"""Upgrades that prove themselves, through the running host: the flight recorder,
canaries and shadows (``runtime.trials``).

A recording and a shadow's examples are calls as the users made them (parameters and
answers): only a token that may call the plugin, or ``admin``, sees them
(``web.scopes.sees_calls``). The gate refuses the recording to any other; a shadow's
comparison is shown to it with its examples withheld."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from plugbay.api.errors import ConfigError
from plugbay.runtime.canary import CanarySettings
from plugbay.web._api import HostDep, as_on_disk, errors
from plugbay.web._models import SEMVER_PATTERN
from plugbay.web.scopes import Access, sees_calls

__all__ = ["router"]

router = APIRouter(tags=["upgrades"])


def _whole(value: Any) -> Any:
    """A JSON number with nothing after the point is a whole number (``215.0``)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# whole numbers: JSON's ``5`` or ``5.0``, never ``"5"``, ``5.5`` or ``true`` (the bounds
# first, so the document says minimum and maximum)
_CALLS = Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_whole)]
_BYTES = Annotated[int, Field(ge=1024, le=1 << 30), BeforeValidator(_whole)]
_WINDOW = Annotated[int, Field(ge=1, le=10_000_000), BeforeValidator(_whole)]

_NDJSON = "application/x-ndjson"


class RecordRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    calls: _CALLS | None = Field(default=None, description="Keep the newest this many calls.")
    max_bytes: _BYTES | None = Field(
        default=None, description="Keep at most this many bytes of calls."
    )


class RecordingStatus(BaseModel):
    plugin: str
    recording: bool = Field(description="Whether calls are being recorded now.")
    calls: int = Field(description="Calls kept.")
    seen: int = Field(description="Calls recorded since the recorder started.")
    dropped: int = Field(description="Oldest calls dropped to stay within the bounds.")
    bytes: int
    limit_calls: int
    limit_bytes: int
    path: str | None = Field(description="The file beside the state (null: no state directory).")
    source: str = Field(description="'policy' ([policy] record) or 'api'.")
    started: float


class CanaryRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    version: str | None = Field(
        default=None,
        max_length=100,
        pattern=SEMVER_PATTERN,
        description="Installed version (default: the newest).",
    )
    share: float = Field(
        default=0.1, ge=0.0001, le=1, description="Share of live calls, 0.0001 (0.01%) to 1."
    )
    window_calls: _WINDOW | None = Field(
        default=200,
        description="Calls to the plugin the canary is watched for (null and no "
        "window_seconds: 200).",
    )
    window_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] | None = None
    min_calls: _CALLS = 5
    max_error_increase: float = Field(default=0.05, ge=0, le=1)
    max_latency_ratio: float = Field(default=2.0, gt=0, le=1000)


class ShadowRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    version: str | None = Field(
        default=None,
        max_length=100,
        pattern=SEMVER_PATTERN,
        description="Installed version (default: the newest).",
    )


class CanaryView(BaseModel):
    plugin: str
    to: str = Field(description="The canary's version.")
    state: str = Field(
        description="starting, running, promoting, rolling-back, promoted or rolled-back"
    )
    reason: str | None = Field(description="The breach that rolled it back.")
    settings: dict[str, Any]
    figures: dict[str, Any] = Field(
        description="Both versions' calls, errors, error rate and latency over the window."
    )
    model_config = ConfigDict(extra="allow")


class ShadowView(BaseModel):
    plugin: str
    to: str = Field(description="The shadow's version.")
    state: str = Field(description="starting, running, stopping or stopped")
    mirrored: int = Field(description="Live calls mirrored and compared.")
    differences: int = Field(description="Answers that differ plus new errors.")
    dropped: int = Field(description="Calls not mirrored (too many in flight).")
    commands: dict[str, Any] = Field(description="The comparison, per command.")
    withheld: str | None = Field(
        default=None,
        description="Why each command's examples are empty: they are calls as the users "
        "made them, for a token with call:ID or admin (null: none withheld).",
    )
    model_config = ConfigDict(extra="allow")


def _as_seen(view: dict[str, Any], request: Request) -> dict[str, Any]:
    """A shadow's comparison as the request's token may see it: its figures, and its
    examples only when the token may call the plugin."""
    access = getattr(request.state, "access", None)
    plugin = str(view.get("plugin"))
    if not isinstance(access, Access) or sees_calls(access.scopes, plugin):
        return view  # (no access: the app served without its gate, in tests)
    commands = {
        name: {**figures, "examples": []} for name, figures in view.get("commands", {}).items()
    }
    withheld = (
        f"the examples are calls as the users made them: they need a token with "
        f"call:{plugin} or admin"
    )
    return {**view, "commands": commands, "withheld": withheld}


_ERR = errors(400, 404, 409, 502, 503, 504)


class TrialsOverview(BaseModel):
    recordings: list[RecordingStatus]
    canaries: list[CanaryView] = Field(description="Running canaries, and how the last ones ended.")
    shadows: list[ShadowView] = Field(description="Running shadows, and the last ones' comparison.")


@router.get(
    "/api/v1/trials", response_model=TrialsOverview, responses=errors(),
    summary="Every recording, canary and shadow (the dashboard's upgrade pane)",
)  # fmt: skip
async def trials(host: HostDep, request: Request) -> TrialsOverview:
    overview = host.trials.overview()
    overview["shadows"] = [_as_seen(view, request) for view in overview["shadows"]]
    return TrialsOverview.model_validate(overview)


@router.post(
    "/api/v1/plugins/{plugin_id}/recording", response_model=RecordingStatus, responses=_ERR,
    summary="Start recording the plugin's calls (the flight recorder)",
)  # fmt: skip
async def record(
    plugin_id: str, host: HostDep, body: RecordRequest | None = None
) -> RecordingStatus:
    body = body or RecordRequest()
    status = host.trials.record(plugin_id, calls=body.calls, max_bytes=body.max_bytes)
    return RecordingStatus.model_validate(status)


@router.delete(
    "/api/v1/plugins/{plugin_id}/recording", response_model=RecordingStatus, responses=_ERR,
    summary="Stop recording (the file keeps the calls)",
)  # fmt: skip
async def stop_recording(plugin_id: str, host: HostDep) -> RecordingStatus:
    return RecordingStatus.model_validate(host.trials.stop_recording(plugin_id))


@router.get(
    "/api/v1/plugins/{plugin_id}/recording", response_class=Response,
    responses={**_ERR, 200: {"content": {_NDJSON: {"schema": {"type": "string"}}},
                             "description": "The recording: a header line, then a call a line"}},
    summary="The recording as a file (JSON lines; a token with call:ID or admin)",
)  # fmt: skip
async def recording(plugin_id: str, host: HostDep) -> Response:
    return Response(host.trials.recording(plugin_id), media_type=_NDJSON)


@router.post(
    "/api/v1/plugins/{plugin_id}/canary", response_model=CanaryView, responses=_ERR,
    summary="Send a share of live calls to a new version; promote or roll back on its figures",
)  # fmt: skip
async def canary(
    plugin_id: str, host: HostDep, body: CanaryRequest | None = None
) -> CanaryView | Response:
    """409 when the version cannot start as the plugin is configured (``config_invalid``,
    as a load meets it: the request gives no config)."""
    body = body or CanaryRequest()
    window_calls = body.window_calls
    if window_calls is None and body.window_seconds is None:  # no window given: the default
        window_calls = CanarySettings().window_calls
    settings = CanarySettings(
        share=body.share, window_calls=window_calls, window_seconds=body.window_seconds,
        min_calls=body.min_calls, max_error_increase=body.max_error_increase,
        max_latency_ratio=body.max_latency_ratio,
    )  # fmt: skip
    try:
        started = await host.trials.canary(plugin_id, body.version, settings)
    except ConfigError as exc:
        return as_on_disk(exc)
    return CanaryView.model_validate(started)


@router.get(
    "/api/v1/plugins/{plugin_id}/canary", response_model=CanaryView, responses=_ERR,
    summary="The running canary's figures, or how the last one ended",
)  # fmt: skip
async def canary_status(plugin_id: str, host: HostDep) -> CanaryView:
    return CanaryView.model_validate(host.trials.canary_status(plugin_id))


@router.delete(
    "/api/v1/plugins/{plugin_id}/canary", response_model=CanaryView, responses=_ERR,
    summary="Roll the running canary back now",
)  # fmt: skip
async def stop_canary(plugin_id: str, host: HostDep) -> CanaryView:
    return CanaryView.model_validate(await host.trials.stop_canary(plugin_id))


@router.post(
    "/api/v1/plugins/{plugin_id}/shadow", response_model=ShadowView, responses=_ERR,
    summary="Mirror live calls to a new version and compare its answers",
)  # fmt: skip
async def shadow(
    plugin_id: str, host: HostDep, body: ShadowRequest | None = None
) -> ShadowView | Response:
    """409 when the version cannot start as the plugin is configured, as for a canary."""
    body = body or ShadowRequest()
    try:
        started = await host.trials.shadow(plugin_id, body.version)
    except ConfigError as exc:
        return as_on_disk(exc)
    return ShadowView.model_validate(started)


@router.get(
    "/api/v1/plugins/{plugin_id}/shadow", response_model=ShadowView, responses=_ERR,
    summary="The shadow's comparison so far (or the last one's)",
)  # fmt: skip
async def shadow_status(plugin_id: str, host: HostDep, request: Request) -> ShadowView:
    return ShadowView.model_validate(_as_seen(host.trials.shadow_status(plugin_id), request))


@router.delete(
    "/api/v1/plugins/{plugin_id}/shadow", response_model=ShadowView, responses=_ERR,
    summary="Stop the shadow (its scratch data is removed)",
)  # fmt: skip
async def stop_shadow(plugin_id: str, host: HostDep) -> ShadowView:
    return ShadowView.model_validate(await host.trials.stop_shadow(plugin_id))


# --------------------------------------------------------------------------- bisect


class BisectOrder(BaseModel):
    order: list[str] = Field(description="The plugins active now, in start order.")
    needs: dict[str, list[str]] = Field(
        default_factory=dict, description="What each plugin of the bisect needs active."
    )


class BisectFailure(BaseModel):
    code: str = Field(description="The error's code, e.g. plugin_init_failed.")
    message: str = Field(description="Why it did not start.")
    hint: str | None = Field(default=None, description="What to do next.")


class BisectActivated(BisectOrder):
    failed: dict[str, BisectFailure] = Field(
        default_factory=dict,
        description="Each plugin asked for that did not start, with why (the check then "
        "runs without it).",
    )


class BisectActive(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    plugins: list[str] = Field(
        max_length=10_000, description="Exactly these are to be active (a prefix of the order)."
    )


class BisectMove(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    plugin: str = Field(max_length=300)
    version: str = Field(max_length=100, pattern=SEMVER_PATTERN)


class BisectVersions(BaseModel):
    versions: list[str] = Field(description="In the store, oldest first.")
    serving: str


class BisectRestored(BaseModel):
    problems: list[str] = Field(description="What could not be put back (empty: all of it).")


@router.post(
    "/api/v1/bisect", response_model=BisectOrder, responses=_ERR,
    summary="Begin a bisect: remember the active plugins and their versions",
)  # fmt: skip
async def bisect_begin(host: HostDep) -> BisectOrder:
    order, needs = await host.trials.bisect.begin()
    return BisectOrder(order=order, needs=needs)


@router.put(
    "/api/v1/bisect/active", response_model=BisectActivated, responses=_ERR,
    summary="Make exactly these plugins active (unload the rest, load what is missing)",
)  # fmt: skip
async def bisect_active(body: BisectActive, host: HostDep) -> BisectActivated:
    activated = await host.trials.bisect.activate(body.plugins)
    return BisectActivated.model_validate({"order": activated.order, "failed": activated.failed})


@router.get(
    "/api/v1/bisect/versions/{plugin_id}", response_model=BisectVersions, responses=_ERR,
    summary="The versions of a plugin in the store, and the one serving",
)  # fmt: skip
async def bisect_versions(plugin_id: str, host: HostDep) -> BisectVersions:
    versions, serving = await host.trials.bisect.versions(plugin_id)
    return BisectVersions(versions=versions, serving=serving)


@router.post(
    "/api/v1/bisect/move", response_model=BisectOrder, responses=_ERR,
    summary="Serve another version of a plugin (a swap)",
)  # fmt: skip
async def bisect_move(body: BisectMove, host: HostDep) -> BisectOrder:
    await host.trials.bisect.move(body.plugin, body.version)
    order, needs = await host.trials.bisect.begin()
    return BisectOrder(order=order, needs=needs)


@router.delete(
    "/api/v1/bisect", response_model=BisectRestored, responses=_ERR,
    summary="End the bisect: the plugins and versions active when it began, again",
)  # fmt: skip
async def bisect_restore(host: HostDep) -> BisectRestored:
    return BisectRestored(problems=await host.trials.bisect.restore())
