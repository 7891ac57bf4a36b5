"""``plugbay env list|gc``, and the environment parts of ``install`` and ``info``.

A sandboxed plugin with Python requirements runs in an environment of its own
(``plugbay.runtime.environments``): built at install (or the first start of a
plugin directory), shared by every plugin with the same requirement set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import JsonOpt, err, out
from plugbay.cli._console import fail as _fail
from plugbay.cli._defaults import config_file
from plugbay.cli._options import ConfigOpt, PluginsOpt, StateOpt, prose
from plugbay.cli._paths import as_given
from plugbay.model.manifest import PluginManifest

__all__ = [
    "FindLinksOpt",
    "IndexUrlOpt",
    "OfflineOpt",
    "installer",
    "python_rows",
    "register",
    "write_sbom",
]

FindLinksOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--find-links",
        "-f",
        help="A directory (or URL) of wheels for the plugin's Python requirements (repeatable).",
        show_default=False,
    ),
]
OfflineOpt = Annotated[
    bool | None,
    typer.Option(
        "--offline/--online",
        help="Install the plugin's Python requirements without the network "
        "(from --find-links and uv's cache). Default: the host config's \\[python] offline.",
        show_default=False,
    ),
]
IndexUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--index-url", help="The package index for Python requirements.", show_default=False
    ),
]


def _config_data(config: Path | None) -> tuple[dict[str, Any], str]:
    """The host config (``--config``, else ./plugbay.toml) as the host reads it, and where
    it was read; no file: no settings."""
    from plugbay.isolation.policy import read_host_config

    path = config_file(config)
    if path is None:
        return {}, "host config"
    return read_host_config(path), str(path)


@dataclass
class _Context:
    """The host's view of environments, read statically (no host is started)."""

    envs: Any
    policy: Any
    plugin_dirs: tuple[Path, ...]


def _context(
    state: Path,
    config: Path | None,
    plugins: Sequence[Path] = (),
    *,
    find_links: Sequence[str] = (),
    offline: bool | None = None,
    index_url: str | None = None,
) -> _Context:
    from plugbay.isolation.policy import IsolationPolicy
    from plugbay.runtime.environments import EnvironmentStore, IndexSettings
    from plugbay.runtime.host import HOST_VERSION

    data, where = _config_data(config)
    base = Path(where).resolve().parent if data else None
    index = IndexSettings.from_config(data, where=where, base=base).merged(
        find_links=[str(Path(f).resolve()) if Path(f).exists() else f for f in find_links],
        index_url=index_url,
        offline=offline,
    )
    return _Context(
        EnvironmentStore(state.resolve() / "envs", index, host_version=HOST_VERSION),
        IsolationPolicy.from_config(data, where=where),
        tuple(p.resolve() for p in plugins),
    )


def installer(
    state: Path,
    config: Path | None,
    *,
    find_links: Sequence[str] = (),
    offline: bool | None = None,
    index_url: str | None = None,
    quiet: bool = False,
) -> Callable[[PluginManifest], object]:
    """What ``plugbay install`` runs before it stores a version: the plugin's environment
    (built, with uv's progress on stderr), or, for a plugin the policy runs inline, the
    check that its requirements fit the host's own environment."""
    ctx = _context(state, config, find_links=find_links, offline=offline, index_url=index_url)

    def prepare(manifest: PluginManifest) -> object:
        from plugbay.runtime.environments import check_fits_host

        if not manifest.python_dependencies:
            return None
        if ctx.policy.place(manifest, ()).isolation == "inline":
            return check_fits_host(manifest, ctx.envs.host_version)

        def progress(line: str) -> None:
            if not quiet:
                err.print(f"[dim]{escape(line)}[/]")

        return ctx.envs.ensure(manifest, progress)

    return prepare


# --------------------------------------------------------------------------- info


def python_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``plugbay info``'s lines for the plugin's Python requirements and packages."""
    python = data.get("python")
    if not python:
        return []
    rows = [("python deps", ", ".join(python["requirements"]))]
    rows.append(("environment", python.get("environment") or "not built yet"))
    packages = python.get("packages") or []
    if packages:
        rows.append(("packages", ", ".join(f"{p['name']} {p['version']}" for p in packages)))
    if python.get("problem"):
        rows.append(("problem", python["problem"]))
    return rows


def write_sbom(data: dict[str, Any], target: Path) -> int:
    """Write the plugin's packages as a CycloneDX SBOM; returns how many components."""
    from plugbay.runtime.host import HOST_VERSION
    from plugbay.runtime.sbom import cyclonedx

    packages = (data.get("python") or {}).get("packages") or []
    bom = cyclonedx(data["id"], str(data.get("version") or ""), packages, host_version=HOST_VERSION)
    text = json.dumps(bom, indent=2)
    if str(target) == "-":
        out.print(text, markup=False, highlight=False)
    else:
        target.write_text(text + "\n", encoding="utf-8")
    return len(bom["components"])


# --------------------------------------------------------------------------- env list|gc


def _usage(
    ctx: _Context, store_root: Path, named: Sequence[Path] = ()
) -> tuple[dict[str, list[str]], list[str]]:
    """Which environment each known plugin version uses (from manifests alone), and a
    note for each whose requirements are refused (its file as ``named``, the plugin
    directories as the command line gave them, name it)."""
    from plugbay.model.discover import discover

    found = discover([*ctx.plugin_dirs, store_root], entry_points=False)
    users: dict[str, list[str]] = {}
    problems: list[str] = []
    for manifest in found.manifests:
        if not manifest.python_dependencies:
            continue
        try:
            if ctx.policy.place(manifest, ctx.plugin_dirs).isolation == "inline":
                continue
            reqs = ctx.envs.requirements_of(manifest)
        except PlugbayError as exc:
            if exc.where:
                exc.where = as_given(exc.where, *named)
            problems.append(str(exc))
            continue
        if reqs:
            key = ctx.envs.path_for(reqs).name
            who = f"{manifest.id} {manifest.version}"
            if who not in users.setdefault(key, []):
                users[key].append(who)
    return users, problems


