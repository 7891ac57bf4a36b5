"""What the host knows of each plugin: its lifecycle state and record, and the
manager's settings (:mod:`plugbay.runtime.manager` runs them).

A record's ``state`` moves through::

    discovered → resolved → initializing → active → stopping → stopped
                     ↘ failed (reason kept)        ↘ disabled (by the operator)

and, for a plugin whose worker crashed, ``active → restarting`` while the supervisor
waits out its backoff (:class:`Restart` says which restart and when), then a new record
that stays ``restarting`` while the restart starts it, and ``→ active`` (or ``failed``
when the start fails); ``failed`` when the supervisor gives up
(:mod:`plugbay.runtime.supervision`).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugbay.api import CommandSpec
from plugbay.api.errors import PlugbayError
from plugbay.isolation import PluginHandle
from plugbay.isolation.policy import IsolationPolicy, Placement
from plugbay.model.manifest import PluginManifest
from plugbay.monitor import PluginMetrics

log = logging.getLogger("plugbay")

__all__ = [
    "ManagerSettings",
    "PluginRecord",
    "PluginState",
    "Restart",
    "Roster",
    "optional_only",
    "positive",
]


class PluginState(enum.StrEnum):
    DISCOVERED = "discovered"
    RESOLVED = "resolved"
    INITIALIZING = "initializing"
    ACTIVE = "active"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    DISABLED = "disabled"
    #: resolved and validated, not started: its first call or event starts it
    ON_DEMAND = "on-demand"
    #: its worker crashed (a Wasm instance trapped); the supervisor starts it again after
    #: a backoff, and it stays restarting until that start is over (calls wait)
    RESTARTING = "restarting"


@dataclass(frozen=True, slots=True)
class Restart:
    """The restart a crashed plugin waits for (its record is ``restarting``)."""

    #: which restart this is among the crashes within the window (1: after the first)
    attempt: int
    #: restarts the window allows before the supervisor gives up (``max_crashes`` - 1)
    attempts: int
    #: when the next try starts (Unix time); once the try runs, when it started
    at: float
    #: the backoff waited before it, seconds (doubles with each crash in the window)
    backoff: float
    #: the try runs: its start began, with the config the plugin had then
    under_way: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "max_attempts": self.attempts,
            "next_try": self.at,
            "backoff_seconds": self.backoff,
        }


class Roster(dict[str, "PluginRecord"]):
    """The records by plugin id, counting the times a plugin id came or went
    (:attr:`changes`): the monitor compares that number instead of every id each tick;
    and the times any record changed what it is (:attr:`epoch`)."""

    changes = 0
    #: bumped when a record is set or removed, and when a record's state or manifest
    #: changes (:meth:`changed`): what is derived from every record (the event bus's
    #: listeners of an event) is kept until it moves
    epoch = 0

    def __setitem__(self, plugin_id: str, rec: PluginRecord) -> None:
        if plugin_id not in self:
            self.changes += 1
        self.epoch += 1
        super().__setitem__(plugin_id, rec)

    def __delitem__(self, plugin_id: str) -> None:
        super().__delitem__(plugin_id)
        self.changes += 1
        self.epoch += 1

    def changed(self) -> None:
        """A record's state or manifest changed."""
        self.epoch += 1

    def pop(self, *args: object) -> object:  # type: ignore[override]
        raise TypeError("remove a record with del, so the roster counts it")

    setdefault = update = popitem = clear = pop  # type: ignore[assignment]


