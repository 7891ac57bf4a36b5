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
from plugbay.cli._options import StateOpt, add_command

__all__ = ["register"]

#: the data fields shown first on a line, in this order
_FIRST = ("version", "previous", "reason")


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
        int, typer.Option("--count", "-n", min=0, help="Stop after this many (0: until Ctrl-C).")
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
    try:
        with client:
            _follow(client.events(kind, max_events=count), as_json)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except PlugbayError as exc:
        fail(exc, as_json=as_json)


def _follow(stream: Any, as_json: bool) -> None:
    for message in stream:
        event = message.pop("event")
        if event == "open":
            kinds = ", ".join(message["kinds"]) or "every kind"
            err.print(f"[dim]following events ({escape(kinds)}); Ctrl-C stops[/]")
        elif event == "dropped":
            err.print(
                f"[yellow]warning:[/] {message['dropped']} event(s) lost: this reader fell "
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
