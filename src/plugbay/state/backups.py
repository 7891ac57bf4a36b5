"""The way back for the state database: rolling backups, a check, and restore.

The host backs its database up with SQLite's backup API (a consistent copy taken while it
runs) at start, once the database passed its check, and every ``interval`` seconds after,
keeping the newest ``keep`` in ``state_dir/backups``. ``plugbay state backup`` takes one on
demand (:func:`manual_backup`), with or without a host running; a manual backup is never
counted against ``keep`` nor removed by the host: it stays until the operator deletes it.
``plugbay state check`` and ``plugbay state restore`` use both kinds; a restore keeps the
file it replaces beside it, and what that file had taken back since the backup stays
taken back (:class:`Restored`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from plugbay.api.errors import StateError
from plugbay.state import BACKUP_DIR, SCHEMA_VERSION, StateStore, list_backups
from plugbay.state._leftovers import remove_restore_leftovers
from plugbay.state._placing import NameNotSynced, claim, place_new, sync_directory
from plugbay.state._restore_source import copy_database, readable
from plugbay.state._sqlite import connect_read_only

__all__ = [
    "BACKUPS_KEPT",
    "BACKUP_EVERY_S",
    "DatabaseCheck",
    "Restored",
    "back_up_every",
    "backup_to",
    "check_database",
    "is_manual",
    "manual_backup",
    "restore",
    "rolling_backup",
]

#: how often a running host backs its state up, and how many backups it keeps
BACKUP_EVERY_S: Final = 600.0
BACKUPS_KEPT: Final = 6

log = logging.getLogger("plugbay.state")


#: how a backup taken on demand (``plugbay state backup``) ends its name
MANUAL_SUFFIX: Final = "-manual.db"


def _backup_name(suffix: str = ".db") -> str:
    """``state-<UTC time>-<ns>.db``: the names sort as the backups were taken."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"state-{stamp}-{time.time_ns() % 1_000_000_000:09d}{suffix}"


def is_manual(backup: Path) -> bool:
    """Whether ``backup`` was taken on demand (kept until deleted by hand)."""
    return Path(backup).name.endswith(MANUAL_SUFFIX)


def rolling_backup(store: StateStore, *, keep: int = BACKUPS_KEPT) -> Path:
    """One more backup of ``store`` in ``backups/``; all but the newest ``keep`` automatic
    ones go (manual backups are neither counted nor removed)."""
    made = store.back_up(store.path.parent / BACKUP_DIR / _backup_name())
    automatic = [b for b in list_backups(store.path.parent) if not is_manual(b)]
    for old in automatic[keep:]:
        try:
            old.unlink()
        except OSError as exc:
            log.warning("cannot remove the old state backup %s: %s", old, exc)
    return made


def start_backup(store: StateStore, *, interval: float = BACKUP_EVERY_S) -> Path | None:
    """The backup a host takes as it starts, unless an automatic one is younger than
    ``interval`` (None then). Hosts that start often (one-shot ``plugbay call``s, a
    service restarted in a loop) would otherwise push every older backup out of the
    ``BACKUPS_KEPT`` within minutes, each a copy of nearly the same database."""
    automatic = [b for b in list_backups(store.path.parent) if not is_manual(b)]
    with contextlib.suppress(OSError):
        if automatic and time.time() - automatic[0].stat().st_mtime < interval:
            return None
    return rolling_backup(store)


def manual_backup(state_dir: Path) -> Path:
    """A backup of ``state_dir/state.db`` taken now, on demand, beside the host's own
    (``backups/state-…-manual.db``). The database is opened read-only, so this works with
    or without a host serving the directory: SQLite's backup API copies a consistent
    snapshot while the host goes on writing. A damaged database is refused, not copied."""
    with StateStore.open(state_dir, read_only=True) as store:
        return store.back_up(Path(state_dir) / BACKUP_DIR / _backup_name(MANUAL_SUFFIX))


