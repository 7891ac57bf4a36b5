"""The ``plugbay`` command.

Every command that needs plugins starts an in-process host on the plugins
directory (``./plugins`` unless ``--plugins`` or ``PLUGBAY_PLUGINS`` says
otherwise) with its state in ``./.plugbay`` (``--state``/``PLUGBAY_STATE``).
Errors print one paragraph (what, where, what to do) and exit non-zero:
1 for a failure, 2 for a usage error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from plugbay.api.errors import PlugbayError
from plugbay.cli import env as env_cli
from plugbay.cli import tasks as tasks_cli
from plugbay.cli._console import JsonOpt, err, out
from plugbay.cli._console import fail as _fail

if TYPE_CHECKING:
    from plugbay.cli.views import StateSource

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="plugbay",
    help="A plugin host for Python applications: load plugins safely, see why one cannot load, "
    "call their commands.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

STATE_COLOURS = {
    "active": "green",
    "failed": "red",
    "disabled": "yellow",
    "stopped": "dim",
    "initializing": "cyan",
    "resolved": "cyan",
    "discovered": "cyan",
    "stopping": "cyan",
}

PluginsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--plugins",
        "-p",
        envvar="PLUGBAY_PLUGINS",
        help="Plugins directory (repeatable). Default: ./plugins",
        show_default=False,
    ),
]
StateOpt = Annotated[
    Path,
    typer.Option("--state", envvar="PLUGBAY_STATE", help="State directory (SQLite lives here)."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="PLUGBAY_CONFIG",
        help='Host config file with [plugins."id"] tables. Default: ./plugbay.toml if present',
        show_default=False,
    ),
]


def _host_kwargs(plugins: list[Path] | None, state: Path, config: Path | None) -> dict[str, Any]:
    if config is None and Path("plugbay.toml").is_file():
        config = Path("plugbay.toml")
    return {
        "plugins_dir": plugins or [Path("plugins")],
        "state_dir": state,
        "config_file": config,
    }


def _with_host(
    kwargs: dict[str, Any], body: Callable[[Any], Awaitable[T]], *, as_json: bool = False
) -> T:
    from plugbay.runtime.host import Host

    async def go() -> T:
        async with Host(**kwargs) as host:
            return await body(host)

    try:
        return asyncio.run(go())
    except PlugbayError as exc:
        _fail(exc, as_json=as_json)


def _state_text(state: str) -> str:
    return f"[{STATE_COLOURS.get(state, 'white')}]{state}[/]"


def _plugins_table(records: list[Any]) -> Table:
    table = Table(title=None, expand=False, header_style="bold")
    for col in ("plugin", "version", "type", "state", "load time"):
        table.add_column(col, justify="right" if col == "load time" else "left")
    for rec in records:
        m = rec.manifest
        load = f"{rec.load_seconds * 1000:.1f} ms" if rec.load_seconds is not None else "-"
        table.add_row(
            rec.id, rec.version or "?", m.type if m else "?", _state_text(str(rec.state)), load
        )
    return table


def _print_problems(records: list[Any], problems: list[PlugbayError]) -> None:
    shown = set()
    for rec in records:
        if rec.reason and str(rec.state) in ("failed", "disabled"):
            colour = "red" if str(rec.state) == "failed" else "yellow"
            out.print(f"[{colour}]{rec.state}:[/] {escape(rec.reason)}")
            shown.add(rec.reason)
    for problem in problems:
        if str(problem) not in shown and not problem.plugin:
            out.print(f"[red]problem:[/] {escape(str(problem))}")


# --------------------------------------------------------------------------- run


@app.command()
def run(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Start, print the table, stop: exit 1 if a plugin failed."),
    ] = False,
    metrics_port: Annotated[
        int,
        typer.Option(
            "--metrics-port", help="Serve Prometheus /metrics on 127.0.0.1 here (0: any free port)."
        ),
    ] = 9464,
    no_metrics: Annotated[
        bool, typer.Option("--no-metrics", help="Do not serve /metrics.")
    ] = False,
    http: Annotated[
        str,
        typer.Option(
            "--http",
            envvar="PLUGBAY_HTTP",
            help="Serve the API and dashboard on HOST:PORT (port 0: any free port).",
        ),
    ] = "127.0.0.1:8750",
    no_http: Annotated[
        bool, typer.Option("--no-http", help="Do not serve the API and dashboard.")
    ] = False,
    http_public: Annotated[
        bool,
        typer.Option(
            "--http-public",
            help="Allow --http on an address other machines can reach (the token guards it).",
        ),
    ] = False,
    http_max_body: Annotated[
        int, typer.Option("--http-max-body", help="Largest request body the API accepts, bytes.")
    ] = 1 << 20,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", "-w", help="Reload a plugin when its files change (dependents follow)."
        ),
    ] = False,
) -> None:
    """Start the host on the plugins directory and serve until Ctrl-C.

    Prints each plugin with version, type, state and load time, then serves.
    On Ctrl-C (or SIGTERM) plugins are cleaned up in reverse dependency order.
    """
    from plugbay.runtime.host import Host

    started = time.perf_counter()
    bind = None if no_http or once else _http_bind(http, http_public)

    async def serve() -> int:
        host = Host(**_host_kwargs(plugins, state, config))
        since = time.time()
        await host.start()
        try:
            records = host.plugins()
            out.print(_plugins_table(records))
            _print_problems(records, host.problems)
            active = sum(1 for r in records if str(r.state) == "active")
            failed = sum(1 for r in records if str(r.state) == "failed")
            out.print(
                f"[bold]plugbay {host.version}[/]: {active} active, {failed} failed, "
                f"ready in {(time.perf_counter() - started) * 1000:.0f} ms "
                f"(state: {host.state_dir})"
            )
            if once:
                return 1 if failed else 0
            web = await _start_http(host, bind, http_max_body) if bind is not None else None
            http_url = web.url if web is not None else None
            announcement = _announce(host, since, http=http_url)
            metrics_server = None
            if not no_metrics:
                from plugbay.runtime.prometheus import serve_metrics

                try:
                    metrics_server, port = serve_metrics(
                        host.manager, metrics_port, monitor=host.monitor
                    )
                    out.print(f"metrics: http://127.0.0.1:{port}/metrics")
                    announcement = _announce(host, since, http=http_url, metrics_port=port)
                except OSError as exc:
                    err.print(
                        f"[yellow]warning:[/] cannot serve /metrics on 127.0.0.1:{metrics_port}: "
                        f"{escape(str(exc))}; choose another with --metrics-port, or --no-metrics"
                    )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            watcher = None
            if watch:
                from plugbay.runtime.watch import PluginWatcher

                watching = PluginWatcher(host, on_change=_print_watch)
                watcher = asyncio.ensure_future(watching.run(stop))
                ready = asyncio.ensure_future(watching.ready.wait())
                await asyncio.wait(
                    [watcher, ready], return_when=asyncio.FIRST_COMPLETED, timeout=10
                )
                ready.cancel()
                out.print(
                    "watching " + ", ".join(str(d) for d in host.plugin_dirs) + " for changes"
                )
            out.print("serving; press Ctrl-C to stop")
            sys.stdout.flush()
            await stop.wait()
            if watcher is not None:
                await asyncio.wait([watcher], timeout=2)
            out.print("stopping: cleaning up plugins in reverse order")
            if metrics_server is not None:
                metrics_server.shutdown()
            announcement.unlink(missing_ok=True)
            if web is not None:
                await web.stop()
            return 0
        finally:
            await host.stop()
            if not once:
                out.print("stopped")

    try:
        code = asyncio.run(serve())
    except PlugbayError as exc:
        _fail(exc)
    raise typer.Exit(code)


def _print_watch(result: Any) -> None:
    stamp = time.strftime("%H:%M:%S")
    if result.ok:
        took = f" in {result.seconds * 1000:.0f} ms" if result.seconds else ""
        out.print(f"[dim]{stamp}[/] [green]{escape(result.message)}[/]{took}")
    else:
        out.print(f"[dim]{stamp}[/] [red]{result.action} failed:[/] {escape(result.message)}")
    sys.stdout.flush()


# --------------------------------------------------------------------------- a running host

HOST_FILE = "host.json"


def _announce(
    host: Any, since: float, *, http: str | None = None, metrics_port: int | None = None
) -> Path:
    """Tell other plugbay commands that a host serves this state directory (and where)."""
    path = Path(host.state_dir) / HOST_FILE
    path.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "since": since,
                "plugins": [str(d) for d in host.plugin_dirs],
                "http": http,
                "metrics_port": metrics_port,
            }
        )
    )
    return path


def _running_host(state_dir: Path) -> dict[str, Any] | None:
    """The host serving this state directory, if one is alive."""
    try:
        data = json.loads((state_dir / HOST_FILE).read_text())
        pid = int(data["pid"])
        os.kill(pid, 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"plugbay" not in f.read():
                return None  # a stale file, and the pid went to someone else
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(data)


def _recorded(
    state_dir: Path, running: dict[str, Any], plugin_dirs: list[Path]
) -> list[dict[str, Any]]:
    """Each plugin's state as the running host recorded it (no plugin is started)."""
    from plugbay.model.discover import discover
    from plugbay.state import StateStore

    found = discover(plugin_dirs, entry_points=True)
    newest: dict[str, Any] = {}
    for m in found.manifests:
        if m.id not in newest or m.version > newest[m.id].version:
            newest[m.id] = m
    outcome = {
        ("load", "ok"): "active",
        ("reload", "ok"): "active",
        ("upgrade", "ok"): "active",
        ("rollback", "ok"): "active",
        ("restart", "ok"): "initializing",
        ("unload", "ok"): "stopped",
        ("shutdown", "ok"): "stopped",
        ("disable", "ok"): "disabled",
    }
    rows = []
    with StateStore.open(state_dir) as store:
        for pid, manifest in sorted(newest.items()):
            row: dict[str, Any] = {
                "id": pid, "version": str(manifest.version), "type": manifest.type,
                "state": "unknown", "reason": None, "load_seconds": None,
            }  # fmt: skip
            for event in store.history(pid, limit=20):
                if event.time < running["since"]:
                    break
                if event.action in ("reload", "upgrade", "rollback") and event.result != "ok":
                    continue  # a failed swap leaves the version before it serving
                state = outcome.get(
                    (event.action, event.result), "failed" if event.result == "failed" else None
                )
                if state is None:
                    continue
                row.update(
                    state=state, version=event.version or row["version"], reason=event.reason
                )
                row["load_seconds"] = event.details.get("seconds")
                break
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- list / info


