"""What the API answers, as pydantic models: the OpenAPI document is built from these."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plugbay.web._permission_view import PermissionView

__all__ = [
    "AlertItem",
    "CallResult",
    "CommandInfo",
    "ConfigChange",
    "ConfigChanged",
    "ConfigView",
    "DisableRequest",
    "HealthView",
    "HistoryItem",
    "LogRecord",
    "OperationResult",
    "PluginDetail",
    "PluginSummary",
    "Readiness",
    "RestartInfo",
    "RollbackRequest",
    "SeriesPoint",
    "SeriesView",
    "StreamSample",
    "UnloadRequest",
]

# SemVer 2.0.0 (semver.org's own expression, without named groups)
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

State = Literal[
    "discovered",
    "resolved",
    "initializing",
    "active",
    "stopping",
    "stopped",
    "failed",
    "disabled",
    "on-demand",
    "restarting",
]


class RestartInfo(BaseModel):
    """The restart a plugin whose worker crashed waits for (state ``restarting``)."""

    attempt: int = Field(description="Which restart this is among the crashes in the window.")
    max_attempts: int = Field(
        description="Restarts the window allows; one more crash and the host gives up (failed)."
    )
    next_try: float = Field(description="When the restart starts (Unix time).")
    backoff_seconds: float = Field(description="The wait before it (doubles with each crash).")


class _Plugin(BaseModel):
    """What the list and the detail both say of a plugin."""

    id: str
    version: str | None
    type: str | None
    state: State
    isolation: str
    uptime_seconds: float | None = Field(
        description="Seconds the version now serving has served (since its load, reload, "
        "upgrade or restart)."
    )
    load_seconds: float | None = Field(description="Time from import to initialized.")
    reason: str | None = Field(description="Why it is failed, disabled or restarting.")
    needs: list[str] = Field(description="Plugin ids it depends on (resolved).")
    restart: RestartInfo | None = Field(
        default=None, description="While restarting after a crash: which restart, and when."
    )


class PluginSummary(_Plugin):
    rollback_to: str | None = Field(
        default=None,
        description="The version POST …/rollback would serve (the one that served before, "
        "kept in the store); null: nothing to roll back to (a rollback is a 409).",
    )


class CommandInfo(BaseModel):
    name: str
    signature: str
    doc: str
    params_schema: dict[str, Any] = Field(description="JSON Schema of the call's body.")
    result_schema: dict[str, Any] = Field(description="JSON Schema of the result.")
    defs: dict[str, Any] = Field(
        default_factory=dict, description="Definitions the two schemas refer to ($defs)."
    )


class PluginDetail(_Plugin):
    # fields the host adds to its detail later pass through (the CLI shows them too)
    model_config = ConfigDict(extra="allow")

    manifest: dict[str, Any] | None
    error: dict[str, Any] | None = Field(description="The failure, as an error object.")
    sandbox: dict[str, Any] | None = Field(
        description="Sandboxed or not and why, secrets and environment granted, kernel layers."
    )
    location: dict[str, Any] | None = Field(
        None,
        description="Where it runs when not on the host's machine: backend, node, mode "
        "(a Ray bare actor or a worker of the node's agent), pid, sandboxed.",
    )
    versions_known: list[str]
    dependencies: dict[str, str] = Field(description="Plugin id → version range.")
    dependents: list[str]
    commands: list[CommandInfo]
    config: dict[str, Any]
    permissions: PermissionView = Field(
        description="asked, granted (and where each grant comes from), in force now and at "
        "the next start, pending, denied"
    )
    limits: dict[str, Any]
    usage: dict[str, Any] | None
    metrics: dict[str, Any] | None
    transitions: list[dict[str, Any]]
    notes: list[str]
    traceback: str | None


class CallResult(BaseModel):
    result: Any = Field(description="What the command returned, as JSON.")


class OperationResult(BaseModel):
    plugin: PluginSummary = Field(description="The plugin after the operation.")
    affected: list[str] = Field(description="Every plugin id the operation started or stopped.")


class DisableRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    reason: str | None = Field(
        default=None, max_length=2000, description="Kept in the state and shown."
    )
    cascade: bool = Field(
        default=False, description="Also stop the active plugins that depend on it."
    )


class RollbackRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    to: str | None = Field(
        default=None,
        max_length=200,
        pattern=SEMVER_PATTERN,
        description="This version, one the plugin store keeps (default: the one before). "
        "409 when it is not kept, or there is no earlier version.",
    )
    with_dependents: bool = Field(
        default=False,
        description="Roll back too each active dependent that would not accept it, to the "
        "version it had before (409 naming each one when false).",
    )


class UpgradeRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    version: str | None = Field(
        default=None,
        max_length=200,
        pattern=SEMVER_PATTERN,
        description="This installed version (default: the newest installed). 409 when an "
        "active dependent would not accept it.",
    )
    with_dependents: bool = Field(
        default=False, description="Move dependents too, to versions that accept the new one."
    )
    dry_run: bool = Field(default=False, description="Say what would move, change nothing.")


class UpgradeResult(BaseModel):
    moved: dict[str, dict[str, str]] = Field(
        description="Each plugin moved (or that would move), in order: {from, to}."
    )
    dry_run: bool
    passed_over: dict[str, Any] | None = Field(
        default=None,
        description="With no version named: the newer installed version left out because "
        "active dependents would refuse it: {version, dependents: {id: why}, hint}.",
    )
    command_changes: dict[str, list[dict[str, Any]]] | None = Field(
        default=None,
        description="Each moved plugin whose commands changed for a caller: a list of "
        "{command, change, parameter, was, now, note} (a command removed; a parameter "
        "renamed, removed, newly required or of another type). A note, not a refusal; "
        "null on a dry run, which loads no new code to compare.",
    )


class UnloadRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    cascade: bool = Field(
        default=False, description="Also stop the active plugins that depend on it."
    )


class ConfigView(BaseModel):
    plugin: str
    config: dict[str, Any] = Field(description="The config the plugin runs with now.")
    runtime: dict[str, Any] = Field(description="The values set at run time (state store).")
    schema_: dict[str, Any] = Field(
        alias="schema", serialization_alias="schema", description="Each key's type and limits."
    )
    pending: str | None = Field(
        default=None,
        description="Null when the plugin runs with this config (it is active); else why "
        "it does not yet, and what starts it with it (e.g. POST …/enable for a failed one).",
    )
    kept: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Keys set that the serving version does not declare and another "
        "installed version does, kept aside for it (not passed until it serves): "
        "{KEY: {value, version, type}}.",
    )


class ConfigChanged(ConfigView):
    unchanged: bool = Field(
        description="True when the config the serving version runs with is as it was: each "
        "key the change set or dropped is kept aside for another version (`kept` names it) "
        "or kept the value it had, so no on_config_change hook ran and no reload; the "
        "values are kept all the same. False: applied (or, with `pending`, taken at the "
        "next start)."
    )


class ConfigChange(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    values: dict[str, Any] = Field(
        description="Run-time values, replacing those set before (a key left out goes back "
        "to the host config's value, else the manifest's default); checked against the "
        "plugin's schema, then applied to an active plugin (its on_config_change hook, else "
        "a reload); a plugin that is not active takes them at its next start (`pending`)."
    )


class HistoryItem(BaseModel):
    id: int
    time: float
    plugin_id: str
    action: str
    version: str | None
    result: str
    reason: str | None
    details: dict[str, Any]


class HealthView(BaseModel):
    status: Literal["green", "degraded", "failing"]
    plugins: dict[str, str] = Field(
        description="Each plugin's status: green, degraded or failing; disabled or stopped "
        "when it is off."
    )
    counts: dict[str, int] = Field(description="Plugins by state.")
    checks: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Each plugin's liveness, readiness and the reasons (with monitoring on).",
    )


class Readiness(BaseModel):
    ready: bool
    status: Literal["ready", "degraded", "starting", "stopping", "stopped"]
    active: int = Field(description="Plugins this start wants that are active now.")
    wanted: int = Field(description="Plugins this start wants active.")
    failed: list[str]


class SeriesPoint(BaseModel):
    t: float
    state: str
    version: str | None
    reason: str | None = Field(description="Why it is failed or disabled.")
    uptime_seconds: float | None
    calls: int
    errors: int
    calls_per_s: float
    error_rate: float
    p50_ms: float | None
    p99_ms: float | None
    memory_mb: float | None
    memory_shared: bool = Field(description="True when the memory is the host's own process's.")
    memory_of: Literal["host", "worker", "module"] = Field(
        description="Whose memory `memory_mb` is: the host's process (inline), the plugin's "
        "worker, or a Wasm plugin's module (its linear memory)."
    )


class StreamSample(BaseModel):
    """The data of one ``sample`` event of ``/api/v1/stream``."""

    t: float = Field(description="When the figures were sampled (Unix time).")
    plugins: dict[str, SeriesPoint] = Field(description="Each plugin's newest figures.")


class SeriesView(BaseModel):
    plugin: str
    interval_seconds: float
    points: list[SeriesPoint]


class LogRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    time: float
    level: str = Field(description="debug, info, warning, error or critical.")
    plugin: str | None
    version: str | None = None
    logger: str
    message: str
    fields: dict[str, Any] = Field(default_factory=dict)


class AlertItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int | None = None
    plugin: str | None
    version: str | None = None
    rule: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    fired: float
    cleared: float | None = None