def backup_to(state_dir: Path, to: Path, *, force: bool = False) -> Path:
    """:func:`manual_backup` written where the operator keeps backups: the file ``to``, or
    in the directory ``to`` under the usual name. Taken under a temporary name beside it
    and moved into place whole; a file already there is replaced only with ``force``
    (one made there while the copy was taken too)."""
    to = Path(to)
    dest = to / _backup_name(MANUAL_SUFFIX) if to.is_dir() else to
    if dest.exists() and not force:  # before the copy, which may take a while
        raise _exists(dest)
    taking = dest if force else dest.with_name(f".{dest.name}.{os.getpid()}.taking")
    try:
        with StateStore.open(state_dir, read_only=True) as store:
            store.back_up(taking)
    except StateError as exc:
        raise _room_elsewhere(exc) from None
    if force:
        return dest
    try:
        place_new(taking, dest)
    except FileExistsError:
        raise _exists(dest) from None
    except NameNotSynced as exc:
        raise StateError(
            f"the state backup is written, but syncing its directory failed: {exc.strerror or exc}",
            where=str(dest),
            hint="the copy is there, whole, but its name may not outlive a power cut: check "
            "that disk (an I/O error is the disk's), and keep another copy on another disk "
            "with --to",
            details={"written": True},
        ) from None
    except OSError as exc:
        raise StateError(
            f"cannot write the state backup: {exc.strerror or exc}",
            where=str(dest),
            hint="nothing was written there: fix the directory's permissions, or name "
            "another place with --to",
        ) from None
    finally:
        with contextlib.suppress(OSError):
            taking.unlink()
    return dest


def _exists(dest: Path) -> StateError:
    return StateError(
        "there is a file there already; the backup would replace it",
        where=str(dest),
        hint="add --force to replace it, or name another file (or a directory, to get "
        "a new name) with --to",
    )


def _room_elsewhere(exc: StateError) -> StateError:
    """``exc``, saying what to do of a full disk outside the state's ``backups/`` (the
    hint of :func:`~plugbay.state._room.no_room` speaks of that directory)."""
    if not exc.details.get("disk_full"):
        return exc
    short = int(exc.details["needed"]) - int(exc.details["free"])
    to_free = f"free at least {short:,} bytes" if short > 0 else "free some space"
    return StateError(
        exc.message,
        where=exc.where,
        hint=f"{to_free} on that disk, or name a place with room with --to, then run "
        "'plugbay state backup' again",
        details=exc.details,
    )