@app.command("list")
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
    client = _client(state)
    if client is not None:
        with client:
            _list_remote(client, as_json)
        return
    running = _running_host(state)
    if running is not None:
        dirs = plugins or [Path(d) for d in running.get("plugins", [])] or [Path("plugins")]
        rows = _recorded(state, running, dirs)
        if as_json:
            out.print_json(
                json.dumps([{**r, "source": f"host pid {running['pid']}"} for r in rows])
            )
            return
        table = Table(header_style="bold")
        for col in ("plugin", "version", "type", "state", "load time"):
            table.add_column(col, justify="right" if col == "load time" else "left")
        for r in rows:
            load = f"{r['load_seconds'] * 1000:.1f} ms" if r["load_seconds"] is not None else "-"
            table.add_row(r["id"], r["version"], r["type"], _state_text(r["state"]), load)
        out.print(table)
        for r in rows:
            if r["reason"] and r["state"] in ("failed", "disabled"):
                out.print(f"[red]{r['state']}:[/] {escape(r['reason'])}")
        out.print(
            f"[dim]as recorded by the host running since "
            f"{time.strftime('%H:%M:%S', time.localtime(running['since']))} (pid {running['pid']})[/]"
        )
        return

    async def body(host: Any) -> list[Any]:
        records = host.plugins()
        if as_json:
            return [r.to_dict() for r in records]
        out.print(_plugins_table(records))
        _print_problems(records, host.problems)
        return []

    rows = _with_host(_host_kwargs(plugins, state, config), body, as_json=as_json)
    if as_json:
        out.print_json(json.dumps(rows, default=str))


