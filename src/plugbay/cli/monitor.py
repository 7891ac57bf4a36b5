"""Commands that watch a host: top, health, alerts, logs, metrics."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import JsonOpt, err, fail, out
from plugbay.cli._host import the_host
from plugbay.cli._options import (
    ConfigOpt,
    PluginsOpt,
    StateOpt,
    add_command,
    print_json,
)

if TYPE_CHECKING:
    from plugbay.cli.views import StateSource

__all__ = ["PANEL", "register"]

PANEL = "monitoring"


def _source(state_dir: Path) -> StateSource:
    """What the host on ``state_dir`` wrote, opened read-only (it may be gone, the disk
    may be read-only); says so when no host is running."""
    from plugbay.cli.views import StateSource
    from plugbay.web.client import running_host

    if running_host(state_dir) is None:
        from plugbay.cli.offline import say_no_host

        say_no_host(state_dir)
    try:
        return StateSource(state_dir)
    except PlugbayError as exc:
        fail(exc)


def logs(
    plugin_id: Annotated[str, typer.Argument(help="The plugin whose records to show")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records until Ctrl-C.")
    ] = False,
    level: Annotated[
        str, typer.Option("--level", "-l", help="Lowest level shown: debug, info, warning, error.")
    ] = "debug",
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many records first.")] = 50,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Show a plugin's log records (its logger, its worker's stdout/stderr, security events).

    Reads the records a host writes to its state within a second of their arrival, so
    it works beside `plugbay run`.
    With --json, one JSON object a line.
    """
    from plugbay.monitor.logs import level_number

    try:
        min_level = level_number(level)
    except ValueError as exc:
        fail(f"{exc} (--level)", code=2)
    source = _source(state)
    try:
        records = source.logs(plugin_id, min_level=min_level, limit=limit)
        if not records and not follow:
            _say_none_logged(source, plugin_id, level)
            return
        last = _print_records(records, as_json)
        while follow:
            sys.stdout.flush()
            time.sleep(0.5)
            more = source.logs(plugin_id, min_level=min_level, after_id=last, limit=1000)
            last = max(last, _print_records(more, as_json))
    except KeyboardInterrupt:
        return
    except PlugbayError as exc:
        fail(exc)
    finally:
        source.close()


def _print_records(records: list[dict[str, Any]], as_json: bool) -> int:
    """Print each record; the id of the newest (0 when none)."""
    from plugbay.cli.views import log_line

    for record in records:
        if as_json:
            out.print(json.dumps(record, default=str), markup=False, highlight=False)
        else:
            out.print(log_line(record))
    return max((int(r["id"]) for r in records), default=0)


def _say_none_logged(source: StateSource, plugin_id: str, level: str) -> None:
    from plugbay.api.errors import did_you_mean

    known = sorted({r["plugin"] for r in source.logs(None, limit=1000)})
    hint = did_you_mean(plugin_id, known) or (
        f"plugins with records: {', '.join(known)}" if known else "no plugin has logged yet"
    )
    err.print(f"no log records for '{escape(plugin_id)}' at {level} or above; {hint}")


def alerts(
    plugin_id: Annotated[str | None, typer.Argument(help="Only this plugin")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Cleared alerts too.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many alerts.")] = 100,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Show the alerts firing now (--all: every alert kept), newest first."""
    from plugbay.cli.views import alerts_table

    source = _source(state)
    try:
        rows = source.alerts(plugin_id, open_only=not all_, limit=limit)
    except PlugbayError as exc:
        fail(exc)
    finally:
        source.close()
    if as_json:
        print_json(rows)
    elif not rows:
        out.print("no alerts firing" if not all_ else "no alerts recorded")
    else:
        out.print(alerts_table(rows))


def health(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Each plugin's health (live, ready, green / degraded / failing, and why) and the host's.

    Exits 1 when the host is failing. Beside a running host, that host's.
    """
    from plugbay.cli.views import health_table

    with the_host(state, plugins, config, as_json=as_json) as host:
        snap = host.snapshot()
        readiness = host.readiness()
    if as_json:
        print_json({**snap, "readiness": readiness})
    else:
        out.print(health_table(snap))
        if readiness is not None:
            out.print(_readiness_text(readiness))
    raise typer.Exit(1 if (snap.get("host") or {}).get("health") == "failing" else 0)


def _readiness_text(now: dict[str, Any]) -> str:
    """``host: ready, 12 of 40 wanted plugins active`` (coloured by status)."""
    status = str(now.get("status"))
    progress = f"{now.get('active')} of {now.get('wanted')} wanted plugins active"
    colour = {"ready": "green", "degraded": "yellow", "starting": "yellow"}.get(status, "red")
    return f"host: [{colour}]{escape(status)}[/], {progress}"


def top(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
) -> None:
    """A live view of every plugin: state, health, calls/s, errors, p50/p99, memory, CPU, alerts.

    Beside a running host (`plugbay run` on the same --state) it shows that host,
    refreshed each second; otherwise it starts a host here and shows it.
    """
    from rich.live import Live

    from plugbay.cli.views import top_table

    with the_host(state, plugins, config) as host, contextlib.suppress(KeyboardInterrupt):
        if once:
            out.print(top_table(host.snapshot()))
            return
        with Live(top_table(host.snapshot()), console=out, refresh_per_second=2) as live:
            while True:
                host.wait(1.0)
                live.update(top_table(host.snapshot()))


def metrics(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
) -> None:
    """Print every plugin's metrics in the Prometheus text format.

    Beside a running host (`plugbay run` on the same --state), its /metrics is read;
    otherwise a host is started here for the figures.
    """
    with the_host(state, plugins, config) as host:
        sys.stdout.write(host.metrics())


def register(app: typer.Typer) -> None:
    """Attach the monitoring commands to ``app``."""
    for fn in (top, health, alerts, logs, metrics):
        add_command(app, fn, panel=PANEL)