@dataclass(slots=True)
class PluginRecord:
    """Everything the host knows about one plugin id right now."""

    id: str
    manifest: PluginManifest | None
    state: PluginState = PluginState.DISCOVERED
    reason: str | None = None
    error: PlugbayError | None = None
    traceback: str | None = None
    handle: PluginHandle | None = None
    metrics: PluginMetrics | None = None
    needs: frozenset[str] = frozenset()
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    isolation: str = "inline"
    #: where the host's policy put it, with its limits and effective permissions
    placement: Placement | None = None
    load_seconds: float | None = None
    started_at: float | None = None
    transitions: list[tuple[float, str]] = field(default_factory=list)
    #: monotonic times of its crashes (the last day: ``supervision.CRASHES_KEPT``), for
    #: the restart policy (those within its window) and the ``restarts`` alert rule
    crashes: list[float] = field(default_factory=list)
    #: the restart it waits for while ``restarting``
    restart: Restart | None = None

    @property
    def version(self) -> str | None:
        return str(self.manifest.version) if self.manifest else None

    @property
    def commands(self) -> Mapping[str, CommandSpec]:
        return self.handle.commands if self.handle is not None else {}

    async def describe_commands(self, timeout: float = 10.0) -> None:
        """Its commands' JSON Schemas fetched when its worker has not sent them yet (they are
        built only when asked); a worker that cannot answer leaves them empty, and is told."""
        if self.handle is None:
            return
        try:
            await self.handle.describe_commands(timeout)
        except PlugbayError as exc:
            log.warning("%s: its commands' JSON Schemas are unknown: %s", self.id, exc)

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "id": self.id,
            "version": self.version,
            "type": m.type if m else None,
            "state": str(self.state),
            "reason": self.reason,
            "error": self.error.to_dict() if self.error else None,
            "isolation": self.isolation,
            "load_seconds": self.load_seconds,
            "uptime_seconds": (time.time() - self.started_at)
            if self.started_at and self.state is PluginState.ACTIVE
            else None,
            "needs": sorted(self.needs),
            "notes": list(self.notes),
            "restart": self.restart.to_dict()
            if self.restart is not None and self.state is PluginState.RESTARTING
            else None,
        }


@dataclass(frozen=True, slots=True)
class ManagerSettings:
    host_version: str
    data_root: Path
    mode: str = "production"
    #: default and maximum per-call timeout, seconds (a manifest may ask for less, or more up to max)
    call_timeout: float = 30.0
    max_call_timeout: float = 300.0
    init_timeout: float = 10.0
    cleanup_timeout: float = 5.0
    #: a crashed worker is restarted after backoff, doubling up to the maximum ...
    restart_backoff: float = 0.5
    restart_backoff_max: float = 30.0
    #: ... unless it crashed this many times within the window: then it is failed
    max_crashes: int = 5
    crash_window: float = 60.0
    #: count every call (calls, errors by type, latency histogram); off only to measure its cost
    monitoring: bool = True
    #: the operator's isolation policy: who runs inline, limits, grants, secrets
    policy: IsolationPolicy = field(default_factory=IsolationPolicy)
    #: the host's plugin directories (a core/ folder directly inside one is trusted)
    plugin_dirs: tuple[Path, ...] = ()
    #: after a swap, seconds in which the new version must pass its health probe (0: none)
    probation: float = 0.5
    #: the host config file, when the host read one (a refused value there is named by line)
    config_file: Path | None = None


def positive(value: float | None) -> float | None:
    """A figure from a manifest when it is set and above 0, else ``None`` (use the default)."""
    return value if value is not None and value > 0 else None


def optional_only(
    manifest: PluginManifest | None, dep: str, dep_manifest: PluginManifest | None
) -> bool:
    """Whether a plugin runs without ``dep`` (docs/manifest.md): it lists it only under
    ``[optional-dependencies]`` and ``[services] requires`` none of the services it
    provides. An optional dependency that is missing, disabled, failed or unloaded is
    skipped with a note; a provider of a required service is needed all the same."""
    if manifest is None or dep in manifest.dependencies:
        return False
    if dep not in manifest.optional_dependencies:
        return False
    provided = dep_manifest.provides if dep_manifest is not None else {}
    return not any(
        name in provided and rng.contains(provided[name]) for name, rng in manifest.requires.items()
    )
