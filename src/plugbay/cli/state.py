"""``plugbay state check|backup|restore``: is the state database sound, and the way back
when not.

The host keeps rolling backups of its database (``state_dir/backups``, SQLite's backup
API, at start and every few minutes). ``backup`` takes one more on demand, kept until the
operator deletes it; ``check`` runs SQLite's full integrity check on the database and on
every backup; ``restore`` puts the newest good backup (or ``--from``) in place, keeping
the file it replaces, and is refused while a host serves the directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from plugbay.api.errors import PlugbayError, StateError
from plugbay.cli._console import JsonOpt, out
from plugbay.cli._console import fail as _fail
from plugbay.cli._counted import counted
from plugbay.cli._options import prose

if TYPE_CHECKING:
    from plugbay.state.backups import DatabaseCheck

__all__ = ["register"]

state_app = typer.Typer(
    name="state",
    help="Check the state database, back it up, and restore it from a backup.",
    no_args_is_help=True,
)

StateOpt = Annotated[
    Path,
    typer.Option("--state", envvar="PLUGBAY_STATE", help="State directory (SQLite lives here)."),
]


def check(state: StateOpt = Path(".plugbay"), as_json: JsonOpt = False) -> None:
    """Run SQLite's integrity check on the state database and each backup; exit 1 when
    the database is not sound (the backups are listed, newest first)."""
    from plugbay.state import list_backups
    from plugbay.state.backups import check_database, is_manual

    db = state / "state.db"
    if not db.exists():
        _fail(
            StateError(
                "there is no state database here",
                where=str(db),
                hint="start a host with 'plugbay run', or point --state at its directory"
                + ("; 'plugbay state restore' puts a backup back" if list_backups(state) else ""),
            ),
            as_json=as_json,
        )
    main = check_database(db)
    backups = [check_database(b, backup=True) for b in list_backups(state)]
    if as_json:
        listed = [{**b.to_dict(), "manual": is_manual(b.path)} for b in backups]
        out.print_json(json.dumps({"database": main.to_dict(), "backups": listed}))
        raise typer.Exit(0 if main.ok else 1)
    out.print(_checks_table(main, backups))
    if main.ok:
        out.print(f"the state database is sound ({counted(len(backups), 'backup')} kept)")
        return
    if not main.opened:
        _fail(_unread(main))
    good = [b for b in backups if b.ok]
    hint = (
        f"'plugbay state restore' puts the newest good backup back ({good[0].path.name})"
        if good
        else "no good backup is kept; move state.db away to start with an empty state"
    )
    _fail(StateError("the state database is damaged", where=str(db), hint=hint))


def _unread(main: DatabaseCheck) -> StateError:
    """The database could not be opened to check it: not a damaged one, and no restore."""
    from plugbay.state._sqlite import DEFAULT_HINT, disk_full

    full = disk_full(main.path)
    return StateError(
        "the state database could not be checked: " + "; ".join(main.problems),
        where=str(main.path),
        hint=("the disk holding it is full: free some space" if full else DEFAULT_HINT)
        + ", then run 'plugbay state check' again (nothing says it is damaged: do not "
        "restore a backup over it for this)",
    )


def _checks_table(main: DatabaseCheck, backups: list[DatabaseCheck]) -> Table:
    """The database and each backup: file, kind (manual or automatic), size, schema, check."""
    from plugbay.state.backups import is_manual

    table = Table(header_style="bold")
    for col in ("file", "kind", "size", "schema", "check"):
        table.add_column(col)
    for c in (main, *backups):
        verdict = "[green]ok[/]" if c.ok else "[red]" + escape("; ".join(c.problems)) + "[/]"
        kind = "database" if c is main else "manual" if is_manual(c.path) else "automatic"
        table.add_row(str(c.path), kind, f"{c.size:,}", str(c.schema or "-"), verdict)
    return table


def backup(
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="Write it here instead: a file, or a directory to put it in under the usual name.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the file --to names if there is one.")
    ] = False,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Back the state database up now, into the backups 'plugbay state check' lists and
    'plugbay state restore' takes (or where --to says); prints its path. Works beside a
    running host (SQLite's backup API copies a consistent snapshot while it writes) and
    with none. A manual backup is kept until you delete it: the host removes only its own
    automatic ones."""
    from plugbay.state.backups import BACKUPS_KEPT, backup_to, manual_backup

    if force and to is None:
        raise typer.BadParameter(
            "there is nothing to replace without --to: give --to FILE with it, or leave "
            "--force out",
            param_hint="'--force'",
        )
    try:  # under the state directory as --state names it, or as --to does
        made = manual_backup(state) if to is None else backup_to(state, to, force=force)
    except PlugbayError as exc:
        _fail(exc, as_json=as_json)
    size = made.stat().st_size
    if as_json:
        out.print_json(json.dumps({"ok": True, "backup": str(made), "size": size}))
        return
    size_words = f"{size:,} {'byte' if size == 1 else 'bytes'}"
    out.print(f"backed up the state database to {escape(str(made))} ({size_words})")
    out.print(
        f"kept until you delete it: the host rolls only its own backups (the newest "
        f"{BACKUPS_KEPT} kept); 'plugbay state restore --from {escape(str(made))}' puts it back"
    )