def _collect(ctx: _Context, state: Path, users: dict[str, list[str]]) -> dict[str, Any]:
    """``env gc``'s work: by the host serving ``state`` through its API (it keeps what it
    runs too, and stops the zygotes of what goes), else here; refused beside a host that
    serves no API, which could not be told (its plugins' environments could go)."""
    from plugbay.cli._host import host_on
    from plugbay.runtime.env_cleanup import reclaim
    from plugbay.web.client import connect

    client = connect(state)
    if client is not None:
        with client:
            answer = client.env_gc(users)
        removed: list[Path | str] = list(answer["removed"])
        packages, freed = list(answer["packages"]), int(answer["freed_bytes"])
    else:
        running = host_on(state)
        if running is not None:
            raise PlugbayError(
                f"a host (pid {running['pid']}) serves {state.resolve()} without an API; "
                "'env gc' beside a running host goes through its API, so that the "
                "environments its plugins use stay and the zygotes of removed ones stop",
                hint="restart it without --no-http, or stop it first (Ctrl-C), run "
                "'plugbay env gc', then start it again",
            )
        done = reclaim(ctx.envs, users)
        removed, packages, freed = list(done.removed), done.packages, done.freed_bytes
    return {
        "removed": [as_given(p, state) for p in removed],
        "packages": packages,
        "freed_bytes": freed,
    }


def _environments_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(header_style="bold")
    for col in ("environment", "requirements", "own", "shared", "used by"):
        table.add_column(col, justify="right" if col in ("own", "shared") else "left")
    for row in rows:
        table.add_row(
            row["key"],
            escape(", ".join(row["requirements"])),
            f"{row['own_bytes'] / 2**20:.1f} MiB",
            f"{row['shared_bytes'] / 2**20:.1f} MiB",
            escape(", ".join(row["plugins"])) or "[yellow]unused[/]",
        )
    return table


class _Progress(logging.Handler):
    """Shows an environment build's progress on stderr, whichever command started a host
    that builds one (``run``, ``call``, ``info``): the first start of a plugin directory
    with new requirements takes a moment, and says why."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.INFO:
            err.print(f"[dim]{escape(record.getMessage())}[/]")


def register(app: typer.Typer) -> None:
    progress = logging.getLogger("plugbay.environments")
    if not any(isinstance(h, _Progress) for h in progress.handlers):
        progress.addHandler(_Progress())
        progress.setLevel(logging.INFO)
    env_app = typer.Typer(
        name="env",
        help="Plugins' Python environments: list them, remove unused ones.",
        no_args_is_help=True,
    )
    app.add_typer(env_app, name="env", rich_help_panel="versions")

    def env_list(
        plugins: PluginsOpt = None,
        state: StateOpt = Path(".plugbay"),
        config: ConfigOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Every environment: its requirements, its disk (own, and shared with uv's cache by
        hard links), and the plugin versions that use it."""
        from plugbay.runtime.environments import disk_usage

        try:
            given = plugins or [Path("plugins")]
            ctx = _context(state, config, given)
            users, problems = _usage(ctx, state / "store", given)
            rows = []
            for env in ctx.envs.environments():
                own, shared = disk_usage(env.path)
                rows.append(
                    {
                        "key": env.key,
                        "path": as_given(env.path, state),
                        "requirements": list(env.requirements),
                        "own_bytes": own,
                        "shared_bytes": shared,
                        "plugins": users.get(env.key, []),
                    }
                )
        except PlugbayError as exc:
            _fail(exc, as_json=as_json)
        if as_json:
            out.print_json(json.dumps({"environments": rows, "notes": problems}))
            return
        if not rows:
            out.print("no Python environments (no sandboxed plugin has Python requirements)")
        else:
            out.print(_environments_table(rows))
        for problem in problems:
            err.print(f"[yellow]note:[/] {escape(problem)}")

    def env_gc(
        plugins: PluginsOpt = None,
        state: StateOpt = Path(".plugbay"),
        config: ConfigOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Remove every environment no plugin version in the plugin directories or the store
        uses (and leftovers of interrupted builds), and the packages of uv's cache no
        remaining environment holds: the disk comes back. A running host does it through
        its API: what it runs keeps its environment, and it stops the zygote of each one
        removed."""
        try:
            ctx = _context(state, config, plugins or [Path("plugins")])
            users, _ = _usage(ctx, state / "store")
            done = _collect(ctx, state, users)
        except PlugbayError as exc:
            _fail(exc, as_json=as_json)
        if as_json:
            out.print_json(json.dumps({"ok": True, **done}))
            return
        for path in done["removed"]:
            out.print(f"removed {escape(path)}")
        if done["packages"]:
            out.print(f"dropped from uv's cache: {escape(', '.join(done['packages']))}")
        out.print(
            f"{len(done['removed'])} removed, {len(users)} in use, "
            f"{done['freed_bytes'] / 2**20:.1f} MiB freed"
        )

    env_app.command("list", help=prose(env_list.__doc__))(env_list)
    env_app.command("gc", help=prose(env_gc.__doc__))(env_gc)
