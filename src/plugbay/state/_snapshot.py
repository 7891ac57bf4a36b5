"""A private snapshot of a state database whose ``-wal`` no ``-shm`` indexes, where this
user cannot make one (a host of another user killed, or stopped after a passive
checkpoint; a read-only disk): SQLite reads a ``-wal`` only through a ``-shm``. The
database and its ``-wal`` are copied into a temporary directory of this user's, where
SQLite builds the ``-shm`` and reads the ``-wal``; the copy goes when its connection
closes. The originals are only read."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["SNAPSHOT_LIMIT", "private_copy", "remove_copy"]

#: the most a snapshot copies (the database and its -wal): larger, it is refused
SNAPSHOT_LIMIT: Final[int] = 256 * 1024 * 1024
#: room left beside the copy for the -shm SQLite builds (32 KiB per 4,096 pages)
_SHM_ROOM: Final = 1024 * 1024
_PREFIX: Final = "plugbay-state-"


def private_copy(path: Path) -> Path | None:
    """A copy of the database ``path`` and its ``-wal`` in a new temporary directory only
    this user may enter; None when they are larger than :data:`SNAPSHOT_LIMIT`, the
    temporary disk lacks the room, or the copy fails (nothing is left behind)."""
    sides = [path, path.with_name(path.name + "-wal")]
    try:
        needed = sum(side.stat().st_size for side in sides)
        tmp = tempfile.gettempdir()
        st = os.statvfs(tmp)
    except OSError:
        return None
    if needed > SNAPSHOT_LIMIT or st.f_bavail * st.f_frsize < needed + _SHM_ROOM:
        return None
    try:
        where = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=tmp))  # 0o700
    except OSError:
        return None
    try:
        for side in sides:
            shutil.copyfile(side, where / side.name)
    except OSError:
        remove_copy(where / path.name)
        return None
    return where / path.name


def remove_copy(copy: Path) -> None:
    """Remove the directory of a :func:`private_copy` (the database, its -wal, its -shm)."""
    if copy.parent.name.startswith(_PREFIX):
        shutil.rmtree(copy.parent, ignore_errors=True)