def restore(
    source: Annotated[
        Path | None,
        typer.Option("--from", help="The backup to restore (default: the newest good one)."),
    ] = None,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Put a backup in place of the state database (the replaced file is kept beside it).
    Refused while a host serves this state directory (a 'plugbay run' or an
    application's Host): stop it first."""
    from plugbay.runtime.lifecycle import HostLock, HostLockedError
    from plugbay.state.backups import restore as restore_backup

    # the host lock, held through the restore: no host runs on the directory, and
    # none starts on the file being replaced
    lock = HostLock(state)
    try:
        if state.is_dir():
            lock.acquire()
        done = restore_backup(state, source)
    except HostLockedError as exc:
        _fail(
            StateError(
                f"a host (pid {exc.details.get('pid') or '?'}) serves {state}; restoring under "
                "it would lose what it writes",
                where=str(state / "state.db"),
                hint="stop that host first (Ctrl-C, or the application's host.stop()), "
                "restore, then start it again",
            ),
            as_json=as_json,
        )
    except PlugbayError as exc:
        _fail(exc, as_json=as_json)
    finally:
        lock.release()
    used, kept = done.used, done.kept
    if as_json:
        report = {
            "ok": True,
            "restored": str(used),
            "kept": str(kept) if kept else None,
            "revoked_again": {"tokens": done.tokens, "grants": [list(g) for g in done.grants]},
            "revocations_unread": done.unread,
        }
        out.print_json(json.dumps(report))
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(used.stat().st_mtime))
    out.print(f"restored the state database from {used} (taken {when})")
    if kept is not None:
        out.print(f"the file it replaced is kept as {kept}")
    if done.tokens or done.grants:
        taken = [f"API token {t}" for t in done.tokens]
        taken += [f"{p}: {g}" for p, g in done.grants]
        out.print("revoked since the backup, and still revoked: " + ", ".join(taken))
    if done.unread is not None:
        out.print(
            f"[yellow]warning:[/] what the replaced file revoked since {when} could not be "
            f"read ({escape(done.unread)}): API tokens and permissions revoked since are "
            "valid again; check 'plugbay token list' and 'plugbay info ID', and revoke them"
        )


def register(app: typer.Typer) -> None:
    """File ``plugbay state`` under ``app``."""
    state_app.command("check", help=prose(check.__doc__))(check)
    state_app.command("backup", help=prose(backup.__doc__))(backup)
    state_app.command("restore", help=prose(restore.__doc__))(restore)
    app.add_typer(state_app, name="state", rich_help_panel="host")
