"""Plugin indexes: build one from wheels, search one, install from one (``plugbay install
ID@RANGE --index …`` lands here from the versions group)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from plugbay.api.errors import PlugbayError
from plugbay.cli import env
from plugbay.cli._console import JsonOpt, err, fail, out
from plugbay.cli._counted import counted
from plugbay.cli._options import config_file, print_json, prose, store_op

__all__ = ["IndexOpt", "install_from_index", "register"]

PANEL = "versions"

IndexOpt = Annotated[
    str | None,
    typer.Option(
        "--index",
        envvar="PLUGBAY_INDEX",
        help="A plugin index: its URL, or the directory 'plugbay index build' wrote.",
        show_default=False,
    ),
]

index_app = typer.Typer(
    name="index", help="Plugin indexes: static files any web server serves.", no_args_is_help=True
)


def build(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A directory of plugin wheels")],
    as_json: JsonOpt = False,
) -> None:
    """Write a plugin index for the wheels in DIR, beside them.

    plugbay-index.json (every plugin version with its manifest, so resolving downloads
    nothing), each wheel's manifest, and a PEP 503/691 simple index under simple/. Serve
    the directory with any static file server, or give the directory itself to --index.
    A file that is not a plugin wheel stops the build, with its reason.
    """
    from plugbay.pdk.index import INDEX_FILE, build_index

    try:
        entries = build_index(directory)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json({"ok": True, "index": str(directory / INDEX_FILE),
                    "plugins": [_summary(e) for e in entries]})  # fmt: skip
        return
    plugins = len({e.id for e in entries})
    out.print(
        f"indexed {counted(len(entries), 'wheel')} of {counted(plugins, 'plugin')} "
        f"in {directory / INDEX_FILE}"
    )


def search(
    text: Annotated[str, typer.Argument(help="Words to find in an id, name, description, type")],
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find plugins in an index: the newest version of each whose id, name, description,
    type or capabilities hold every word."""
    from plugbay.pdk.index import PluginIndex

    try:
        found = PluginIndex.open(_index(index, as_json=as_json)).search(text)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json([_summary(e) for e in found])
        return
    if not found:
        out.print(f"no plugin in the index matches '{escape(text)}'")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "version", "type", "description", "signed"):
        table.add_column(column)
    for e in found:
        m = e.manifest
        table.add_row(
            m.id, str(m.version), m.type, escape(m.description or m.name), "yes" if e.signed else ""
        )
    out.print(table)


def _index(index: str | None, *, as_json: bool = False) -> str:
    """The index named (``--index``, else ``PLUGBAY_INDEX``); none is a usage error (exit 2,
    in the common JSON error shape with ``--json``)."""
    from plugbay.pdk.errors import PluginIndexError

    if not index:
        missing = PluginIndexError(
            "no plugin index is named",
            hint="pass --index URL|DIR, or set PLUGBAY_INDEX; 'plugbay index build DIR' writes "
            "an index for the plugin wheels in DIR",
        )
        fail(missing, as_json=as_json, code=2)
    return index


def _summary(e: Any) -> dict[str, Any]:
    data: dict[str, Any] = e.to_dict()
    data.pop("manifest", None)
    return data


# --------------------------------------------------------------------------- install


