"""The manifest's ``[events]`` table and ``activation`` key.

``[events] emits`` lists the plugin events a plugin may emit (the host refuses
any other); ``[events.listens."NAME"]`` subscribes it to ``NAME`` with a
priority and a bounded queue of its own, whose overflow policy is declared.
``activation`` says when the plugin starts: ``"eager"`` (at host start, the
default), ``"on-call"`` (its first call) or ``"on-event:NAME"`` (its first
``NAME`` event, or its first call).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, cast

import msgspec

from plugbay.api.errors import ManifestError

__all__ = [
    "ACTIVATIONS",
    "EventListen",
    "EventsDoc",
    "Overflow",
    "check_events",
    "describe_events",
    "manifest_dict",
]

Overflow: TypeAlias = Literal["drop-oldest", "drop-newest", "block"]
OVERFLOWS: Final = ("drop-oldest", "drop-newest", "block")

#: event names are dotted lower-case, like plugin ids
_EVENT_RE: Final = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*\Z")
#: the host's own (system) events: ``SystemPlugin.on_system_event``, not plugin events
RESERVED: Final = ("host.", "plugin.", "security.")
ACTIVATIONS: Final = ("eager", "on-call", "on-event:NAME")
#: a listener's queue may hold at most this many events
MAX_QUEUE: Final = 100_000


class _ListenDoc(msgspec.Struct, forbid_unknown_fields=True, rename="kebab"):
    priority: int = 100
    queue: int = 100
    overflow: str = "drop-oldest"  # checked in check_events, for the message
    block_timeout: float = 1.0


class EventsDoc(msgspec.Struct, forbid_unknown_fields=True, rename="kebab"):
    emits: list[str] = []
    listens: dict[str, _ListenDoc] = {}


@dataclass(frozen=True, slots=True)
class EventListen:
    """One event a plugin listens to: lower ``priority`` runs first; at most ``queue``
    events wait for it; when full, ``overflow`` says which one is dropped (``block``:
    the sender waits up to ``block_timeout`` seconds, then the new one is dropped)."""

    event: str
    priority: int = 100
    queue: int = 100
    overflow: Overflow = "drop-oldest"
    block_timeout: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return {
            "priority": self.priority,
            "queue": self.queue,
            "overflow": self.overflow,
            "block-timeout": self.block_timeout,
        }


Fail = Callable[[str, str, str], ManifestError]

#: what happened to a listener's events, by event: queued, delivered, failed, dropped,
#: unheard
Counts = dict[str, dict[str, int]]


def describe_events(
    emits: tuple[str, ...],
    listens: dict[str, EventListen],
    activation: tuple[str, ...],
    counts: Counts | None = None,
) -> dict[str, Any]:
    """The ``events`` part of ``plugbay info``: what a plugin emits and hears (with each
    listener's queue so far, when a host runs it) and what starts it."""
    zero = {"queued": 0, "delivered": 0, "failed": 0, "dropped": 0, "unheard": 0}
    counts = counts or {}
    return {
        "emits": list(emits),
        "listens": [
            {"event": name, **spec.to_dict(), **counts.get(name, zero)}
            for name, spec in sorted(listens.items())
        ],
        # events an earlier version listened to, queued for it and passed on unheard by
        # the version that runs now (reloaded without the listen)
        "unheard": [
            {"event": name, "unheard": row["unheard"]}
            for name, row in sorted(counts.items())
            if name not in listens and row.get("unheard")
        ],
        "activation": list(activation) or ["eager"],
    }


def check_events(doc: EventsDoc, activation: str | list[str], fail: Fail) -> dict[str, Any]:
    """The manifest's ``emits``, ``listens`` and ``activation`` (empty: eager), or the
    :class:`ManifestError` at the line that is wrong (``fail(message, key, hint)``)."""
    for name in [*doc.emits, *doc.listens]:
        _check_name(name, fail)
    listens: dict[str, EventListen] = {}
    for name, spec in doc.listens.items():
        if not 1 <= spec.queue <= MAX_QUEUE:
            raise fail(
                f"events.listens.{name}: queue = {spec.queue} is out of range",
                "queue",
                f"a listener's queue holds 1 to {MAX_QUEUE:,} events",
            )
        if spec.overflow not in OVERFLOWS:
            raise fail(
                f"events.listens.{name}: overflow = '{spec.overflow}' is not a policy",
                "overflow",
                f"use one of: {', '.join(OVERFLOWS)}",
            )
        if spec.block_timeout <= 0:
            raise fail(
                f"events.listens.{name}: block-timeout must be positive", "block-timeout", ""
            )
        overflow = cast(Overflow, spec.overflow)
        listens[name] = EventListen(name, spec.priority, spec.queue, overflow, spec.block_timeout)
    return {
        "emits": tuple(dict.fromkeys(doc.emits)),
        "listens": listens,
        "activation": _activation(activation, listens, fail),
    }


def manifest_dict(
    emits: tuple[str, ...], listens: dict[str, EventListen], activation: tuple[str, ...]
) -> dict[str, Any]:
    """The ``events`` and ``activation`` of ``PluginManifest.to_dict``."""
    return {
        "events": {"emits": list(emits), "listens": {k: v.to_dict() for k, v in listens.items()}},
        "activation": list(activation) or ["eager"],
    }


def _check_name(name: str, fail: Fail) -> None:
    if not _EVENT_RE.match(name):
        raise fail(
            f"'{name}' is not a valid event name",
            name,
            "use lower-case dotted names such as 'cache.evicted'",
        )
    if name.startswith(RESERVED):
        raise fail(
            f"'{name}' is a system event name ({', '.join(p + '*' for p in RESERVED)} are the "
            "host's own)",
            name,
            "system events reach system plugins through on_system_event; name plugin events "
            "after the plugin, e.g. 'cache.evicted'",
        )


def _activation(
    value: str | list[str], listens: dict[str, EventListen], fail: Fail
) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if item == "eager":
            continue
        if item == "on-call":
            out.append(item)
            continue
        event = item.removeprefix("on-event:")
        if event == item or not event:
            raise fail(
                f"activation = '{item}' is not known",
                "activation",
                f"use one of: {', '.join(ACTIVATIONS)}",
            )
        if event not in listens:
            raise fail(
                f"activation = '{item}', but the plugin does not listen to '{event}'",
                "activation",
                f'add [events.listens."{event}"] (the event that starts it is delivered to it)',
            )
        out.append(item)
    if out and "eager" in items:
        raise fail(
            "activation mixes 'eager' with starting on demand",
            "activation",
            "say 'eager', or the on-demand triggers only",
        )
    return tuple(dict.fromkeys(out))
