"""What a backup of the state database needs on a full disk: the room the copy takes
(the database and its ``-wal``, which the copy folds in) and the room free where it goes,
so the error says how much to free, and where, rather than only that the disk is full."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from plugbay.api.errors import StateError

__all__ = ["no_room"]


def no_room(database: Path, dest: Path, exc: BaseException) -> StateError | None:
    """The error of a backup of ``database`` to ``dest`` that failed (``exc``) for want of
    room there; None when the disk holding ``dest`` is not full."""
    free = _free_bytes(dest.parent)
    if free is None:
        return None
    sizes = {suffix: _size(database.with_name(database.name + suffix)) for suffix in ("", "-wal")}
    needed = sum(sizes.values())
    if not (_says_full(exc, free) or free < needed):
        return None
    short = needed - free
    to_free = f"free at least {short:,} bytes" if short > 0 else "free some space"
    return StateError(
        f"cannot back up the state database: the disk holding {dest.parent} is full: the "
        f"copy needs up to {needed:,} bytes ({database.name} {sizes['']:,} and its -wal "
        f"{sizes['-wal']:,}), and {free:,} are free there",
        where=str(dest.parent),
        hint=f"{to_free} on that disk (older backups in {dest.parent} can go: 'plugbay "
        "state check' lists them), then run 'plugbay state backup' again; backups are "
        "always written there",
        details={"disk_full": True, "needed": needed, "free": free},
    )


def _says_full(exc: BaseException, free: int) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    name = str(getattr(exc, "sqlite_errorname", ""))
    if name.startswith("SQLITE_FULL"):
        return True
    return isinstance(exc, sqlite3.Error) and name.startswith("SQLITE_IOERR") and free == 0


def _free_bytes(directory: Path) -> int | None:
    """The bytes this user may still write on the file system of ``directory`` (of its
    nearest parent that exists: the backups directory may not be made yet)."""
    for where in (directory, *directory.parents):
        try:
            st = os.statvfs(where)
        except FileNotFoundError:
            continue
        except OSError:
            return None
        return st.f_bavail * st.f_frsize
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