@app.command()
def info(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id, e.g. system.logging")],
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
    """Show a plugin's manifest, state, dependencies, dependents, commands and Python packages."""

    async def body(host: Any) -> dict[str, Any]:
        return host.info(plugin_id)  # type: ignore[no-any-return]

    client = _client(state)
    if client is not None:
        with client:
            data = _remote(lambda: client.info(plugin_id), as_json=as_json)
    else:
        kwargs = _host_kwargs(plugins, state, config)
        kwargs["load"] = [plugin_id]  # only it and what it needs: nothing else starts here
        data = _with_host(kwargs, body, as_json=as_json)
    if sbom is not None:
        count = env_cli.write_sbom(data, sbom)
        if str(sbom) != "-":
            out.print(f"wrote a CycloneDX SBOM of {data['id']} ({count} packages) to {sbom}")
        return
    if as_json:
        out.print_json(json.dumps(data, default=str))
        return
    m = data.get("manifest") or {}
    out.print(f"[bold]{data['id']}[/] {data['version'] or ''}  {_state_text(data['state'])}")
    if m.get("description"):
        out.print(escape(m["description"]))
    rows = [
        ("type", m.get("type")),
        ("entry", m.get("entry")),
        ("manifest", m.get("path")),
        ("capabilities", ", ".join(m.get("capabilities", [])) or "-"),
        ("host", m.get("host")),
        ("isolation", _isolation_text(data, m)),
        ("versions known", ", ".join(data["versions_known"]) or "-"),
        ("load time", f"{data['load_seconds'] * 1000:.1f} ms" if data["load_seconds"] else "-"),
    ]
    permissions = data.get("permissions") or {}
    if permissions.get("asked") or permissions.get("granted"):
        rows.append(("permissions", "asked: " + (", ".join(permissions["asked"]) or "-")))
        rows.append(("", "granted: " + (", ".join(permissions["granted"]) or "-")))
        rows.append(("", "in effect: " + (", ".join(permissions["effective"]) or "none")))
    if data.get("limits"):
        rows.append(("limits", _limits_text(data["limits"])))
    sandbox = data.get("sandbox") or {}
    if sandbox.get("secrets"):
        rows.append(("secrets", ", ".join(sandbox["secrets"]) + " (through context.secrets)"))
    if sandbox.get("layers"):
        rows.append(
            (
                "layers",
                ", ".join(
                    f"{layer['name']}{'' if layer['active'] else ' (off)'}"
                    for layer in sandbox["layers"]
                ),
            )
        )
    usage = data.get("usage") or {}
    if "rss_bytes" in usage:
        shared = " (the host's process, shared)" if usage.get("shared") else ""
        uss = f", USS {usage['uss_bytes'] / 2**20:.1f} MiB" if "uss_bytes" in usage else ""
        rows.append(
            (
                "usage",
                f"pid {usage['pid']}{shared}: RSS {usage['rss_bytes'] / 2**20:.1f} MiB{uss}, "
                f"CPU {usage['cpu_seconds']:.2f} s, {usage['open_files']} files, "
                f"{usage['threads']} threads",
            )
        )
    rows += env_cli.python_rows(data)
    rows += tasks_cli.task_rows(data)
    for key, value in rows:
        out.print(f"  [dim]{key:<15}[/] {escape(str(value))}")
    deps = data["dependencies"]
    out.print("  [dim]dependencies  [/] " + (", ".join(f"{k} {v}" for k, v in deps.items()) or "-"))
    opt = m.get("optional-dependencies") or {}
    if opt:
        out.print("  [dim]optional      [/] " + ", ".join(f"{k} {v}" for k, v in opt.items()))
    services = m.get("services") or {}
    for kind in ("provides", "requires"):
        if services.get(kind):
            out.print(
                f"  [dim]{'services ' + kind:<15}[/] "
                + ", ".join(f"{k} {v}" for k, v in services[kind].items())
            )
    out.print("  [dim]dependents    [/] " + (", ".join(data["dependents"]) or "-"))
    if data["commands"]:
        out.print("[bold]commands[/]")
        for c in data["commands"]:
            doc = f"  [dim]{escape(c['doc'].splitlines()[0])}[/]" if c["doc"] else ""
            out.print(f"  {escape(c['signature'])}{doc}")
    if data.get("config"):
        out.print("[bold]config[/] " + escape(json.dumps(data["config"])))
    for note in data.get("notes") or []:
        out.print(f"[yellow]note:[/] {escape(note)}")
    if data["reason"]:
        out.print(f"[red]reason:[/] {escape(data['reason'])}")
    if show_traceback and data.get("traceback"):
        out.print(data["traceback"], markup=False)
    elif data.get("traceback"):
        out.print("[dim](--traceback shows the traceback)[/]")


@app.command()
def metrics(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
) -> None:
    """Print every plugin's metrics in the Prometheus text format.

    Beside a running host (`plugbay run` on the same --state), its /metrics is read;
    otherwise a host is started here for the figures.
    """
    running = _running_host(state)
    port = running.get("metrics_port") if running else None
    if port:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{int(port)}/metrics", timeout=10) as r:
                sys.stdout.write(r.read().decode())
                return
        except OSError as exc:
            err.print(f"[yellow]warning:[/] the running host's /metrics did not answer ({exc}); "
                      "starting a host here instead")  # fmt: skip

    async def body(host: Any) -> bytes:
        return bytes(host.render_metrics())

    client = _client(state)
    if client is not None:
        with client:
            sys.stdout.write(_remote(client.metrics))
        return
    sys.stdout.write(_with_host(_host_kwargs(plugins, state, config), body).decode())


# --------------------------------------------------------------------------- call


def _parse_params(
    pairs: list[str], spec: Any, strings: frozenset[str] = frozenset()
) -> dict[str, Any]:
    by_name = {p.name: p for p in spec.params} if spec is not None else {}
    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise PlugbayError(
                f"'{pair}' is not key=value",
                hint="pass parameters as name=value, e.g. text='I am sad'",
            )
        key, _, raw = pair.partition("=")
        param = by_name.get(key)
        if key in strings or (param is not None and param.annotation is str):
            params[key] = raw
            continue
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@app.command()
def call(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id")],
    command: Annotated[str, typer.Argument(help="Command name")],
    params: Annotated[
        list[str] | None, typer.Argument(help="Parameters as key=value (JSON values allowed)")
    ] = None,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Call a plugin's command: [bold]plugbay call extension.processor respond text='I feel sad'[/]

    Only the plugin and what it needs are started. Values are converted to the
    command's parameter types; a wrong or missing one is reported before the
    plugin runs.
    """
    kwargs = _host_kwargs(plugins, state, config)
    kwargs["load"] = [plugin_id]

    async def body(host: Any) -> Any:
        spec = host.manager.command_spec(plugin_id, command)
        return await host.call_with(
            plugin_id, command, _parse_params(params or [], spec), strict=False
        )

    client = _client(state)
    if client is not None:
        with client:
            result = _remote(lambda: _call_remote(client, plugin_id, command, params or []),
                             as_json=as_json)  # fmt: skip
    else:
        result = _with_host(kwargs, body, as_json=as_json)
    if as_json:
        out.print_json(json.dumps({"ok": True, "result": _to_builtins(result)}, default=str))
    elif isinstance(result, str):
        out.print(result, markup=False)
    elif result is not None:
        out.print_json(json.dumps(_to_builtins(result), default=str))


def _to_builtins(value: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)


# --------------------------------------------------------------------------- deps


@app.command()
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

    kwargs = _host_kwargs(plugins, state, config)
    found = discover(kwargs["plugins_dir"], entry_points=True)
    registry = PluginRegistry(Version.parse(HOST_VERSION))
    problems = list(found.problems)
    for manifest in found.manifests:
        try:
            registry.register(manifest)
        except PlugbayError as exc:
            problems.append(exc)
    plan = registry.resolve_all()
    if as_json:
        data = {
            "selected": {k: str(m.version) for k, m in plan.selected.items()},
            "order": plan.order,
            "edges": {k: sorted(v) for k, v in plan.edges.items()},
            "graph": registry.dependency_graph(),
            "failures": {k: e.to_dict() for k, e in plan.failures.items()},
            "notes": plan.notes,
            "problems": [p.to_dict() for p in problems],
        }
        out.print_json(json.dumps(data, default=str))
        raise typer.Exit(1 if plan.failures or problems else 0)
    graph = registry.dependency_graph()
    needed = {d for k in graph for d in graph[k]}
    roots = [pid for pid in sorted(graph) if pid not in needed] or sorted(graph)
    tree = Tree("[bold]plugins[/]")

    def label(pid: str, rng: str | None) -> str:
        text = pid + (f" [dim]{rng}[/]" if rng else "")
        if pid in plan.failures:
            return f"[red]✗ {text}[/] [red]{plan.failures[pid].code}[/]"
        if pid in plan.selected:
            return f"[green]{text}[/] → {plan.selected[pid].version}"
        return f"[red]✗ {text} (not found)[/]"

    def add(node: Tree, pid: str, rng: str | None, path: tuple[str, ...]) -> None:
        child = node.add(label(pid, rng))
        if pid in path:
            child.add("[red]↻ cycle[/]")
            return
        for dep, dep_rng in sorted(graph.get(pid, {}).items()):
            add(child, dep, dep_rng, (*path, pid))

    for pid in roots:
        add(tree, pid, None, ())
    out.print(tree)
    for pid, error in plan.failures.items():
        out.print(f"[red]{pid}:[/] {escape(str(error))}")
    for pid, notes in plan.notes.items():
        for note in notes:
            out.print(f"[yellow]{pid}:[/] {escape(note)}")
    for problem in problems:
        out.print(f"[red]problem:[/] {escape(str(problem))}")
    raise typer.Exit(1 if plan.failures or problems else 0)


# --------------------------------------------------------------------------- enable / disable / history


@app.command()
def disable(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Kept in the state and shown.")
    ] = None,
    state: StateOpt = Path(".plugbay"),
    cascade: Annotated[
        bool,
        typer.Option("--cascade", help="A running host also stops what depends on it."),
    ] = False,
) -> None:
    """Disable a plugin: it is not started until enabled again (kept across restarts).

    A running host stops it at once (through its API)."""
    client = _client(state)
    if client is not None:
        with client:
            data = _remote(lambda: client.disable(plugin_id, reason, cascade=cascade))
        stopped = [p for p in data["affected"] if p != plugin_id]
        out.print(
            f"{plugin_id}: disabled" + (f" (also stopped: {', '.join(stopped)})" if stopped else "")
        )
        return
    _store_op(
        state, lambda s: s.set_enabled(plugin_id, False, reason or "disabled by the operator")
    )
    _store_op(state, lambda s: s.add_event(plugin_id, "disable", reason=reason))
    out.print(f"{plugin_id}: disabled")


@app.command()
def enable(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id")],
    state: StateOpt = Path(".plugbay"),
) -> None:
    """Enable a plugin that was disabled; it starts with the host (a running host starts it now)."""
    client = _client(state)
    if client is not None:
        with client:
            data = _remote(lambda: client.enable(plugin_id))
        out.print(f"{plugin_id}: enabled, {_state_text(data['plugin']['state'])}")
        return
    _store_op(state, lambda s: s.set_enabled(plugin_id, True))
    _store_op(state, lambda s: s.add_event(plugin_id, "enable"))
    out.print(f"{plugin_id}: enabled")


_PERMISSION_FORMS = (
    "network:HOST:PORT",
    "read:PATH",
    "write:PATH",
    "env:NAME",
    "secret:NAME",
    "subprocess",
)


def _check_permission(permission: str) -> None:
    kind, _, rest = permission.partition(":")
    ok = (kind == "subprocess" and not rest) or (
        kind in ("network", "read", "write", "env", "secret") and rest
    )
    if not ok:
        _fail(
            PlugbayError(
                f"'{permission}' is not a permission",
                hint="write one of: " + ", ".join(_PERMISSION_FORMS),
            ),
            code=2,
        )


def _isolation_text(data: dict[str, Any], manifest: dict[str, Any]) -> str:
    sandbox = data.get("sandbox") or {}
    where = data["isolation"]
    if sandbox.get("sandboxed"):
        where = "sandboxed worker"
    elif where == "process":
        where = "worker (not sandboxed)"
    reason = sandbox.get("reason")
    return f"{where}: {reason}" if reason else f"{where} (asked: {manifest.get('isolation', '-')})"


def _limits_text(limits: Mapping[str, Any]) -> str:
    def shown(key: str, value: Any) -> str:
        if value is None:
            return f"{key} unlimited" if key not in ("timeout",) else f"{key} host default"
        if key in ("memory", "file-size", "storage"):
            return f"{key} {value / 2**20:g} MiB"
        if key in ("timeout", "cpu-seconds"):
            return f"{key} {value:g} s"
        return f"{key} {value:g}"

    return ", ".join(shown(k, v) for k, v in limits.items())


@app.command()
def doctor(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any isolation layer is inactive.")
    ] = False,
) -> None:
    """Check which isolation layers this machine offers, and what each guarantees.

    Every layer is tried for real, in a short-lived child process, so the answer is
    what a sandboxed worker would get here. The host refuses to start a sandboxed
    plugin rather than run it with a layer missing.
    """
    from plugbay.isolation.limits import probe_all
    from plugbay.isolation.policy import IsolationPolicy

    statuses = probe_all()
    path = config or (Path("plugbay.toml") if Path("plugbay.toml").is_file() else None)
    try:
        data: dict[str, Any] = {}
        if path is not None:
            import tomllib

            data = tomllib.loads(path.read_text(encoding="utf-8"))
        policy = IsolationPolicy.from_config(data, where=str(path or "defaults"))
    except (OSError, ValueError) as exc:
        _fail(PlugbayError(f"cannot read the host config: {exc}", where=str(path)))
    except PlugbayError as exc:
        _fail(exc)
    trusted = list(policy.inline) + (["core/* plugins"] if policy.trust_core else [])
    report: dict[str, Any] = {
        "layers": [
            {"name": s.name, "active": s.active, "detail": s.detail, "guarantees": s.guarantees}
            for s in statuses
        ],
        "policy": {
            "config": str(path) if path else None,
            "inline": trusted,
            "defaults": dict(policy.defaults),
            "caps": dict(policy.caps),
        },
    }
    inactive = [s.name for s in statuses if not s.active]
    if as_json:
        out.print_json(json.dumps(report, default=str))
    else:
        table = Table(header_style="bold", show_lines=True)
        for col in ("layer", "here", "detail", "guarantees"):
            table.add_column(col, overflow="fold")
        for s in statuses:
            here = "[green]active[/]" if s.active else "[red]INACTIVE[/]"
            table.add_row(s.name, here, escape(s.detail), escape(s.guarantees))
        out.print(table)
        out.print("runs inline (trusted): " + escape(", ".join(trusted) or "nothing"))
        out.print(
            "every other plugin: a sandboxed worker with " + _limits_text(dict(policy.defaults))
        )
        if inactive:
            err.print(
                f"[yellow]warning:[/] inactive here: {', '.join(inactive)}. A sandboxed plugin "
                "cannot start without every layer; see the detail column for why, and run "
                "as root on Linux ≥ 6.7 with writable cgroups for all of them."
            )
        else:
            out.print(f"[green]all {len(statuses)} layers active[/]")
    if strict and inactive:
        raise typer.Exit(1)


@app.command()
def grant(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id")],
    permission: Annotated[
        str, typer.Argument(help="e.g. network:127.0.0.1:8080, env:HOME, subprocess")
    ],
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
) -> None:
    """Grant a plugin a permission its manifest asks for (deny by default: only what is
    both asked for and granted is allowed)."""
    _check_permission(permission)
    from plugbay.model.discover import discover

    found = discover(plugins or [Path("plugins")], entry_points=True)
    asked = {m.id: m.permissions.asked() for m in found.manifests}
    if plugin_id not in asked:
        _fail(
            PlugbayError(
                f"no plugin '{plugin_id}' is found",
                plugin=plugin_id,
                hint="'plugbay list' shows the plugins found",
            )
        )
    _store_op(state, lambda s: s.grant(plugin_id, permission))
    _store_op(state, lambda s: s.add_event(plugin_id, "grant", reason=permission))
    out.print(f"{plugin_id}: granted {escape(permission)}")
    if permission not in asked[plugin_id]:
        err.print(
            f"[yellow]note:[/] {plugin_id}'s manifest does not ask for {escape(permission)}, so it "
            "has no effect until it does (asked: "
            + escape(", ".join(asked[plugin_id]) or "nothing")
            + ")"
        )


@app.command()
def revoke(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id")],
    permission: Annotated[str, typer.Argument(help="A permission granted before")],
    state: StateOpt = Path(".plugbay"),
) -> None:
    """Take back a permission."""
    _check_permission(permission)
    if not _store_op(state, lambda s: s.revoke(plugin_id, permission)):
        _fail(PlugbayError(f"{permission} was not granted to '{plugin_id}'", plugin=plugin_id))
    _store_op(state, lambda s: s.add_event(plugin_id, "revoke", reason=permission))
    out.print(f"{plugin_id}: revoked {escape(permission)}")


@app.command()
def history(
    plugin_id: Annotated[str | None, typer.Argument(help="Only this plugin")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many events.")] = 50,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Show installs, loads, reloads, upgrades, rollbacks, failures, enables and disables,
    newest first, with versions, result and reason."""
    from types import SimpleNamespace

    client = _client(state)
    if client is not None:
        with client:
            rows = _remote(lambda: client.history(plugin_id, limit=limit), as_json=as_json)
        events: list[Any] = [SimpleNamespace(**r) for r in rows]
    else:
        events = _store_op(state, lambda s: s.history(plugin_id, limit=limit))
    if as_json:
        out.print_json(json.dumps([_to_builtins(vars(e) if isinstance(e, SimpleNamespace) else e)
                                   for e in events], default=str))  # fmt: skip
        return
    table = Table(header_style="bold")
    for col in ("time", "plugin", "action", "version", "result", "reason"):
        table.add_column(col)
    for e in events:
        colour = "green" if e.result == "ok" else "red"
        moved = e.details.get("from"), e.details.get("to")
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time)),
            e.plugin_id,
            e.action,
            f"{moved[0]} → {moved[1]}" if all(moved) and moved[0] != moved[1] else e.version or "",
            f"[{colour}]{e.result}[/]",
            escape((e.reason or "")[:120]),
        )
    out.print(table)


