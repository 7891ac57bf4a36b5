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
    from plugbay.cli._host import host_on
    from plugbay.cli.views import StateSource

    if host_on(state_dir) is None:
        from plugbay.cli.offline import say_no_host

        say_no_host(state_dir)
    try:
        return StateSource(state_dir)
    except PlugbayError as exc:
        fail(exc)


def logs(
    plugin_id: Annotated[
        str, typer.Argument(metavar="ID", help="The plugin whose records to show")
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records until Ctrl-C.")
    ] = False,
    level: Annotated[
        str, typer.Option("--level", "-l", help="Lowest level shown: debug, info, warning, error.")
    ] = "debug",
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="How many records first (1 or more).")
    ] = 50,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Show a plugin's log records (its logger, its worker's stdout/stderr, security events).

    Reads the records a host writes to its state within a second of their arrival, so
    it works beside `plugbay run`. An id that no plugin on disk has, and that no host
    here has seen, is an error naming the closest ids.
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
        if not records:
            _refuse_unknown(source, plugin_id, plugins, state, as_json=as_json)
            if not follow:
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
    """A plugin that is known here but has no records at ``level`` or above (yet)."""
    known = sorted({r["plugin"] for r in source.logs(None, limit=1000)} - {plugin_id})
    hint = f"plugins with records: {', '.join(known)}" if known else "no plugin has logged yet"
    err.print(f"no log records for '{escape(plugin_id)}' at {level} or above; {hint}")


def _refuse_unknown(
    source: StateSource, plugin_id: str, plugins: list[Path] | None, state: Path, *, as_json: bool
) -> None:
    """Exit 1, naming the closest ids, when ``plugin_id`` has no record, is on no plugins
    directory (``--plugins``, the running host's, the store) and no host here has run it:
    a typo must not pass for a plugin that has logged nothing."""
    if source.logs(plugin_id, limit=1):
        return  # it has records, above or below the level asked for
    from plugbay.api.errors import LIST_THE_PLUGINS, plugin_not_known

    dirs = _plugin_dirs(plugins, state)
    known = _known_ids(source, dirs, state)
    if plugin_id in known:
        return
    shown = ", ".join(sorted(known)[:12]) + (", …" if len(known) > 12 else "")
    fail(
        plugin_not_known(
            plugin_id,
            known,
            looked=f": none is on disk, and no host on {state} has run it",
            where=", ".join(str(d) for d in [*dirs, state]),
            otherwise=f"plugins known here: {shown}" if known else LIST_THE_PLUGINS,
        ),
        as_json=as_json,
    )


def refuse_unknown_id(plugin_id: str, state: Path, *, as_json: bool) -> None:
    """:func:`_refuse_unknown` for a command that found nothing for ``plugin_id`` in what
    the hosts here recorded (``plugbay history ID``), in the words ``logs`` and ``alerts``
    use; it says nothing more of a host that is not running."""
    from plugbay.cli.views import StateSource

    try:
        source = StateSource(state)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    try:
        _refuse_unknown(source, plugin_id, None, state, as_json=as_json)
    finally:
        source.close()


def _plugin_dirs(plugins: list[Path] | None, state: Path) -> list[Path]:
    """``--plugins`` (default ./plugins) and the running host's plugins directories."""
    from plugbay.web.client import running_host

    dirs = list(plugins or [Path("plugins")])
    running = running_host(state) or {}
    return dirs + [Path(d) for d in running.get("plugins", []) if Path(d) not in dirs]


def _known_ids(source: StateSource, dirs: list[Path], state: Path) -> set[str]:
    """Every plugin id on disk (``dirs`` and the store) or in what hosts recorded here:
    the live snapshot, the kept plugin rows, the history and the log records."""
    from plugbay.cli.offline import disk_rows

    known = {str(r["id"]) for r in disk_rows(dirs, state)[0]}
    known |= {str(r["id"]) for r in source.snapshot()["plugins"] if r.get("id")}
    known |= {row.plugin_id for row in source.store.plugins()}
    known |= {event.plugin_id for event in source.store.history(None, limit=1000)}
    return known | {str(r["plugin"]) for r in source.logs(None, limit=1000)}