def install_from_index(
    requirement: str,
    index: str,
    *,
    state: Path,
    plugins: list[Path] | None,
    config: Path | None,
    require_signed: bool | None,
    yes: bool,
    prepare_options: dict[str, Any],
    as_json: bool,
) -> None:
    """``plugbay install ID@RANGE --index …``: resolve, show what it asks, verify, install."""
    from plugbay.model.discover import discover
    from plugbay.model.versions import Version
    from plugbay.pdk.index import PluginIndex, parse_requirement, plan_install
    from plugbay.runtime.host import HOST_VERSION
    from plugbay.runtime.store import PluginStore

    try:
        plugin_id, wanted = parse_requirement(requirement)
        source = PluginIndex.open(index)
        here = PluginStore(state / "store").discover().manifests
        dirs = [d for d in (plugins or [Path("plugins")]) if d.is_dir()]
        here += discover(dirs, entry_points=False).manifests
        plan = plan_install(
            source, plugin_id, wanted, installed=here, host_version=Version.parse(HOST_VERSION)
        )
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    if not as_json:
        _show_plan(plan)
    _confirm(yes, as_json=as_json)
    installed = []
    with tempfile.TemporaryDirectory(prefix="plugbay-index-") as tmp:
        for entry in plan.downloads:
            try:
                wheel = source.download(entry, Path(tmp))
            except PlugbayError as exc:
                fail(exc, as_json=as_json)
            signed_by = verify_for_host(
                wheel, state, config, require_signed, as_json=as_json
            ).signed_by
            manifest = store(
                wheel, state, config, prepare_options, origin=source.url_of(entry), as_json=as_json
            )
            installed.append(
                {**_summary(entry), "path": str(manifest.root), "signed_by": signed_by}
            )
            if not as_json:
                out.print(f"installed {entry.id} {entry.version} in {manifest.root}")
    if as_json:
        print_json({"ok": True, "installed": installed, "present": plan.present})
        return
    out.print(
        f"'plugbay upgrade {plugin_id}' serves {plan.target.version} if an older version is active"
    )


def _show_plan(plan: Any) -> None:
    for entry in plan.downloads:
        asked = entry.manifest.permissions.asked()
        what = "the plugin" if entry is plan.target else "a dependency"
        out.print(
            f"{entry.id} {entry.version} ({what}, {'signed' if entry.signed else 'unsigned'})"
        )
        if asked:
            out.print("  asks for: " + ", ".join(escape(p) for p in asked))
            out.print("  [dim](nothing is granted by installing: 'plugbay grant ID PERMISSION')[/]")
        else:
            out.print("  asks for no permissions")
    for pid, version in sorted(plan.present.items()):
        out.print(f"{pid} {version} (installed already)")


def _confirm(yes: bool, *, as_json: bool) -> None:
    if yes:
        return
    if as_json or not sys.stdin.isatty():
        fail(
            PlugbayError(
                "installing from an index needs a confirmation, and there is no terminal to ask",
                hint="read the permissions above, then pass --yes",
            ),
            as_json=as_json,
        )
    if not typer.confirm("install?", default=False):
        err.print("nothing installed")
        raise typer.Exit(1)


def verify_for_host(
    wheel: Path, state: Path, config: Path | None, require_signed: bool | None, *, as_json: bool
) -> Any:
    """``wheel`` checked as the host would take it (its digest, its signature against the
    keys it trusts, whether it requires one): the verified wheel, or exit with why not. Its
    notes go to stderr."""
    from plugbay.pdk.signing import TrustPolicy, verify_wheel

    try:
        policy = TrustPolicy.for_host(state, config_file(config), require_signed=require_signed)
        checked = verify_wheel(wheel, policy)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    if not as_json:
        for note in checked.notes:
            err.print(f"[yellow]note:[/] {escape(note)}")
    return checked


def store(
    source: Path,
    state: Path,
    config: Path | None,
    prepare_options: dict[str, Any],
    *,
    origin: str | None = None,
    as_json: bool,
) -> Any:
    """``source`` (a plugin directory or a verified wheel) added to the host's store, its
    Python requirements prepared first; its stored manifest, or exit with why not."""
    from plugbay.model.versions import Version
    from plugbay.runtime.host import HOST_VERSION
    from plugbay.runtime.store import PluginStore

    def go(store_db: Any) -> Any:
        prepare = env.installer(state, config, quiet=as_json, **prepare_options)
        return PluginStore(state / "store", store_db).install(
            source, host_version=Version.parse(HOST_VERSION), prepare=prepare, origin=origin
        )

    return store_op(state, go, as_json=as_json)


def register(app: typer.Typer) -> None:
    """File ``plugbay index build`` and ``plugbay search`` under ``app``."""
    index_app.command("build", help=prose(build.__doc__))(build)
    app.add_typer(index_app, name="index", rich_help_panel=PANEL)
    app.command("search", help=prose(search.__doc__), rich_help_panel=PANEL)(search)