# --------------------------------------------------------------------------- the HTTP API


def _http_bind(text: str, public: bool) -> tuple[str, int]:
    from plugbay.web import is_loopback, parse_bind

    try:
        address, port = parse_bind(text)
    except PlugbayError as exc:
        _fail(exc, code=2)
    if not is_loopback(address):
        if not public:
            _fail(
                PlugbayError(
                    f"--http {text} would let other machines reach this host's API",
                    hint="add --http-public if that is what you want (every request still needs "
                    "the token), or bind 127.0.0.1",
                ),
                code=2,
            )
        err.print(
            f"[yellow]warning:[/] the API listens on {escape(address)}:{port}, reachable from "
            "other machines; anyone with the token can load, stop and call plugins. Keep it "
            "behind TLS and a firewall."
        )
    return address, port


async def _start_http(host: Any, bind: tuple[str, int], max_body: int) -> Any:
    """Serve the API and dashboard; a taken port is a warning, the host still serves."""
    from plugbay.web import HttpServer, TokenFile, create_app

    tokens = TokenFile(host.state_dir)
    token, made = tokens.ensure()
    server = HttpServer(create_app(host, tokens=tokens, max_body=max_body), *bind)
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        err.print(
            f"[yellow]warning:[/] cannot serve the API on {bind[0]}:{bind[1]}: "
            f"{escape(exc.strerror or str(exc))}; choose another with --http HOST:PORT, or --no-http"
        )
        return None
    out.print(f"api: {server.url}/api/v1  (OpenAPI: {server.url}/openapi.json)")
    if made:
        out.print(
            f"API token (made now, shown this once; 'plugbay token' shows it again): {token}\n"
            f"dashboard: {server.url}/?token={token}"
        )
    else:
        out.print(f"dashboard: {server.url}/ ('plugbay token' prints a sign-in link)")
    return server


