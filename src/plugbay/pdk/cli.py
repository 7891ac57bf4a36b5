"""The PDK's commands, attached to the ``plugbay`` app under the "develop" help panel.

``plugbay.cli`` calls :func:`register` once; everything here imports lazily so
``plugbay --help`` stays quick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from plugbay.errors import PlugbayError

__all__ = ["PANEL", "register"]

PANEL = "develop"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _fail(error: PlugbayError | str, *, as_json: bool = False, code: int = 1) -> NoReturn:
    if as_json:
        payload = error.to_dict() if isinstance(error, PlugbayError) else {"message": error}
        out.print_json(json.dumps({"ok": False, "error": payload}, default=str))
    else:
        err.print(f"[bold red]error:[/] {escape(str(error))}")
    raise typer.Exit(code)


def new(
    name: Annotated[str, typer.Argument(help="The plugin id, e.g. acme.greeter")],
    template: Annotated[
        str,
        typer.Option("--type", "-t", help="Template: system, integration, extension or utility."),
    ] = "utility",
    directory: Annotated[
        Path | None,
        typer.Option("--dir", "-d", help="Where to create it (default: ./<id with dashes>)."),
    ] = None,
) -> None:
    """Create a complete plugin package: pyproject with the manifest, typed code, tests, README."""
    from plugbay.pdk.templates import create_plugin

    try:
        path = create_plugin(template, name, directory)
    except PlugbayError as exc:
        _fail(exc)
    out.print(f"[green]created[/] {name} ({template}) in {path}")
    out.print(f"next: cd {path} && pytest && plugbay validate .")


def validate(
    paths: Annotated[
        list[Path], typer.Argument(help="Plugin directories, plugin.toml or pyproject.toml files")
    ],
    plugins: Annotated[
        list[Path] | None,
        typer.Option(
            "--plugins",
            "-p",
            envvar="PLUGBAY_PLUGINS",
            help="The host's plugins directory, for dependencies and services (default: ./plugins).",
            show_default=False,
        ),
    ] = None,
    no_import: Annotated[
        bool,
        typer.Option("--no-import", help="Static checks only: never import the plugin's code."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Analyze a plugin without running it: manifest, interface, command types, dependencies,
    permissions, config. Exits 1 when there is an error.

    Findings name the file and line, the severity and a fix. The code is parsed, not run;
    when nothing is wrong statically, the entry class is imported into a throwaway namespace
    to catch errors at import time (--no-import skips that).
    """
    from plugbay.pdk.analyzer import known_plugins, validate_plugin

    known = known_plugins(plugins or [Path("plugins")])
    results = [validate_plugin(p, known=known, import_check=not no_import) for p in paths]
    failed = any(not r.ok for r in results)
    if as_json:
        data: Any = [r.to_dict() for r in results]
        out.print_json(json.dumps(data[0] if len(data) == 1 else data, default=str))
        raise typer.Exit(1 if failed else 0)
    for r in results:
        m = r.manifest
        for f in r.findings:
            colour = {"error": "red", "warning": "yellow", "info": "cyan"}[f.severity]
            out.print(
                f"{escape(f.location())}: [{colour}]{f.severity}[/][dim]\\[{f.code}][/] "
                f"{escape(f.message)}"
            )
            if f.hint:
                out.print(f"    [dim]fix:[/] {escape(f.hint)}")
        name = f"{m.id} {m.version} ({m.type})" if m else str(r.path)
        counts = f"{len(r.errors)} error(s), {len(r.warnings)} warning(s)"
        if r.ok:
            out.print(f"[green]ok[/] {escape(name)} — {escape(str(r.path))}: {counts}")
            for c in r.commands:
                out.print(f"  {escape(c['signature'])}")
        else:
            out.print(f"[red]invalid[/] {escape(name)} — {escape(str(r.path))}: {counts}")
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    """Attach the develop commands to ``app``."""
    commands: list[tuple[str, Any]] = [("new", new), ("validate", validate)]
    for name, fn in commands:
        app.command(name, rich_help_panel=PANEL)(fn)
