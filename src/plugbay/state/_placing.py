"""Putting a finished file under its name: never over another file, and durably.

A rename or link changes the directory, not the file: until the directory is synced, a
power cut may leave the new name missing though the file's pages were written. And a
name two callers want at one moment (two restores keeping their replaced file) is
claimed by whichever makes it first, never by the last one to rename onto it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Final

__all__ = ["NameNotSynced", "claim", "place_new", "sync_directory"]

#: what os.link says on a file system without hard links (FAT, some network disks)
_NO_LINKS: Final = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})
#: what fsync of a directory says where the file system cannot sync one
_NO_DIRECTORY_SYNC: Final = frozenset({errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP})


class NameNotSynced(OSError):
    """Raised by :func:`place_new` when the file is under its new name but syncing its
    directory failed: the file is there, its name may not outlive a power cut."""


def sync_directory(directory: Path) -> None:
    """fsync ``directory``, so the names just made or renamed in it outlive a power cut
    (a file system that cannot sync a directory is left as it is)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIRECTORY_SYNC:
            raise
    finally:
        os.close(fd)


def claim(path: Path) -> bool:
    """Make ``path`` an empty file if nothing has that name, in one step: True, the name
    is this caller's (to rename onto); False, something had it."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


def place_new(made: Path, dest: Path) -> None:
    """Give the finished file ``made`` (in ``dest``'s directory) the name ``dest`` only if
    nothing has it (FileExistsError, and ``dest`` untouched, when something does), then
    sync the directory. A hard link, or where the file system has none, ``dest`` claimed
    and ``made`` renamed onto the claim. ``made`` is the caller's to remove. A failed
    sync is :class:`NameNotSynced`: ``dest`` is then in place."""
    try:
        os.link(made, dest)  # fails, unlike a rename, when a file is there
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if not claim(dest):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest)) from None
        try:
            os.replace(made, dest)
        except OSError:
            with contextlib.suppress(OSError):
                dest.unlink()  # the empty claim, not a file of anyone's
            raise
    try:
        sync_directory(dest.parent)
    except OSError as exc:
        raise NameNotSynced(exc.errno, exc.strerror, str(dest.parent)) from exc
