"""Commands about the plugins a host has: list, info, call, deps, load, unload, enable, disable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from plugbay.api.errors import PlugbayError
from plugbay.cli import env
from plugbay.cli._console import JsonOpt, fail, out
from plugbay.cli._counted import counted
from plugbay.cli._host import the_host
from plugbay.cli._options import (
    ConfigOpt,
    PluginIdArg,
    PluginsOpt,
    StateOpt,
    add_command,
    host_kwargs,
    print_json,
    state_text,
    to_builtins,
)
from plugbay.cli._plugin_views import deps_tree, print_info, print_listing

__all__ = ["PANEL", "register"]

PANEL = "plugins"


def list_(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List every plugin found, with version, type, state and load time.

    When a host is running on this state directory, it is asked through its API (or,
    without one, its recorded states are shown) and no plugin is started here.
    """
    with the_host(state, plugins, config, as_json=as_json) as host:
        listing = host.plugins()
    if as_json:
        print_json(listing.rows)
    else:
        print_listing(listing)


def info(
    plugin_id: Annotated[str, typer.Argument(metavar="ID", help="Plugin id, e.g. system.logging")],
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the traceback of a failure.")
    ] = False,
    sbom: Annotated[
        Path | None,
        typer.Option(
            "--sbom",
            help="Write the plugin's Python packages as a CycloneDX SBOM (JSON) to this file "
            "('-': standard output).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show a plugin's manifest, state, dependencies, dependents, commands and Python packages.

    A running host on this state directory is asked through its API. Beside one that
    serves no API (run --no-http, or an application's Host holding the state's lock),
    what it recorded is shown with the rest from disk, and a note says what is not
    known there; with no host running, what is on disk. No plugin is started then.
    """
    # only it and what it needs start here: nothing else
    with the_host(state, plugins, config, load=[plugin_id], as_json=as_json) as host:
        data = host.info(plugin_id)
    if sbom is not None:
        count = env.write_sbom(data, sbom)
        if str(sbom) != "-":
            packages = counted(count, "package")
            out.print(f"wrote a CycloneDX SBOM of {data['id']} ({packages}) to {sbom}")
        return
    if as_json:
        print_json(data)
    else:
        print_info(data, show_traceback=show_traceback)


def call(
    plugin_id: PluginIdArg,
    command: Annotated[
        str, typer.Argument(metavar="COMMAND", help="Command name ('plugbay info ID' lists them)")
    ],
    params: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="KEY=VALUE",
            help="Parameters as key=value. A str parameter takes the text as typed "
            """(text=007 is "007"; a JSON string, name='"Ada"', is unquoted); any other takes """
            "the value as JSON when it parses (n=3, a JSON list or object), else as text; "
            "a value starting with [ or { must then be valid JSON",
        ),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            metavar="FILE",
            help="Call once per parameter object in FILE ('-': standard input): a JSON array "
            "of objects, or one object a line. Answers print in order; exit 1 if any failed.",
        ),
    ] = None,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Call a plugin's command: [bold]plugbay call extension.processor respond text='I feel sad'[/]

    Only the plugin and what it needs are started. Values are converted to the
    command's parameter types; a wrong or missing one is reported before the
    plugin runs. With --batch, many calls go to the plugin at once (host.call_many).
    """
    if batch is not None:
        _call_batch(plugin_id, command, params, batch, state, plugins, config, as_json)
        return
    with the_host(state, plugins, config, load=[plugin_id], as_json=as_json) as host:
        result = host.call(plugin_id, command, params or [])
    if as_json:
        print_json({"ok": True, "result": to_builtins(result)})
    elif isinstance(result, str):
        out.print(result, markup=False)
    elif result is not None:
        print_json(to_builtins(result))


def _call_batch(
    plugin_id: str,
    command: str,
    params: list[str] | None,
    batch: str,
    state: Path,
    plugins: list[Path] | None,
    config: Path | None,
    as_json: bool,
) -> None:
    from plugbay.cli._batch import print_batch, read_batch

    if params:
        raise typer.BadParameter(
            "give the parameters either as key=value or in the batch, not both",
            param_hint="--batch",
        )
    try:
        sets = read_batch(batch)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    with the_host(state, plugins, config, load=[plugin_id], as_json=as_json) as host:
        results = host.call_many(plugin_id, command, sets)
    raise typer.Exit(print_batch(results, as_json=as_json))


def deps(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the dependency tree with the chosen versions; conflicts and cycles are marked.

    Reads manifests and resolves only: no plugin code runs.
    """
    from plugbay.model.discover import discover
    from plugbay.model.registry import PluginRegistry
    from plugbay.model.versions import Version
    from plugbay.runtime.host import HOST_VERSION

    found = discover(host_kwargs(plugins, state, config)["plugins_dir"], entry_points=True)
    registry = PluginRegistry(Version.parse(HOST_VERSION))
    problems = list(found.problems)
    for manifest in found.manifests:
        try:
            registry.register(manifest)
        except PlugbayError as exc:
            problems.append(exc)
    plan = registry.resolve_all()
    if as_json:
        print_json(_plan_dict(plan, registry.dependency_graph(), problems))
    else:
        _print_plan(plan, registry.dependency_graph(), problems)
    raise typer.Exit(1 if plan.failures or problems else 0)


def _plan_dict(plan: Any, graph: dict[str, Any], problems: list[PlugbayError]) -> dict[str, Any]:
    return {
        "selected": {k: str(m.version) for k, m in plan.selected.items()},
        "order": plan.order,
        "edges": {k: sorted(v) for k, v in plan.edges.items()},
        "graph": graph,
        "failures": {k: e.to_dict() for k, e in plan.failures.items()},
        "notes": plan.notes,
        "problems": [p.to_dict() for p in problems],
    }


def _print_plan(plan: Any, graph: dict[str, Any], problems: list[PlugbayError]) -> None:
    out.print(deps_tree(graph, plan))
    for pid, error in plan.failures.items():
        out.print(f"[red]{pid}:[/] {escape(str(error))}")
    for pid, notes in plan.notes.items():
        for note in notes:
            out.print(f"[yellow]{pid}:[/] {escape(note)}")
    for problem in problems:
        out.print(f"[red]problem:[/] {escape(str(problem))}")


def disable(
    plugin_id: PluginIdArg,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="Kept in the state, shown by list and info; a running host sends it with "
            "plugin.disabled (plugbay events).",
        ),
    ] = None,
    state: StateOpt = Path(".plugbay"),
    cascade: Annotated[
        bool,
        typer.Option(
            "--cascade",
            help="Disable it even though others need it: a running host stops them too; "
            "with no host, they do not start until it is enabled.",
        ),
    ] = False,
) -> None:
    """Disable a plugin: it is not started until enabled again (kept across restarts).

    A running host stops it at once (through its API).
    """
    with the_host(state) as host:
        stopped = host.disable(plugin_id, reason, cascade=cascade)
    also = f" (also stopped: {', '.join(stopped)})" if stopped else ""
    out.print(f"{plugin_id}: disabled{also}")


def enable(plugin_id: PluginIdArg, state: StateOpt = Path(".plugbay")) -> None:
    """Enable a plugin that was disabled; it starts with the host (a running host starts it now)."""
    with the_host(state) as host:
        now = host.enable(plugin_id)
    out.print(f"{plugin_id}: enabled" + (f", {state_text(now)}" if now else ""))


def load(
    plugin_id: PluginIdArg,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a plugin in the running host: one not loaded, failed, or unloaded.

    Its required dependencies that are not running start first, and plugins added to
    the host's plugin directories since it started are found (a dependency that was
    missing, under no --watch). Unlike 'enable', nothing is kept: a disabled plugin
    needs 'enable'. Unlike 'reload', it starts what does not serve; what serves is left
    as it is. With no host running nothing is started: 'plugbay run' starts every plugin.
    """
    with the_host(state, plugins, config, as_json=as_json) as host:
        done = host.load(plugin_id)
    if as_json:
        print_json({"ok": True, **done})
    elif not done["started"]:
        out.print(f"{plugin_id}: already active ({done['version']}); nothing to load")
    else:
        also = [p for p in done["started"] if p != plugin_id]
        with_ = f" (with {', '.join(also)})" if also else ""
        out.print(f"{plugin_id}: loaded {done['version']}{with_}, {state_text(done['state'])}")


def unload(
    plugin_id: PluginIdArg,
    cascade: Annotated[
        bool,
        typer.Option("--cascade", help="Stop the plugins that need it too (dependents first)."),
    ] = False,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a plugin in the running host until its next start or 'plugbay load ID'.

    Refused while running plugins need it, unless --cascade. Unlike 'disable', nothing
    is kept: the next start of the host starts it again. With no host running there is
    nothing to stop ('disable' keeps it from starting).
    """
    with the_host(state, plugins, config, as_json=as_json) as host:
        done = host.unload(plugin_id, cascade=cascade)
    if as_json:
        print_json({"ok": True, **done})
    elif plugin_id not in done["stopped"]:
        out.print(f"{plugin_id}: not running ({state_text(done['state'])}); nothing to unload")
    else:
        also = [p for p in done["stopped"] if p != plugin_id]
        out.print(
            f"{plugin_id}: unloaded" + (f" (also stopped: {', '.join(also)})" if also else "")
        )


def register(app: typer.Typer) -> None:
    """Attach the plugin commands to ``app``."""
    add_command(app, list_, panel=PANEL, name="list")
    for fn in (info, call, deps, load, unload, enable, disable):
        add_command(app, fn, panel=PANEL)