def _client(state_dir: Path) -> Any:
    """A client of the host serving ``state_dir`` through its API, or None."""
    from plugbay.web.client import connect

    return connect(state_dir)


def _list_remote(client: Any, as_json: bool) -> None:
    rows = _remote(client.plugins, as_json=as_json)
    source = f"host pid {client.pid}"
    if as_json:
        out.print_json(json.dumps([{**r, "source": source} for r in rows]))
        return
    table = Table(header_style="bold")
    for col in ("plugin", "version", "type", "state", "isolation", "uptime", "load time"):
        table.add_column(col, justify="right" if col in ("uptime", "load time") else "left")
    for r in rows:
        load = f"{r['load_seconds'] * 1000:.1f} ms" if r["load_seconds"] is not None else "-"
        up = f"{r['uptime_seconds']:.0f} s" if r["uptime_seconds"] is not None else "-"
        table.add_row(
            r["id"], r["version"] or "?", r["type"] or "?", _state_text(r["state"]),
            r["isolation"], up, load,
        )  # fmt: skip
    out.print(table)
    for r in rows:
        if r["reason"] and r["state"] in ("failed", "disabled"):
            colour = "red" if r["state"] == "failed" else "yellow"
            out.print(f"[{colour}]{r['state']}:[/] {escape(r['reason'])}")
    out.print(f"[dim]from the running host at {client.url} ({source})[/]")


