"""The messages host and worker exchange, one tagged union of msgspec structs.

:mod:`plugbay.isolation.frames` frames and sends them (and re-exports them): this is
the protocol's vocabulary, that is its wire.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

__all__ = [
    "CHECKED_BY",
    "Call",
    "Cancel",
    "ChangeConfig",
    "Cleanup",
    "Describe",
    "ExportState",
    "Fail",
    "HostCall",
    "HostReply",
    "ImportState",
    "Init",
    "Load",
    "LoadManifest",
    "Loaded",
    "Log",
    "Many",
    "Message",
    "Metrics",
    "Ping",
    "Pong",
    "Profile",
    "RemoteCommand",
    "Reply",
    "Sample",
    "Security",
]


class RemoteCommand(msgspec.Struct, frozen=True):
    """What the host knows of a command that lives in a worker."""

    name: str
    signature: str
    description: dict[str, Any]
    #: JSON Schemas of its parameters and result; None: not built yet (a worker builds
    #: them only when the host sends :class:`Describe`)
    schema: dict[str, Any] | None
    timeout: float | None = None


class LoadManifest(msgspec.Struct, frozen=True, array_like=True):
    """What a worker needs of its plugin's manifest, read and checked by the host
    (``Load.manifest``): the worker takes it as is, never parsing or checking the
    manifest again (each page those steps touch would be the worker's own)."""

    id: str
    version: str
    type: str
    entry: str
    path: str | None
    root: str | None
    distribution: str | None
    #: the events it listens to (``import_plugin`` checks each has a handler)
    listens: list[str]


class Load(msgspec.Struct, tag=True):
    """host → worker: import the plugin described by this manifest."""

    manifest_path: str
    plugin_id: str
    config: dict[str, Any]
    data_dir: str
    host_version: str
    mode: str
    #: granted secrets, by name (they never travel through the environment)
    secrets: dict[str, str] = {}
    #: granted secrets without a value on this host (``Secrets.get`` says so)
    unset_secrets: list[str] = []
    #: what the worker's guard allows (``isolation.guard``); empty: not sandboxed
    rules: dict[str, Any] = {}
    #: "directory" (imported in a namespace of its own) or "entry-point" (by its name)
    origin: str = "directory"
    #: the host's bounds the worker applies first (``log_rate``, ``log_burst``,
    #: ``metric_series``)
    bounds: dict[str, float] = {}
    #: where ``context.storage`` is kept: "here" (the worker's data directory) or "host"
    #: (a plugin on a Ray node: every operation is a host call, ``isolation.remote_storage``)
    storage: str = "here"
    #: the manifest as the host checked it; None: the worker reads ``manifest_path``
    manifest: LoadManifest | None = None
    #: the services offered now, name → [version, provider, the range the manifest declares
    #: ("": none; "any": any version)]: ``require`` checks them at load
    #: (``isolation.offered_services``); None: not told, its first call says
    services: dict[str, list[str]] | None = None


class Loaded(msgspec.Struct, tag=True):
    commands: list[RemoteCommand]
    custom_execute: bool
    #: each sandbox layer as applied in this worker (``LayerStatus`` fields)
    layers: list[dict[str, Any]] = []
    #: the calls the worker runs in its loop itself (plain ``def`` commands and event
    #: handlers): while one is in flight, the heartbeat waits up to its time limit
    inline: list[str] = []
    #: the descriptor of its stack file, opened as it started (``diagnostics.stacks_fd``)
    stacks_fd: int = -1


class Security(msgspec.Struct, tag=True):
    """worker → host: the sandbox denied something, or a limit was hit."""

    event: dict[str, Any]


class Init(msgspec.Struct, tag=True):
    id: int


class Call(msgspec.Struct, tag=True):
    id: int
    command: str
    params: dict[str, Any]
    strict: bool = True


class Cancel(msgspec.Struct, tag=True):
    id: int


class Cleanup(msgspec.Struct, tag=True):
    id: int


class Describe(msgspec.Struct, tag=True):
    """host → worker: reply with each command's JSON Schemas by name (``CommandSpec.schema``),
    built only now: what only ``plugbay info`` and the HTTP API show costs no idle worker."""

    id: int


class ChangeConfig(msgspec.Struct, tag=True):
    """host → worker: the plugin's new config; reply True when its ``on_config_change``
    took it, False when it has no such hook (the host swaps it instead)."""

    id: int
    config: dict[str, Any]


class ExportState(msgspec.Struct, tag=True):
    """host → worker: reply with ``{"supported": bool, "state": plain data}`` (a reload)."""

    id: int


class ImportState(msgspec.Struct, tag=True):
    """host → worker: hand this state to the plugin's ``import_state`` (a reload)."""

    id: int
    state: Any = None


class Ping(msgspec.Struct, tag=True):
    id: int


class Pong(msgspec.Struct, tag=True):
    id: int


class Reply(msgspec.Struct, tag=True):
    """worker → host: the result of request ``id`` (plain data)."""

    id: int
    value: Any = None


class Fail(msgspec.Struct, tag=True):
    """worker → host: request ``id`` failed; ``error`` is ``PlugbayError.to_dict()``."""

    id: int
    error: dict[str, Any]


#: the key of a failed call's ``details`` that says the worker's typed boundary refused
#: its parameters before the plugin's code ran (``"worker"``): the caller's mistake
CHECKED_BY: Final = "checked_by"


class HostCall(msgspec.Struct, tag=True):
    """worker → host: call another plugin's command (a required service)."""

    id: int
    plugin: str
    command: str
    params: dict[str, Any]


class HostReply(msgspec.Struct, tag=True):
    id: int
    value: Any = None
    error: dict[str, Any] | None = None


class Log(msgspec.Struct, tag=True):
    level: int
    logger: str
    message: str
    fields: dict[str, Any] | None = None


class Metrics(msgspec.Struct, tag=True):
    """worker → host: the plugin's own counters, gauges and histograms (replace the last),
    and ``logs_dropped``: the log records the worker's rate limit dropped since the last."""

    data: dict[str, Any]


class Profile(msgspec.Struct, tag=True):
    """host → worker: run a call under the profiler; the Reply is {"value", "report"}."""

    id: int
    command: str
    params: dict[str, Any]
    strict: bool = True


class Sample(msgspec.Struct, tag=True):
    """host → worker: sample its own threads' stacks for ``seconds`` (the serving worker
    profiled in place); the Reply is :class:`plugbay.isolation.sampling.Samples`."""

    id: int
    seconds: float
    interval: float


Message = (
    Load
    | Loaded
    | Init
    | Call
    | Cancel
    | Cleanup
    | Describe
    | Ping
    | Pong
    | Reply
    | Fail
    | HostCall
    | HostReply
    | Log
    | Security
    | Metrics
    | Profile
    | Sample
    | ExportState
    | ImportState
    | ChangeConfig
)


class Many(msgspec.Struct, tag=True):
    """Several calls (host → worker) or answers (worker → host) in one frame: the ones a
    loop turn or a read joins (``Channel.send``). The receiving channel hands each on
    in order, as if each had come in a frame of its own; nothing else may be inside."""

    messages: list[Call | Reply]
