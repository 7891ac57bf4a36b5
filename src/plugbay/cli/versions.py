"""Commands that move a plugin between versions: install, upgrade, reload, rollback, history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from plugbay.cli import env, upgrades
from plugbay.cli import index as plugin_index
from plugbay.cli._console import JsonOpt, out
from plugbay.cli._host import the_host
from plugbay.cli._options import (
    ConfigOpt,
    PluginIdArg,
    PluginsOpt,
    StateOpt,
    add_command,
    print_json,
    state_text,
)
from plugbay.cli._plugin_views import history_table, nothing_recorded
from plugbay.cli._seconds import finite_number

__all__ = ["PANEL", "register"]

PANEL = "versions"


def reload(
    plugin_id: PluginIdArg,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Swap a plugin for what its files say now.

    Its dependents follow when its version or a provided service changed. If the new
    code is broken, the old version keeps serving and the reason is printed (and kept
    in the history). A running host does it through its API.
    """
    with the_host(state, plugins, config, as_json=as_json) as host:
        swap = host.reload(plugin_id)
    if as_json:
        print_json({"ok": True, **swap})
    else:
        out.print(f"{plugin_id}: reloaded {_move(swap)}, {state_text(swap['state'])}")


def rollback(
    plugin_id: PluginIdArg,
    to: Annotated[
        str | None, typer.Option("--to", help="This version (default: the previous one).")
    ] = None,
    with_dependents: Annotated[
        bool,
        typer.Option(
            "--with-dependents",
            help="Roll back too each dependent that would not accept it, to the version "
            "it had before.",
        ),
    ] = False,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Return to the version that served before (kept in the store), with the state it had then.

    Refused, naming each dependent and its range, when an active dependent would not
    accept that version (after 'upgrade --with-dependents' moved them together, say);
    --with-dependents rolls them back too, each to the version it had before. The choice
    is kept: the next start serves that version too. A running host does it through its
    API.
    """
    with the_host(state, plugins, config, as_json=as_json) as host:
        swap = host.rollback(plugin_id, to, with_dependents=with_dependents)
    if as_json:
        print_json({"ok": True, **swap})
        return
    out.print(f"{plugin_id}: rolled back {_move(swap)}")
    for pid, moved in swap["dependents"].items():
        out.print(f"{pid}: rolled back {_move(moved)}")


def _move(swap: dict[str, Any]) -> str:
    return f"{swap['from']} → {swap['to']}"


def install(
    source: Annotated[
        Path, typer.Argument(help="A plugin directory, a wheel (.whl), or ID@RANGE with --index")
    ],
    index: plugin_index.IndexOpt = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="With --index: install without asking.")
    ] = False,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    require_signed: Annotated[
        bool | None,
        typer.Option(
            "--require-signed/--allow-unsigned",
            help="For a wheel: override the host's \\[policy] require-signed.",
            show_default=False,
        ),
    ] = None,
    find_links: env.FindLinksOpt = None,
    offline: env.OfflineOpt = None,
    index_url: env.IndexUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a version of a plugin to the host's store, beside the versions already there.

    It serves after 'plugbay upgrade ID' (or at once if no other version of it exists).

    A sandboxed plugin's Python requirements are installed first, into an environment of
    its own (uv); an inline plugin's must fit the host's environment.

    A wheel is verified first (plugbay.pdk): its digest and signature against the host's
    trusted keys ('plugbay trust'), and refused when the host requires signed plugins and
    it is unsigned or signed by a key the host does not trust.

    With --index, SOURCE is ID@RANGE (or ID): the index's manifests are resolved with the
    installed versions (the host's resolver, its explanations when nothing fits), the
    permissions each new version asks for are shown (confirm, or --yes), then each wheel
    is downloaded, checked against the index's digest, verified, and installed.
    """
    prepare_options = {"find_links": find_links or [], "offline": offline, "index_url": index_url}
    if index is not None:
        plugin_index.install_from_index(
            str(source), index, state=state, plugins=plugins, config=config,
            require_signed=require_signed, yes=yes, as_json=as_json,
            prepare_options=prepare_options,
        )  # fmt: skip
        return
    if source.is_file() and source.suffix == ".whl":
        checked = plugin_index.verify_for_host(
            source, state, config, require_signed, as_json=as_json
        )
        if not as_json:
            who = f"signed by trusted key {checked.signed_by}" if checked.signed_by else "unsigned"
            out.print(
                f"verified {checked.wheel.manifest.id} {checked.wheel.manifest.version} ({who})"
            )
    manifest = plugin_index.store(source, state, config, prepare_options, as_json=as_json)
    if as_json:
        print_json(
            {"ok": True, "id": manifest.id, "version": str(manifest.version),
             "path": str(manifest.root)}
        )  # fmt: skip
        return
    out.print(
        f"installed {manifest.id} {manifest.version} in {manifest.root}\n"
        f"'plugbay upgrade {manifest.id}' serves it if an older version is active"
    )


def upgrade(
    plugin_id: PluginIdArg,
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
    canary: Annotated[
        str | None,
        typer.Option(
            "--canary",
            help="Send this share of live calls to it first (10%); promote or roll "
            "back on its figures.",
            rich_help_panel="Gradually",
        ),
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow",
            help="Mirror live calls to it and compare its answers (it serves none).",
            rich_help_panel="Gradually",
        ),
    ] = False,
    window: upgrades.WindowOpt = "200",
    min_calls: Annotated[
        int,
        typer.Option(
            "--min-calls",
            min=1,
            help="Canary calls before it is judged.",
            rich_help_panel="Gradually",
        ),
    ] = 5,
    max_error_increase: Annotated[
        float,
        typer.Option(
            "--max-error-increase",
            min=0,
            callback=finite_number,
            max=1,
            rich_help_panel="Gradually",
            help="Roll back when its error rate exceeds the old one's by more.",
        ),
    ] = 0.05,
    max_latency_ratio: Annotated[
        float,
        typer.Option(
            "--max-latency-ratio",
            min=0.0,
            callback=finite_number,
            rich_help_panel="Gradually",
            help="Roll back when its mean latency is more than this x the old one's.",
        ),
    ] = 2.0,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            rich_help_panel="Gradually",
            help="Canary: wait for the decision. Shadow: show the comparison live.",
        ),
    ] = True,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a plugin to a newer installed version.

    With no VERSION: the newest installed release its active dependents accept (a newer
    one they would refuse is named as passed over). Refused, naming each dependent and
    its range, when an active dependent would not accept it; --with-dependents moves
    them too when installed versions of them do.
    With --canary or --shadow the running host tries the new version on live calls
    first (docs/upgrades.md); --canary exits 1 when it was rolled back.
    """
    if canary is not None or shadow:
        upgrades.gradual_upgrade(
            plugin_id, version, canary=canary, shadow=shadow, window=window,
            min_calls=min_calls, max_error_increase=max_error_increase,
            max_latency_ratio=max_latency_ratio, wait=wait, state=state, as_json=as_json,
        )  # fmt: skip
        return
    with the_host(state, plugins, config, as_json=as_json) as host:
        moved, passed_over, commands = host.upgrade(
            plugin_id, version, with_dependents=with_dependents, dry_run=dry_run
        )
    if as_json:
        print_json(
            {
                "ok": True,
                "dry_run": dry_run,
                "changes": moved,
                "passed_over": passed_over,
                "command_changes": commands,
            }
        )
        return
    verb = "would move" if dry_run else "moved"
    for pid, (old, new) in moved.items():
        out.print(f"{pid}: {verb} {old} → {new}")
    if passed_over is not None:
        out.print(f"[yellow]note:[/] {escape(passed_over['hint'])}")
    _say_command_changes(commands, dry_run=dry_run)


def _say_command_changes(
    commands: dict[str, list[dict[str, Any]]] | None, *, dry_run: bool
) -> None:
    """A note per command removed or parameter changed, as a reload's line names a command
    gone; a dry run says when that comparison is made instead."""
    if dry_run:
        from plugbay.runtime.command_changes import dry_run_note

        out.print(f"[yellow]note:[/] {escape(dry_run_note())}")
        return
    for pid, changes in (commands or {}).items():
        for change in changes:
            out.print(f"[yellow]note:[/] {escape(pid)} {escape(change['note'])}")


def history(
    plugin_id: Annotated[str | None, typer.Argument(metavar="ID", help="Only this plugin")] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            "-n",
            min=1,
            max=10_000,  # as GET /api/v1/history takes them
            help="How many events (1 to 10000).",
        ),
    ] = 50,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Show what happened to plugins, newest first, with versions, result and reason.

    Installs, loads, reloads, upgrades, rollbacks, the versions a bisect tried
    ('bisect'), canaries, shadows, failures, enables and disables. Nothing yet: says
    so (--json: an empty list). An ID no plugin here has is refused (exit 1), naming
    the closest ids.
    """
    with the_host(state, as_json=as_json) as host:
        events = host.history(plugin_id, limit)
    if plugin_id is not None and not events:  # a typo must not read as "no history yet"
        from plugbay.cli.monitor import refuse_unknown_id

        refuse_unknown_id(plugin_id, state, as_json=as_json)
    if as_json:
        print_json(events)
    elif events:
        out.print(history_table(events))
    else:
        out.print(nothing_recorded(plugin_id, state))


def register(app: typer.Typer) -> None:
    """Attach the version commands to ``app``."""
    for fn in (install, upgrade, reload, rollback, history):
        add_command(app, fn, panel=PANEL)
