"""``plugbay uninstall``: take installed versions of a plugin out of the host."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import JsonOpt, fail, out
from plugbay.cli._host import in_process, refusal
from plugbay.cli._options import (
    ConfigOpt,
    PluginsOpt,
    StateOpt,
    add_command,
    host_kwargs,
    print_json,
)
from plugbay.cli._paths import as_given

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = ["register"]

PANEL = "versions"


def uninstall(
    target: Annotated[str, typer.Argument(help="ID, or ID@VERSION for one version")],
    purge: Annotated[
        bool,
        typer.Option("--purge", help="Also remove its data, kept state, run-time config, grants."),
    ] = False,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a plugin and remove its installed versions (or one, ID@VERSION) from the store.

    Refused, naming them, while active plugins need the version that serves. Its data
    (<state>/data/ID), the state it handed over, its run-time config and grants are kept
    for a later install, unless --purge. A Python environment no other plugin version
    uses is removed, with its packages in uv's cache. Recorded in the history. A running
    host does it through its API.
    """
    from plugbay.web.client import connect, running_host

    plugin_id, _, version = target.partition("@")
    chosen = version.strip() or None
    named = (state, *(plugins or [Path("plugins")]))  # the directories as the user named them
    try:
        client = connect(state)
        if client is not None:
            with client:
                done = client.uninstall(plugin_id, chosen, purge=purge)
        else:
            running = running_host(state)
            if running is not None:
                raise refusal(running, state, "uninstall")

            async def body(host: Host) -> dict[str, Any]:
                try:
                    return await host.uninstall(plugin_id, chosen, purge=purge)
                except PlugbayError as exc:
                    raise _as_named(exc, named) from None

            done = in_process(host_kwargs(plugins, state, config), body, as_json=as_json)
    except PlugbayError as exc:
        fail(_as_named(exc, named), as_json=as_json)
    # where the host put them, as --state names them (as every other command says paths)
    done["environments"] = [as_given(path, state) for path in done["environments"]]
    if done["data"]:
        done["data"] = as_given(done["data"], state)
    if as_json:
        print_json({"ok": True, **done})
    else:
        _print_done(plugin_id, done, through_api=client is not None)


def _print_done(plugin_id: str, done: dict[str, Any], *, through_api: bool) -> None:
    """What the uninstall did, one line a thing (``through_api``: a running host did it)."""
    stopped = "stopped and " if done["stopped"] else ""
    out.print(f"{plugin_id}: {stopped}uninstalled {', '.join(done['versions'])}")
    if done["remaining"]:
        start = ""
        if done["stopped"]:  # a host started for the command is gone: the next one starts it
            start = (f" ('plugbay load {plugin_id}' starts one)" if through_api
                     else " (the next 'plugbay run' starts one)")  # fmt: skip
        out.print(f"still known: {', '.join(done['remaining'])}{start}")
    for path in done["environments"]:
        out.print(f"removed its Python environment {path}, which no other plugin version uses")
    if done["environments"]:
        out.print(f"freed {done['freed_bytes'] / 2**20:.1f} MiB")
    if done["purged"]:
        out.print("purged: " + ", ".join(done["purged"]))
    elif done["data"]:
        out.print(f"its data is kept in {done['data']} (--purge removes it)")


def _as_named(exc: PlugbayError, named: tuple[Path, ...]) -> PlugbayError:
    """``exc``, its file named under the directories as the user named them."""
    if exc.where:
        exc.where = as_given(exc.where, *named)
    return exc


def register(app: typer.Typer) -> None:
    add_command(app, uninstall, panel=PANEL)
