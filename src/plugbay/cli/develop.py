"""The PDK's commands, attached to the ``plugbay`` app under the "develop" help panel.

``plugbay.cli`` calls :func:`register` once; everything here imports lazily so
``plugbay --help`` stays quick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import JsonOpt, out
from plugbay.cli._console import fail as _fail
from plugbay.cli._counted import counted
from plugbay.cli._defaults import config_file
from plugbay.cli._options import PluginIdArg, add_command

__all__ = ["PANEL", "register"]

PANEL = "develop"


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
    lang: Annotated[
        str,
        typer.Option(
            "--lang",
            help="python; c or python-wasm: a Wasm plugin in C or Python (docs/wasm-plugins.md).",
        ),
    ] = "python",
) -> None:
    """Create a complete plugin package: pyproject with the manifest, typed code, tests, README."""
    from plugbay.pdk.templates import check_plugin_id, create_plugin

    try:
        check_plugin_id(name)  # dotted, whatever the language
    except PlugbayError as exc:
        _fail(exc)
    if lang in ("c", "python-wasm"):
        from plugbay.pdk.wasm_build import create_wasm_plugin

        try:
            path = create_wasm_plugin(lang.removesuffix("-wasm"), name, directory)
        except PlugbayError as exc:
            _fail(exc)
        out.print(f"[green]created[/] {name} (a Wasm plugin in {lang}) in {path}")
        out.print(f"next: plugbay build {path} && plugbay validate {path}")
        return
    if lang != "python":
        _fail(PlugbayError(f"no template for --lang {lang}", hint="python, c or python-wasm"))
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
    """Analyze a plugin without running it: manifest, interface, types, dependencies, config.

    Checks the manifest, the interface, command types, dependencies, permissions and
    config; exits 1 when there is an error.

    Findings name the file and line, the severity and a fix. The code is parsed, not run;
    when nothing is wrong statically, the entry class is imported into a throwaway namespace
    to catch errors at import time (--no-import skips that).
    """
    from plugbay.pdk.analyzer import known_plugins, validate_plugins

    plugin_dirs = plugins or [Path("plugins")]
    known = known_plugins(plugin_dirs)
    results = validate_plugins(
        paths, known=known, import_check=not no_import, plugin_dirs=plugin_dirs
    )
    failed = any(not r.ok for r in results)
    if as_json:
        # one result per path, a list even for one path: one shape for scripts
        out.print_json(json.dumps([r.to_dict() for r in results], default=str))
        raise typer.Exit(1 if failed else 0)
    for r in results:
        m = r.manifest
        for f in r.findings:
            colour = {"error": "red", "warning": "yellow", "info": "cyan"}[f.severity]
            out.print(
                f"{escape(f.location())}: [{colour}]{f.severity}[/][dim]\\[{f.code}][/] "
                f"{escape(f.message)}"
            )
            if f.source:
                out.print(f"    {escape(f.source)}", highlight=False)
            if f.hint:
                out.print(f"    [dim]fix:[/] {escape(f.hint)}")
        name = f"{m.id} {m.version} ({m.type})" if m else str(r.path)
        counts = f"{counted(len(r.errors), 'error')}, {counted(len(r.warnings), 'warning')}"
        if r.ok:
            out.print(f"[green]ok[/] {escape(name)} — {escape(str(r.path))}: {counts}")
            for c in r.commands:
                out.print(f"  {escape(c['signature'])}")
        else:
            out.print(f"[red]invalid[/] {escape(name)} — {escape(str(r.path))}: {counts}")
    raise typer.Exit(1 if failed else 0)


StateOpt = Annotated[
    Path,
    typer.Option("--state", envvar="PLUGBAY_STATE", help="The host's state directory."),
]


def build(
    path: Annotated[
        Path, typer.Argument(help="The plugin (directory, plugin.toml, pyproject.toml)")
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where the wheel goes (default: PATH/dist)."),
    ] = None,
) -> None:
    """Build a standard wheel carrying the manifest, and its SHA-256 digest.

    The plugin is validated first; one that does not validate is refused and nothing is written.
    """
    from plugbay.pdk.build import build_plugin

    if _is_wasm(path):
        from plugbay.pdk.wasm_build import build_wasm

        try:
            built = build_wasm(path)
        except PlugbayError as exc:
            _fail(exc)
        out.print(f"[green]built[/] {built.manifest.id} {built.manifest.version}: {built.module}")
        out.print(f"typed proxy for callers: {built.protocol}")
        return
    try:
        result = build_plugin(path, out_dir)
    except PlugbayError as exc:
        _fail(exc)
    out.print(f"[green]built[/] {result.manifest.id} {result.manifest.version}: {result.wheel}")
    out.print(f"sha256 {result.digest} ({result.sha256.name})")


def _is_wasm(path: Path) -> bool:
    """Whether the plugin at ``path`` is a Wasm plugin ('plugbay build' compiles its module)."""
    from plugbay.model.manifest import load_manifest

    try:
        return load_manifest(path).runtime == "wasm"
    except PlugbayError:
        return False  # the wheel build reports what is wrong with it


def keygen(
    name: Annotated[str, typer.Argument(help="A name for the key pair, e.g. your own")],
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Where to write it.")] = Path("."),
) -> None:
    """Create an Ed25519 key pair to sign plugin wheels: NAME.key (secret) and NAME.pub."""
    from plugbay.pdk.signing import generate_key, key_id, load_public_key

    try:
        key_path, pub_path = generate_key(name, directory)
    except PlugbayError as exc:
        _fail(exc)
    out.print(f"[green]key[/] {key_id(load_public_key(pub_path))}")
    out.print(f"secret: {key_path} (keep it to yourself)")
    out.print(f"public: {pub_path} (give it to hosts: 'plugbay trust {pub_path.name}')")


def sign(
    wheel: Annotated[Path, typer.Argument(help="A plugin wheel from 'plugbay build'")],
    key: Annotated[Path, typer.Option("--key", "-k", help="The secret key (NAME.key).")],
) -> None:
    """Sign a plugin wheel with an Ed25519 key: writes WHEEL.sig beside it."""
    from plugbay.pdk.signing import sign_wheel

    try:
        sig = sign_wheel(wheel, key)
    except PlugbayError as exc:
        _fail(exc)
    data = json.loads(sig.read_text())
    out.print(f"[green]signed[/] {wheel.name} with key {data['key-id']}: {sig}")


def verify(
    wheel: Annotated[Path, typer.Argument(help="A plugin wheel")],
    keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--key", "-k", help="Trust this public key (repeatable); default: the host's."
        ),
    ] = None,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Check a wheel's digest and signature against trusted keys (exit 1 if anything is off)."""
    from plugbay.pdk.signing import TrustPolicy, TrustStore, key_id, load_public_key, verify_wheel

    try:
        if keys:
            trusted = {key_id(k): k for k in (load_public_key(p) for p in keys)}
        else:
            trusted = TrustStore(state).keys()
        result = verify_wheel(wheel, TrustPolicy(trusted, require_signed=True))
    except PlugbayError as exc:
        _fail(exc, as_json=as_json)
    m = result.wheel.manifest
    if as_json:
        data = {
            "ok": True,
            "plugin": m.id,
            "version": str(m.version),
            "sha256": result.digest,
            "signed-by": result.signed_by,
            "notes": list(result.notes),
        }
        out.print_json(json.dumps(data))
        return
    out.print(
        f"[green]verified[/] {m.id} {m.version}: sha256 {result.digest}, "
        f"signed by trusted key {result.signed_by}"
    )