def alerts(
    plugin_id: Annotated[str | None, typer.Argument(metavar="ID", help="Only this plugin")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Cleared alerts too.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="How many alerts (1 or more).")
    ] = 100,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Show the alerts firing now (--all: every alert kept), newest first.

    An id that no plugin on disk has, and that no host here has seen, is an error naming
    the closest ids (a typo must not read as "no alerts firing").
    """
    from plugbay.cli.views import alerts_table

    source = _source(state)
    try:
        rows = source.alerts(plugin_id, open_only=not all_, limit=limit)
        if plugin_id is not None and not rows:
            _refuse_unknown(source, plugin_id, None, state, as_json=as_json)
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
    """``host readiness: ready, 12 of 40 wanted plugins active`` (coloured by status):
    whether the plugins the start wanted run, not how well (the worst plugin health)."""
    status = str(now.get("status"))
    progress = f"{now.get('active')} of {now.get('wanted')} wanted plugins active"
    colour = {"ready": "green", "degraded": "yellow", "starting": "yellow"}.get(status, "red")
    return f"host readiness: [{colour}]{escape(status)}[/], {progress}"


def top(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
) -> None:
    """A live view of every plugin: state, health, calls/s, errors, p50/p99, memory, CPU, alerts.

    Beside a running host (`plugbay run` on the same --state) it shows that host,
    refreshed each second; with none, it says so and shows the plugins on disk as not
    running (it starts nothing).
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


#: --plugins and --config fed the host metrics used to start; kept, hidden, so that a
#: script passing them still runs (with a note), and without their environment variables
#: so that a shell exporting PLUGBAY_CONFIG for other commands gets no note
_UnusedPluginsOpt = Annotated[
    list[Path] | None, typer.Option("--plugins", "-p", hidden=True, show_default=False)
]
_UnusedConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", hidden=True, show_default=False)
]


def metrics(
    state: StateOpt = Path(".plugbay"),
    plugins: _UnusedPluginsOpt = None,
    config: _UnusedConfigOpt = None,
) -> None:
    """Print the running host's metrics in the Prometheus text format.

    Read from the host `plugbay run` serves on the same --state: its /metrics port, else
    its API. The figures are what that host counted while it served; with no host
    running there are none, so it says so and exits 1, starting nothing and writing
    nothing.
    """
    if plugins is not None or config is not None:
        given = [o for o, v in (("--plugins", plugins), ("--config", config)) if v is not None]
        err.print(
            f"[yellow]note:[/] {' and '.join(given)} {'are' if len(given) > 1 else 'is'} no "
            "longer used: 'plugbay metrics' reads the host running on --state, which has its "
            "own plugins and config"
        )
    _refuse_without_figures(state)
    with the_host(state) as host:
        sys.stdout.write(host.metrics())


def _refuse_without_figures(state: Path) -> None:
    """Exit 1 unless a host serves ``state`` with its API or its /metrics port: a host
    started here would count nothing, and would write its start (history, a backup)
    into the state for every scrape."""
    from plugbay.cli._host import unannounced_host
    from plugbay.web.client import running_host

    running = running_host(state)
    holder = unannounced_host(state) if running is None else None
    if holder is not None:
        fail(
            PlugbayError(
                f"a host (pid {holder['pid']}) holds {state.resolve()} and serves neither an "
                "API nor /metrics (an application's Host, a 'plugbay run' still starting, or "
                "another command's host)",
                hint="try again once 'plugbay run' has printed 'serving'; an application's "
                "Host gives its figures with host.render_metrics()",
            )
        )
    if running is None:
        fail(
            PlugbayError(
                f"no host is running on {state.resolve()}: metrics are what a running host "
                "counts, and none is started for them",
                hint="start one with 'plugbay run' (it serves /metrics on 127.0.0.1:9464 too), "
                "or point --state at the directory a host serves; 'plugbay history' and "
                "'plugbay logs ID' read what a host recorded",
            )
        )
    if not running.get("http") and not running.get("metrics_port"):
        fail(
            PlugbayError(
                f"the host (pid {running['pid']}) on {state.resolve()} serves neither its "
                "API nor /metrics (it runs with --no-http and --no-metrics)",
                hint="restart it without --no-metrics (or without --no-http) to read its "
                "figures; 'plugbay top --once' shows what it records in the state",
            )
        )


def register(app: typer.Typer) -> None:
    """Attach the monitoring commands to ``app``."""
    for fn in (top, health, alerts, logs, metrics):
        add_command(app, fn, panel=PANEL)
