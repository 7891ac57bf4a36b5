"""``plugbay token create|list|revoke``: scoped API tokens, kept hashed in the state."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from plugbay.cli._console import JsonOpt, err, fail, out
from plugbay.cli._options import PluginsOpt, StateOpt, print_json, prose, store_op

__all__ = ["add_to"]


# A scope or an expiry the command cannot take is a usage error (exit 2, with --json the
# common error shape), refused before the state is touched, as any option's wrong value.
def _checked_scopes(scopes: list[str]) -> list[str]:
    from plugbay.api.errors import PlugbayError
    from plugbay.web.scopes import parse_scope

    try:
        for scope in scopes:
            parse_scope(scope)
    except PlugbayError as exc:
        raise typer.BadParameter(f"{exc.message}; {exc.hint}") from None
    return scopes


def _checked_expiry(expires: str) -> str:
    from plugbay.api.errors import PlugbayError
    from plugbay.web.scopes import parse_expiry

    try:
        parse_expiry(expires)
    except PlugbayError as exc:
        raise typer.BadParameter(f"{exc.message}; {exc.hint}") from None
    return expires


def create(
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            "-s",
            help="read, call:PLUGIN_ID or admin (repeatable).",
            callback=_checked_scopes,
        ),
    ],
    expires: Annotated[
        str,
        typer.Option(
            "--expires",
            help="30d, 12h, 45m, 2w, a date (2027-01-31), a date-time, or never.",
            callback=_checked_expiry,
        ),
    ] = "30d",
    note: Annotated[
        str | None, typer.Option("--note", help="Who or what it is for (shown by list).")
    ] = None,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Make a token that may do only what its scopes say; it is printed once.

    read: every GET (plugins, info, config, history, logs, metrics, the dashboard). call:ID:
    that, and calling plugin ID's commands. admin: everything. Only its SHA-256 is kept
    in the state database; a running host accepts it at once. A call:ID whose plugin is
    not on disk is warned about (it may be installed later) and kept.
    """
    from plugbay.api.errors import PlugbayError
    from plugbay.web.scopes import create_token, parse_expiry

    try:
        until = parse_expiry(expires)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    _warn_unknown_plugins(scope, plugins or [Path("plugins")], state)
    token_id, secret = store_op(
        state, lambda db: create_token(db, scope, expires=until, note=note), as_json=as_json
    )
    if as_json:
        print_json({"ok": True, "id": token_id, "token": secret, "scopes": sorted(set(scope)),
                    "expires": until})  # fmt: skip
        return
    out.print(secret, markup=False)
    when = "never expires" if until is None else f"expires {_time(until)}"
    out.print(
        f"[dim]token {token_id}: {escape(', '.join(sorted(set(scope))))}; {when}; shown only now[/]"
    )


def _warn_unknown_plugins(scopes: list[str], plugin_dirs: list[Path], state: Path) -> None:
    """A warning on stderr for each call:ID naming no plugin on disk: a typo makes a token
    that can call nothing. It is still made, as the plugin may be installed later."""
    from plugbay.cli.offline import missing_plugin

    for scope in sorted(set(scopes)):
        kind, _, plugin_id = scope.strip().partition(":")
        if kind != "call" or not plugin_id:
            continue
        missing = missing_plugin(plugin_id, plugin_dirs, state)
        if missing is not None:
            why = f"{missing.message} ({missing.where}); {missing.hint}"
            err.print(
                f"[yellow]warning[/]: {escape(why)}; the token's {escape(scope.strip())} "
                "calls nothing until a plugin with that id is installed"
            )


def list_tokens(state: StateOpt = Path(".plugbay"), as_json: JsonOpt = False) -> None:
    """List the scoped tokens: id, scopes, status (active, expired, revoked), dates, and
    when each was last used (to the minute)."""
    rows = store_op(state, lambda db: db.api_tokens(), as_json=as_json)
    now = time.time()
    for row in rows:
        row["status"] = _status(row, now)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no scoped tokens ('plugbay token create --scope …' makes one)")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "scopes", "status", "created", "expires", "last used", "note"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"], escape(", ".join(row["scopes"])), row["status"], _time(row["created"]),
            _time(row["expires"]) if row["expires"] else "never",
            _time(row["last_used"]) if row["last_used"] else "never",
            escape(row["note"] or ""),
        )  # fmt: skip
    out.print(table)


def revoke(
    token: Annotated[
        str, typer.Argument(help="The token's id ('plugbay token list'), or the token itself")
    ],
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Revoke a scoped token, named by its id or given whole (pbt_…); a running host
    refuses it from its next request."""
    from plugbay.api.errors import PlugbayError

    token_id = store_op(state, lambda db: _token_id(db, token), as_json=as_json)
    if token_id is None or not store_op(
        state, lambda db: db.revoke_api_token(token_id), as_json=as_json
    ):
        what = "no token given" if token_id is None else f"no valid token {token_id}"
        fail(
            PlugbayError(
                f"there is {what} in {state}",
                hint="'plugbay token list' shows the tokens and their ids",
            ),
            as_json=as_json,
        )
    if as_json:
        print_json({"ok": True, "id": token_id, "revoked": True})
    else:
        out.print(f"token {token_id} revoked")


def _token_id(db: Any, token: str) -> str | None:
    """The id of ``token``: an id as given, or a whole token (pbt_…) found by its digest
    (None when the state has no such token); the secret is never printed."""
    from plugbay.web.scopes import PREFIX, digest

    token = token.strip()
    if not token.startswith(PREFIX):
        return token
    row = db.api_token_by_digest(digest(token))
    return None if row is None else str(row["id"])


def _status(row: dict[str, Any], now: float) -> str:
    if row["revoked"] is not None:
        return "revoked"
    if row["expires"] is not None and row["expires"] <= now:
        return "expired"
    return "active"


def _time(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))


def add_to(group: typer.Typer) -> None:
    """File create, list and revoke under the ``token`` group."""
    group.command("create", help=prose(create.__doc__))(create)
    group.command("list", help=prose(list_tokens.__doc__))(list_tokens)
    group.command("revoke", help=prose(revoke.__doc__))(revoke)
