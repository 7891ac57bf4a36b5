"""The command about the HTTP API: token."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import err, fail, out
from plugbay.cli._options import StateOpt, prose

__all__ = ["PANEL", "register"]

PANEL = "API"


def token(
    ctx: typer.Context,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Make a new token; the old one stops working.")
    ] = False,
    state: StateOpt = Path(".plugbay"),
) -> None:
    """Show the API token of this state directory (and a dashboard sign-in link), or rotate it.

    That token may do everything; 'plugbay token create --scope …' makes tokens that may
    do less (read, call:ID), 'token list' and 'token revoke' manage them.
    """
    if ctx.invoked_subcommand is not None:
        return
    from plugbay.web.client import running_host

    value = _rotated(state) if rotate else _kept(state)
    out.print(value, markup=False)
    running = running_host(state)
    if running and running.get("http"):
        out.print(f"dashboard: {running['http']}/?token={value}", markup=False)
    if rotate:
        err.print("[dim]the old token no longer works; a running host uses the new one now[/]")


def _rotated(state: Path) -> str:
    from plugbay.web.token import TokenFile

    try:
        return TokenFile(state).rotate()
    except PlugbayError as exc:
        fail(exc)


def _kept(state: Path) -> str:
    from plugbay.web.token import TokenFile

    try:
        return TokenFile(state).read()
    except FileNotFoundError:
        fail(
            PlugbayError(
                f"no API token was made for {state} yet",
                hint="'plugbay run' makes one on its first start, or "
                "'plugbay token --rotate' makes one now",
            )
        )
    except PlugbayError as exc:
        fail(exc)


def register(app: typer.Typer) -> None:
    """Attach the API commands to ``app``."""
    from plugbay.cli import tokens

    group = typer.Typer(name="token", invoke_without_command=True, no_args_is_help=False)
    group.callback(help=prose(token.__doc__))(token)
    tokens.add_to(group)
    app.add_typer(group, name="token", rich_help_panel=PANEL)