def _call_remote(client: Any, plugin_id: str, command: str, pairs: list[str]) -> Any:
    strings: frozenset[str] = frozenset()
    if pairs:  # text values stay text where the command takes a str
        detail = client.info(plugin_id)
        for c in detail["commands"]:
            if c["name"] == command:
                props = c["params_schema"].get("properties", {})
                strings = frozenset(k for k, v in props.items() if v.get("type") == "string")
    return client.call(plugin_id, command, _parse_params(pairs, None, strings))


def _remote(fn: Callable[[], T], *, as_json: bool = False) -> T:
    try:
        return fn()
    except PlugbayError as exc:
        _fail(exc, as_json=as_json)


# --------------------------------------------------------------------------- versions


def _refuse_running(state: Path, what: str) -> None:
    """A second host on a served state directory would fight the first one over it."""
    running = _running_host(state)
    if running is not None:
        _fail(
            PlugbayError(
                f"a host (pid {running['pid']}) serves {state}; '{what}' against a running host "
                "goes through its HTTP API",
                hint="stop that host first (Ctrl-C), run the command, then start it again; "
                "or use 'plugbay run --watch', which reloads on save",
            )
        )


@app.command()
def reload(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id")],
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Swap a plugin for what its files say now; its dependents follow when its version
    or a provided service changed. If the new code is broken, the old version keeps
    serving and the reason is printed (and kept in the history). A running host
    does it through its API."""
    client = _client(state)
    if client is not None:
        with client:
            data = _remote(lambda: client.reload(plugin_id), as_json=as_json)
        if as_json:
            out.print_json(json.dumps(data))
            return
        p = data["plugin"]
        out.print(f"{p['id']}: reloaded, {p['version']} {_state_text(p['state'])}")
        return
    _refuse_running(state, "reload")

    async def body(host: Any) -> dict[str, Any]:
        before = host.plugin(plugin_id).version
        rec = await host.reload(plugin_id)
        return {"id": plugin_id, "from": before, "to": rec.version, "seconds": rec.load_seconds}

    done = _with_host(_host_kwargs(plugins, state, config), body, as_json=as_json)
    if as_json:
        out.print_json(json.dumps({"ok": True, **done}))
    else:
        out.print(f"{plugin_id}: reloaded {done['from']} → {done['to']}")


@app.command()
def rollback(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id")],
    to: Annotated[
        str | None, typer.Option("--to", help="This version (default: the previous one).")
    ] = None,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Return to the version that served before (kept in the store), with the state it
    had then. The choice is kept: the next start serves that version too. A running
    host does it through its API."""
    client = _client(state)
    if client is not None:
        with client:
            before = _remote(lambda: client.info(plugin_id), as_json=as_json).get("version")
            data = _remote(lambda: client.rollback(plugin_id, to), as_json=as_json)
        p = data["plugin"]
        if as_json:
            out.print_json(
                json.dumps({"ok": True, "id": plugin_id, "from": before, "to": p["version"]})
            )
        else:
            out.print(f"{plugin_id}: rolled back {before} → {p['version']}")
        return
    _refuse_running(state, "rollback")

    async def body(host: Any) -> dict[str, Any]:
        before = host.plugin(plugin_id).version
        rec = await host.rollback(plugin_id, to)
        return {"id": plugin_id, "from": before, "to": rec.version}

    done = _with_host(_host_kwargs(plugins, state, config), body, as_json=as_json)
    if as_json:
        out.print_json(json.dumps({"ok": True, **done}))
    else:
        out.print(f"{plugin_id}: rolled back {done['from']} → {done['to']}")


@app.command()
def install(
    source: Annotated[Path, typer.Argument(help="A plugin directory, or a wheel (.whl)")],
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    require_signed: Annotated[
        bool | None,
        typer.Option(
            "--require-signed/--allow-unsigned",
            help="For a wheel: override the host's [policy] require-signed.",
            show_default=False,
        ),
    ] = None,
    find_links: env_cli.FindLinksOpt = None,
    offline: env_cli.OfflineOpt = None,
    index_url: env_cli.IndexUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a version of a plugin to the host's store, beside the versions already there.
    It serves after 'plugbay upgrade ID' (or at once if no other version of it exists).

    A sandboxed plugin's Python requirements are installed first, into an environment of
    its own (uv); an inline plugin's must fit the host's environment.

    A wheel is verified first (plugbay.pdk): its digest and signature against the host's
    trusted keys ('plugbay trust'), and refused when the host requires signed plugins and
    it is unsigned or signed by a key the host does not trust."""
    from plugbay.model.versions import Version
    from plugbay.runtime.host import HOST_VERSION
    from plugbay.runtime.store import PluginStore

    if source.is_file() and source.suffix == ".whl":
        from plugbay.pdk.signing import TrustPolicy, verify_wheel

        if config is None and Path("plugbay.toml").is_file():
            config = Path("plugbay.toml")
        try:
            checked = verify_wheel(
                source, TrustPolicy.for_host(state, config, require_signed=require_signed)
            )
        except PlugbayError as exc:
            _fail(exc, as_json=as_json)
        if not as_json:
            who = f"signed by trusted key {checked.signed_by}" if checked.signed_by else "unsigned"
            out.print(
                f"verified {checked.wheel.manifest.id} {checked.wheel.manifest.version} ({who})"
            )
            for note in checked.notes:
                err.print(f"[yellow]note:[/] {escape(note)}")

    def go(store_db: Any) -> Any:
        store = PluginStore(state / "store", store_db)
        prepare = env_cli.installer(
            state, config, find_links=find_links or [], offline=offline, index_url=index_url,
            quiet=as_json,
        )  # fmt: skip
        return store.install(source, host_version=Version.parse(HOST_VERSION), prepare=prepare)

    manifest = _store_op(state, go, as_json=as_json)
    if as_json:
        out.print_json(
            json.dumps({"ok": True, "id": manifest.id, "version": str(manifest.version),
                        "path": str(manifest.root)})
        )  # fmt: skip
        return
    out.print(
        f"installed {manifest.id} {manifest.version} in {manifest.root}\n"
        f"'plugbay upgrade {manifest.id}' serves it if an older version is active"
    )


@app.command()
def upgrade(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id")],
    version: Annotated[
        str | None, typer.Argument(help="Version (default: the newest installed)")
    ] = None,
    with_dependents: Annotated[
        bool,
        typer.Option(
            "--with-dependents", help="Move dependents too, to versions that accept the new one."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would move, change nothing.")
    ] = False,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a plugin to a newer installed version. Refused, naming each dependent and its
    range, when an active dependent would not accept it; --with-dependents moves them
    too when installed versions of them do."""
    _refuse_running(state, "upgrade")

    async def body(host: Any) -> dict[str, list[str]]:
        if dry_run:
            plan = host.manager.upgrade_plan(plugin_id, version, with_dependents=with_dependents)
        else:
            plan = await host.upgrade(plugin_id, version, with_dependents=with_dependents)
        return {pid: [moved["from"], moved["to"]] for pid, moved in plan.to_dict().items()}

    moved = _with_host(_host_kwargs(plugins, state, config), body, as_json=as_json)
    if as_json:
        out.print_json(json.dumps({"ok": True, "dry_run": dry_run, "changes": moved}))
        return
    verb = "would move" if dry_run else "moved"
    for pid, (old, new) in moved.items():
        out.print(f"{pid}: {verb} {old} → {new}")


@app.command()
def token(
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Make a new token; the old one stops working.")
    ] = False,
    state: StateOpt = Path(".plugbay"),
) -> None:
    """Show the API token of this state directory (and a dashboard sign-in link), or rotate it."""
    from plugbay.web.client import running_host
    from plugbay.web.token import TokenFile

    tokens = TokenFile(state)
    try:
        if rotate:
            value = tokens.rotate()
        else:
            try:
                value = tokens.read()
            except FileNotFoundError:
                _fail(
                    PlugbayError(
                        f"no API token was made for {state} yet",
                        hint="'plugbay run' makes one on its first start, or "
                        "'plugbay token --rotate' makes one now",
                    )
                )
    except PlugbayError as exc:
        _fail(exc)
    out.print(value, markup=False)
    running = running_host(state)
    if running and running.get("http"):
        out.print(f"dashboard: {running['http']}/?token={value}", markup=False)
    if rotate:
        err.print("[dim]the old token no longer works; a running host uses the new one now[/]")


def _store_op(state_dir: Path, fn: Callable[[Any], T], *, as_json: bool = False) -> T:
    from plugbay.state import StateStore

    try:
        with StateStore.open(state_dir) as store:
            return fn(store)
    except PlugbayError as exc:
        _fail(exc, as_json=as_json)


# --------------------------------------------------------------------------- monitoring


def _source(state_dir: Path) -> StateSource:
    from plugbay.cli.views import StateSource

    try:
        return StateSource(state_dir)
    except PlugbayError as exc:
        _fail(exc)


@app.command()
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

    Reads the state a host writes every second, so it works beside `plugbay run`.
    """
    from plugbay.cli.views import log_line
    from plugbay.monitor.logs import level_number

    try:
        min_level = level_number(level)
    except ValueError as exc:
        _fail(f"{exc} (--level)", code=2)
    source = _source(state)
    try:
        records = source.logs(plugin_id, min_level=min_level, limit=limit)
        if not records and not follow:
            known = sorted({r["plugin"] for r in source.logs(None, limit=1000)})
            from plugbay.api.errors import did_you_mean

            hint = did_you_mean(plugin_id, known) or (
                f"plugins with records: {', '.join(known)}" if known else "no plugin has logged yet"
            )
            err.print(f"no log records for '{escape(plugin_id)}' at {level} or above; {hint}")
            return
        last = 0
        while True:
            for record in records:
                last = max(last, int(record["id"]))
                if as_json:
                    out.print(json.dumps(record, default=str), markup=False, highlight=False)
                else:
                    out.print(log_line(record))
            if not follow:
                return
            sys.stdout.flush()
            time.sleep(0.5)
            records = source.logs(plugin_id, min_level=min_level, after_id=last, limit=1000)
    except KeyboardInterrupt:
        return
    except PlugbayError as exc:
        _fail(exc)
    finally:
        source.close()


@app.command()
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
        _fail(exc)
    finally:
        source.close()
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    if not rows:
        out.print("no alerts firing" if not all_ else "no alerts recorded")
        return
    out.print(alerts_table(rows))


@app.command()
def health(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Each plugin's health (live, ready, green / degraded / failing, and why) and the
    host's; exits 1 when the host is failing. Beside a running host, that host's."""
    from plugbay.cli.views import HostSource, health_table

    if _running_host(state) is not None:
        source = _source(state)
        try:
            snap = source.snapshot()
        finally:
            source.close()
    else:

        async def body(host: Any) -> dict[str, Any]:
            if host.monitor is not None:
                await host.monitor.tick()
            return HostSource(host).snapshot()

        snap = _with_host(_host_kwargs(plugins, state, config), body, as_json=as_json)
    if as_json:
        out.print_json(json.dumps(snap, default=str))
    else:
        out.print(health_table(snap))
    raise typer.Exit(1 if (snap.get("host") or {}).get("health") == "failing" else 0)


@app.command()
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

    from plugbay.cli.views import HostSource, top_table

    if _running_host(state) is not None:
        source = _source(state)
        try:
            if once:
                out.print(top_table(source.snapshot()))
                return
            with Live(top_table(source.snapshot()), console=out, refresh_per_second=2) as live:
                while True:
                    time.sleep(1.0)
                    live.update(top_table(source.snapshot()))
        except KeyboardInterrupt:
            return
        finally:
            source.close()

    async def body(host: Any) -> None:
        view = HostSource(host)
        if host.monitor is not None:
            await host.monitor.tick()
        if once:
            out.print(top_table(view.snapshot()))
            return
        with Live(top_table(view.snapshot()), console=out, refresh_per_second=2) as live:
            while True:
                await asyncio.sleep(1.0)
                live.update(top_table(view.snapshot()))

    with contextlib.suppress(KeyboardInterrupt):
        _with_host(_host_kwargs(plugins, state, config), body)


@app.command()
def profile(
    plugin_id: Annotated[str, typer.Argument(help="Plugin id")],
    command: Annotated[str, typer.Argument(help="Command name")],
    params: Annotated[list[str] | None, typer.Argument(help="key=value parameters")] = None,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
) -> None:
    """Run one command under the profiler where the plugin runs (inline or in its worker),
    then print the result and where the time went."""

    async def body(host: Any) -> tuple[Any, str]:
        spec = host.manager.command_spec(plugin_id, command)
        values = _parse_params(params or [], spec)
        result, report = await host.profile(plugin_id, command, values)
        return result, report

    kwargs = _host_kwargs(plugins, state, config)
    kwargs["load"] = [plugin_id]
    result, report = _with_host(kwargs, body)
    out.print(f"[bold]result:[/] {escape(repr(_to_builtins(result)))}")
    out.print(report, markup=False, highlight=False)


# --------------------------------------------------------------------------- develop (the PDK)
# new, validate, build, keygen, sign, verify, trust, docs, debug: plugbay/pdk/cli.py;
# register() also files 'profile' (above) under the same "develop" panel

from plugbay.cli.develop import register as _register_develop  # noqa: E402

_register_develop(app)
env_cli.register(app)


def main() -> None:
    app()