async def back_up_every(
    store: StateStore, *, interval: float = BACKUP_EVERY_S, keep: int = BACKUPS_KEPT
) -> None:
    """Back ``store`` up every ``interval`` seconds until cancelled; a failed backup (a
    full disk) is logged and tried again next time, never fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(rolling_backup, store, keep=keep)
        except StateError as exc:
            log.warning("the state backup failed (tried again in %g s): %s", interval, exc)


@dataclass(frozen=True, slots=True)
class DatabaseCheck:
    """What ``plugbay state check`` found in one database file."""

    path: Path
    ok: bool
    schema: int | None = None
    problems: list[str] = field(default_factory=list)
    size: int = 0
    #: False: SQLite could not open it (a full disk, its permissions): not checked, so
    #: not known to be damaged either
    opened: bool = True

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "schema": self.schema,
            "problems": list(self.problems),
            "size": self.size,
        }


def check_database(path: Path, *, backup: bool = False) -> DatabaseCheck:
    """SQLite's full ``integrity_check`` and the schema version, read-only.

    ``backup``: the file is one of ``backups/``, which nothing writes once it is in place
    (:meth:`StateStore.back_up` renames it there whole). It is read as immutable, so
    the check leaves no ``-wal`` / ``-shm`` beside it (a backup copies the database's
    WAL mode, and a plain read-only open of a WAL file makes both); an empty pair an
    earlier check left is removed. The live database is read with its WAL, as it is."""
    path = Path(path)
    if backup:
        _tidy_sidecars(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return DatabaseCheck(path, False, problems=[f"cannot read it: {exc.strerror or exc}"])
    if not path.is_file():
        return DatabaseCheck(path, False, problems=["it is not a file (a directory?)"])
    if size == 0:
        return DatabaseCheck(path, False, problems=["the file is empty (0 bytes)"])
    try:
        db = _open_to_check(path, backup=backup)
    except sqlite3.OperationalError as exc:  # not read: nothing is known of its pages
        return DatabaseCheck(path, False, problems=[f"cannot open it: {exc}"], size=size,
                             opened=False)  # fmt: skip
    except sqlite3.Error as exc:
        return DatabaseCheck(path, False, problems=[f"it is not a usable database: {exc}"],
                             size=size)  # fmt: skip
    try:
        (schema,) = db.execute("PRAGMA user_version").fetchone()
        rows = db.execute("PRAGMA integrity_check(20)").fetchall()
        problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
        if schema > SCHEMA_VERSION:
            problems.append(f"schema {schema} is newer than this plugbay ({SCHEMA_VERSION})")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if schema >= 1 and not {"plugins", "history", "grants"} <= tables:
            problems.append("tables of the plugbay schema are missing")
        return DatabaseCheck(path, not problems, int(schema), problems, size)
    except (sqlite3.Error, UnicodeDecodeError, ValueError) as exc:
        return DatabaseCheck(path, False, problems=[f"it is not a usable database: {exc}"],
                             size=size)  # fmt: skip
    finally:
        db.close()


#: a backup is read without locks or a WAL index: nothing writes it
_AT_REST: Final = "&immutable=1"


def _open_to_check(path: Path, *, backup: bool) -> sqlite3.Connection:
    """A backup at rest; the live database as every read-only command opens it (on a
    full disk too: :func:`connect_read_only`)."""
    if backup:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{_AT_REST}", uri=True)
    return connect_read_only(path)


def _tidy_sidecars(backup: Path) -> None:
    """Remove the empty ``-wal`` and its ``-shm`` a read-only check of ``backup`` by an
    older plugbay left beside it (a ``-wal`` with pages in it is left alone)."""
    wal = backup.with_name(backup.name + "-wal")
    with contextlib.suppress(OSError):
        if wal.stat().st_size == 0:
            backup.with_name(backup.name + "-shm").unlink(missing_ok=True)
            wal.unlink()


@dataclass(frozen=True, slots=True)
class Restored:
    """What ``restore`` did: the backup put in place, where the file it replaced is kept
    (None: there was none), and what that file had taken back since the backup, taken
    back in the restored one too. A restore brings the plugins' state back; it must not
    hand out again an API token or a permission the operator revoked after the backup."""

    used: Path
    kept: Path | None
    #: API tokens revoked since the backup (their ids), revoked again
    tokens: list[str] = field(default_factory=list)
    #: grants revoked since the backup, (plugin id, permission), revoked again
    grants: list[tuple[str, str]] = field(default_factory=list)
    #: why the replaced file's revocations could not be read (None: they were, or no file)
    unread: str | None = None


def _keep_revoked(target: Path, replaced: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Revoke in ``target`` (the restored database) what ``replaced`` had revoked and
    ``target`` still grants: tokens by their revocation, grants by their absence."""
    db = sqlite3.connect(target.resolve().as_uri(), uri=True)
    try:
        db.execute("ATTACH DATABASE ? AS old", (replaced.resolve().as_uri() + "?mode=ro",))
        tokens = db.execute(
            "SELECT n.id, o.revoked FROM main.api_tokens n JOIN old.api_tokens o ON o.id = n.id "
            "WHERE n.revoked IS NULL AND o.revoked IS NOT NULL ORDER BY n.id"
        ).fetchall()
        grants = db.execute(
            "SELECT plugin_id, permission FROM main.grants n WHERE NOT EXISTS (SELECT 1 FROM "
            "old.grants o WHERE o.plugin_id = n.plugin_id AND o.permission = n.permission) "
            "ORDER BY plugin_id, permission"
        ).fetchall()
        with db:
            db.executemany("UPDATE main.api_tokens SET revoked=? WHERE id=?",
                           [(revoked, token) for token, revoked in tokens])  # fmt: skip
            db.executemany("DELETE FROM main.grants WHERE plugin_id=? AND permission=?", grants)
        return [str(t) for t, _ in tokens], [(str(p), str(g)) for p, g in grants]
    finally:
        db.close()


def _revoked_again(restored: Path, source: Path, replaced: Path, kept: Path) -> Restored:
    """:func:`_keep_revoked` when the ``replaced`` file can be read, else why not; it is to
    be ``kept`` under that name."""
    checked = check_database(replaced)
    if not checked.ok:
        return Restored(source, kept, unread="; ".join(checked.problems))
    try:
        tokens, grants = _keep_revoked(restored, replaced)
    except sqlite3.Error as exc:
        return Restored(source, kept, unread=str(exc))
    return Restored(source, kept, tokens, grants)