def trust(
    public_key: Annotated[Path, typer.Argument(help="A public key (NAME.pub) to trust")],
    state: StateOpt = Path(".plugbay"),
) -> None:
    """Trust plugins signed with this key on the host using this state directory."""
    from plugbay.pdk.signing import TrustStore

    try:
        kid = TrustStore(state).add(public_key)
    except PlugbayError as exc:
        _fail(exc)
    out.print(f"[green]trusted[/] key {kid} ({public_key.name}) in {state}")


def docs(
    path: Annotated[
        Path, typer.Argument(help="The plugin (directory, plugin.toml, pyproject.toml)")
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write (default: PATH/docs)."),
    ] = None,
) -> None:
    """Write the plugin's reference as Markdown and one HTML page, from its manifest and code.

    Type, version, capabilities, dependencies, services, every command with its parameters,
    types, defaults and docstring, the config schema, permissions and resources.
    """
    from plugbay.pdk.docs import write_docs

    try:
        md, page = write_docs(path, out_dir)
    except PlugbayError as exc:
        _fail(exc)
    out.print(f"[green]wrote[/] {md} and {page}")


def debug(
    plugin_id: PluginIdArg,
    command: Annotated[
        str | None, typer.Argument(help="A command to call under pdb (none: serve)")
    ] = None,
    params: Annotated[
        list[str] | None, typer.Argument(help="Parameters as key=value (JSON values allowed)")
    ] = None,
    plugins: Annotated[
        list[Path] | None,
        typer.Option(
            "--plugins",
            "-p",
            envvar="PLUGBAY_PLUGINS",
            help="Plugins directory (repeatable). Default: ./plugins",
            show_default=False,
        ),
    ] = None,
    state: StateOpt = Path(".plugbay"),
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="PLUGBAY_CONFIG", help="Host config (plugbay.toml)."),
    ] = None,
    no_break: Annotated[
        bool,
        typer.Option("--no-break", help="Do not stop at the command's first line."),
    ] = False,
) -> None:
    """Run a Python plugin inline in the foreground with its real context, under pdb.

    With a command: call it, stopping in pdb at its first line, and print the result.
    Without: serve until Ctrl-C; a breakpoint() in the plugin's code stops in pdb.
    A Wasm plugin is refused (pdb cannot stop in a module): 'plugbay call' it and read
    its module's output with 'plugbay logs ID'.
    """
    from plugbay.pdk.debug import debug_plugin

    config = config_file(config)  # ./plugbay.toml as every command finds it
    try:
        result = debug_plugin(
            plugin_id,
            plugins or [Path("plugins")],
            state_dir=state,
            config_file=config,
            command=command,
            params=params or [],
            stop_in_command=not no_break,
            say=lambda text: out.print(f"[dim]debug:[/] {escape(text)}"),
        )
    except PlugbayError as exc:
        _fail(exc)
    if command is not None:
        import msgspec

        out.print(
            "result: " + msgspec.json.encode(msgspec.to_builtins(result, enc_hook=str)).decode(),
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Attach the develop commands to ``app``."""
    commands: list[tuple[str, Any]] = [
        ("new", new),
        ("validate", validate),
        ("build", build),
        ("keygen", keygen),
        ("sign", sign),
        ("verify", verify),
        ("trust", trust),
        ("docs", docs),
        ("debug", debug),
    ]
    for name, fn in commands:
        add_command(app, fn, panel=PANEL, name=name)
