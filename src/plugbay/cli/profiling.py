"""``plugbay profile``: where a plugin's time goes, in the process that serves it.

Beside a running host (``plugbay run`` / ``make run`` on the same ``--state``), the
worker serving the plugin samples its own stacks for ``--seconds`` while it keeps
serving (the host asks it through the channel it already has: no second copy, no
ptrace), and a flame graph is written: a speedscope file and an SVG. A COMMAND given
as well is called through that host while it is sampled. With no host running, a
COMMAND runs once under cProfile in a host started here, where the plugin would run.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import err, fail, out
from plugbay.cli._counted import counted
from plugbay.cli._host import RemoteHost, in_process
from plugbay.cli._options import (
    ConfigOpt,
    PluginIdArg,
    PluginsOpt,
    StateOpt,
    add_command,
    host_kwargs,
    to_builtins,
)
from plugbay.cli._seconds import finite_number, some_seconds
from plugbay.isolation.sample_bounds import MAX_INTERVAL, MAX_SECONDS, MIN_INTERVAL

if TYPE_CHECKING:
    from plugbay.isolation.sampling import Samples
    from plugbay.runtime.host import Host
    from plugbay.web.client import HostClient

__all__ = ["profile", "register"]


def profile(
    plugin_id: PluginIdArg,
    command: Annotated[
        str | None, typer.Argument(help="A command to call while it is profiled (optional)")
    ] = None,
    params: Annotated[list[str] | None, typer.Argument(help="key=value parameters")] = None,
    seconds: Annotated[
        float,
        typer.Option(
            "--seconds",
            "-s",
            max=MAX_SECONDS,
            callback=some_seconds,
            help=f"How long to sample the serving worker (above 0, ≤ {MAX_SECONDS:g}).",
        ),
    ] = 5.0,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            min=MIN_INTERVAL,
            max=MAX_INTERVAL,
            callback=finite_number,
            help=f"Seconds between two samples ({MIN_INTERVAL:g} to {MAX_INTERVAL:g}).",
        ),
    ] = 0.005,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where the flame graphs are written.")
    ] = Path("."),
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
) -> None:
    """Profile a plugin where it serves: its worker samples itself for --seconds.

    Beside a running host the serving worker is sampled as it serves (a COMMAND, if
    given, is called through the host meanwhile); writes PLUGIN.speedscope.json and
    PLUGIN.svg and prints the busiest functions. With no host running, a COMMAND runs
    once under cProfile in a host started here.
    """
    from plugbay.web.client import connect

    client = connect(state)
    if client is None:
        if command is None:
            fail(
                PlugbayError(
                    f"no host serves {state}: there is no serving worker to profile",
                    plugin=plugin_id,
                    hint="start one (make run, or plugbay run) and profile it beside it; or "
                    "give a COMMAND to profile one call in a host started here",
                )
            )
        one_call(plugin_id, command, params or [], host_kwargs(plugins, state, config))
        return
    with client:
        try:
            samples = sample_beside(client, plugin_id, command, params or [], seconds, interval)
        except PlugbayError as exc:
            fail(exc)
    write_flame_graphs(plugin_id, samples, out_dir)


def sample_beside(
    client: HostClient,
    plugin_id: str,
    command: str | None,
    params: list[str],
    seconds: float,
    interval: float,
) -> Samples:
    """Sample the serving process; call ``command`` through the same host meanwhile."""
    remote = RemoteHost(client, Path("."))
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = remote.call(plugin_id, command or "", params)
        except PlugbayError as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=call, daemon=True) if command else None
    if caller is not None:
        caller.start()
    samples: Samples = client.profile(plugin_id, seconds, interval)  # type: ignore[assignment]
    if caller is not None:
        caller.join()
        if "error" in outcome:
            raise outcome["error"]
        out.print(f"[bold]result:[/] {escape(repr(to_builtins(outcome['value'])))}")
    return samples


def write_flame_graphs(plugin_id: str, samples: Samples, out_dir: Path) -> None:
    from plugbay.isolation.sampling import flamegraph_svg, hottest, speedscope

    out_dir.mkdir(parents=True, exist_ok=True)
    scope = out_dir / f"{plugin_id}.speedscope.json"
    scope.write_text(json.dumps(speedscope(samples, plugin_id)))
    svg = out_dir / f"{plugin_id}.svg"
    svg.write_text(flamegraph_svg(samples, plugin_id))
    table = Table(
        title=f"{plugin_id}: pid {samples['pid']}, {counted(samples['samples'], 'sample')} over "
        f"{samples['seconds']:g} s (every thread)"
    )
    table.add_column("on stack", justify="right")
    table.add_column("running", justify="right")
    table.add_column("function (file:line)", overflow="fold")
    for name, inclusive, own in hottest(samples):
        table.add_row(f"{inclusive:.0%}", f"{own:.0%}", escape(name))
    out.print(table)
    err.print(f"wrote {scope} (open it at speedscope's site or app) and {svg}")


def one_call(plugin_id: str, command: str, params: list[str], kwargs: dict[str, Any]) -> None:
    """One call under cProfile in a host started here (no host runs)."""
    from plugbay.pdk.params import parse_params

    async def body(host: Host) -> tuple[Any, str]:
        spec = host.manager.command_spec(plugin_id, command)
        return await host.profile(plugin_id, command, parse_params(params, spec))

    kwargs["load"] = [plugin_id]
    result, report = in_process(kwargs, body)
    out.print(f"[bold]result:[/] {escape(repr(to_builtins(result)))}")
    out.print(report, markup=False, highlight=False)


def register(app: typer.Typer, panel: str) -> None:
    """Attach ``profile`` to ``app`` under ``panel`` (a develop tool)."""
    add_command(app, profile, panel=panel)