def restore(state_dir: Path, source: Path | None = None) -> Restored:
    """Put ``source`` (default: the newest backup that passes its check) in place of
    ``state_dir/state.db``, keeping revoked what the replaced file revoked since (when it
    can be read). No host may be running on ``state_dir``.

    The copy is made and made durable beside the database first; only then is the
    database moved aside and the copy renamed in its place. A failure before that (a full
    disk, an unreadable backup) changes nothing: the database stays where it was."""
    state_dir = Path(state_dir)
    target = state_dir / "state.db"
    source = _source(state_dir, source)
    if source.resolve() == target.resolve():
        raise StateError(
            "--from names the state database itself, not a backup of it",
            where=str(source),
            hint="name a backup ('plugbay state check' lists them), or leave --from out "
            "to restore the newest good one",
        )
    remove_restore_leftovers(state_dir)  # of a restore that crashed partway (._leftovers)
    # this restore's own: another restoring at the same moment writes its own copy
    tmp = target.with_name(f"state.db.restoring-{os.getpid()}-{threading.get_native_id()}")
    aside, moved = None, False
    try:
        _checked_copy(state_dir, source, tmp)
        done = Restored(source, None)
        sides = [target.with_name(target.name + s) for s in ("-wal", "-shm")]
        if target.exists() or any(side.exists() for side in sides):
            aside = _aside(target)
        if aside is not None and target.exists():  # read in place, with its WAL, first
            done = _revoked_again(tmp, source, target, aside)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if aside is not None:
            moved = True  # from here its name may hold the replaced file, not the claim
            _move_aside(target, aside, kept=done.kept is not None)
        os.replace(tmp, target)
        sync_directory(state_dir)  # both names, after a power cut too
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if aside is not None and not moved:
            with contextlib.suppress(OSError):
                aside.unlink()  # the empty claim on its name
        why = getattr(exc, "strerror", None) or exc
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:  # SQLite's copy
            why = os.strerror(errno.ENOSPC)  # in the system's words, as a file copy says it
        raise StateError(
            f"cannot restore the state database: {why}",
            where=str(getattr(exc, "filename", None) or target),
            hint="nothing was changed: free some disk space or fix the permissions of the "
            "state directory, then run 'plugbay state restore' again",
        ) from None
    return done


def _checked_copy(state_dir: Path, source: Path, tmp: Path) -> None:
    """``source`` checked and copied to ``tmp``, both as SQLite reads it: with a ``-wal``
    beside it, what only that holds is checked and copied too (:mod:`._restore_source`)."""
    at_rest = _at_rest(state_dir, source)
    with readable(state_dir, source) as reading:
        checked = check_database(reading, backup=at_rest)
        if not checked.ok:
            raise StateError(
                "the backup does not pass its check: " + "; ".join(checked.problems),
                where=str(source),
                hint="'plugbay state check' lists the backups and which are good",
            )
        for stale in ("", "-journal", "-wal", "-shm"):  # of a restore cut short
            tmp.with_name(tmp.name + stale).unlink(missing_ok=True)
        copy_database(reading, tmp, at_rest=at_rest)


def _move_aside(target: Path, aside: Path, *, kept: bool) -> None:
    """Move ``target`` (when ``kept``) and its ``-wal`` / ``-shm`` (the replaced file's, or
    stale: never the copy's) to the claimed ``aside``."""
    if kept:
        os.replace(target, aside)
    else:
        aside.unlink()  # no file to keep: its claim goes
    for suffix in ("-wal", "-shm"):
        side = target.with_name(target.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))


def _aside(target: Path) -> Path:
    """Where the replaced ``target`` is kept: ``state.db.replaced-<UTC second>``, with
    ``-2``, ``-3``… when a restore in the same second kept one there already. The name
    is claimed (made, empty) at once: a restore at the same moment takes the next one."""
    aside = target.with_name(f"state.db.replaced-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}")
    named, n = aside.name, 2
    while any(aside.with_name(aside.name + s).exists() for s in ("-wal", "-shm")) or not claim(
        aside
    ):
        aside, n = aside.with_name(f"{named}-{n}"), n + 1
    return aside


def _at_rest(state_dir: Path, source: Path) -> bool:
    """Whether ``source`` is read as a backup nothing writes: one of ``backups/``, or one
    without a ``-wal`` with pages in it (``plugbay state backup --to`` writes them whole);
    read with its WAL, it was left with a ``-wal`` and a ``-shm`` beside it."""
    if source.resolve().parent == (state_dir / BACKUP_DIR).resolve():
        return True
    try:
        return source.with_name(source.name + "-wal").stat().st_size == 0
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _source(state_dir: Path, source: Path | None) -> Path:
    """``source``, or the newest backup that passes its check."""
    if source is not None:
        return Path(source)
    backups = list_backups(state_dir)
    good = next((b for b in backups if check_database(b, backup=True).ok), None)
    if good is None:
        raise StateError(
            "there is no good backup to restore"
            + (f" ({len(backups)} kept, none passes its check)" if backups else ""),
            where=str(state_dir / BACKUP_DIR),
            hint="name another copy with --from, or move state.db away to start afresh",
        )
    return good
