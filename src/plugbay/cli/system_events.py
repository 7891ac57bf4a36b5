"""``plugbay events``: follow the system events of the host serving a state directory
(``GET /api/v1/events``), as they happen."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import JsonOpt, err, fail, out
from plugbay.cli._counted import counted
from plugbay.cli._options import StateOpt, add_command

__all__ = ["register"]

#: the data fields shown first on a line, in this order
_FIRST = ("version", "previous", "reason")
#: the families every system event's kind is in (``plugin.loaded``, ``security.denied``);
#: a family's members are open-ended (``plugin.{action}_failed``, a worker's
#: ``security.{kind}``), so a kind outside them is warned of, not refused
FAMILIES = ("alert", "cache", "canary", "host", "plugin", "recording", "security", "shadow")


def events(
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            "-k",
            help="Only this kind (repeatable); 'plugin.*' matches a prefix. Default: all.",
        ),
    ] = None,
    count: Annotated[
        int,
        typer.Option(
            "--count",
            "-n",
            min=0,
            max=100_000,  # as GET /api/v1/events takes them
            help="Stop after this many, up to 100000 (0: until Ctrl-C).",
        ),
    ] = 0,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Follow the host's system events as they happen: plugins loaded, unloaded, failed,
    reloaded, upgraded; a worker crashed; security denials; the host starting
    and stopping.

    Needs a running host (`plugbay run`) with its HTTP API; nothing that happened before
    is shown (`plugbay history` has that). Ends when the host stops.
    With --json, one JSON object a line: {"kind", "source", "data", "time"}.
    """
    from plugbay.web.client import connect

    client = connect(state, timeout=10)
    if client is None:
        fail(
            PlugbayError(
                f"no host with an HTTP API serves {state.resolve()}",
                hint="start one with 'plugbay run' (it serves its API unless --no-http), "
                "or name its state directory with --state",
            )
        )
    _warn_of_strangers(kind or [])
    try:
        with client:
            _follow(client.events(kind, max_events=count), as_json)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except PlugbayError as exc:
        fail(exc, as_json=as_json)


def _warn_of_strangers(kinds: list[str]) -> None:
    """One warning naming the kinds asked for that no system event has: else a typo
    follows forever and shows nothing, with no word why."""
    strangers = [k for k in kinds if not _of_a_family(k.strip())]
    if strangers:
        shown = ", ".join(f"{f}.*" for f in FAMILIES)
        err.print(
            f"[yellow]warning:[/] no system event is of kind {escape(', '.join(strangers))}: "
            f"system events are {shown} (e.g. --kind plugin.loaded, --kind 'plugin.*'); "
            "following anyway"
        )


def _of_a_family(kind: str) -> bool:
    """``plugin.loaded``, ``plugin.*``, ``plug*``, ``*``: a kind some system event may have."""
    if kind.endswith("*"):
        prefix = kind[:-1]
        return any(f"{f}.".startswith(prefix) or prefix.startswith(f"{f}.") for f in FAMILIES)
    return any(kind.startswith(f"{f}.") for f in FAMILIES)


def _follow(stream: Any, as_json: bool) -> None:
    for message in stream:
        event = message.pop("event")
        if event == "open":
            kinds = ", ".join(message["kinds"]) or "every kind"
            err.print(f"[dim]following events ({escape(kinds)}); Ctrl-C stops[/]")
        elif event == "dropped":
            err.print(
                f"[yellow]warning:[/] {counted(message['dropped'], 'event')} lost: this reader fell "
                "behind the host"
            )
        elif event == "system":
            if as_json:
                out.print(json.dumps(message, default=str), markup=False, highlight=False)
            else:
                out.print(_line(message), markup=False, highlight=False)
        out.file.flush()


def _line(event: dict[str, Any]) -> str:
    """``12:03:04  plugin.unloaded  acme.calc  version=1.0.0 result=ok``; a value with a
    space is quoted (``reason="ticket 42"``), one that is null left out."""
    data = {k: v for k, v in (event.get("data") or {}).items() if v is not None}
    plugin = data.pop("plugin", None)
    fields = [_field(k, data.pop(k)) for k in _FIRST if k in data]
    fields += [_field(k, v) for k, v in data.items()]
    when = time.strftime("%H:%M:%S", time.localtime(float(event.get("time") or 0)))
    who = plugin or (event.get("source") if event.get("source") != "host" else "")
    return "  ".join(part for part in (when, event["kind"], who or "", " ".join(fields)) if part)


def _field(key: str, value: Any) -> str:
    text = str(value)
    return f"{key}={json.dumps(text, ensure_ascii=False) if ' ' in text else text}"


def register(app: typer.Typer, panel: str) -> None:
    add_command(app, events, panel=panel)
