"""The file ``plugbay state restore --from`` names, read as its check reads it.

A copy an operator made of a host's ``state.db`` with its ``-wal``, or the state
directory of a host stopped before its checkpoint, holds committed rows only in the
``-wal``: copying the main file alone would drop them (a restore from such a file came
back without them, or without the schema). The restore copies with SQLite's backup
API from the source opened with its WAL, so it brings back what the check saw. SQLite
reads a ``-wal`` only through a ``-shm``, and a reader writes there (its read marks, an
index it rebuilds): the file and its ``-wal`` are read from a private copy in the state
directory, where SQLite makes its own ``-shm``, so nothing is made or written beside
the operator's files, a ``-shm`` of a host still open on them included.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from plugbay.api.errors import StateError
from plugbay.state._sqlite import connect_read_only

__all__ = ["copy_database", "readable"]


@contextmanager
def readable(state_dir: Path, source: Path) -> Iterator[Path]:
    """``source``, or while the block runs, a copy of it and its ``-wal`` in a private
    directory of ``state_dir`` when that ``-wal`` has pages (a read of ``source`` would
    make or write a ``-shm`` beside it). Refused when either file changed while it was
    copied: a host writing them would make a copy of two moments."""
    wal = source.with_name(source.name + "-wal")
    try:
        logged = wal.stat().st_size > 0
    except OSError:
        logged = False
    if not logged:
        yield source
        return
    where = Path(tempfile.mkdtemp(prefix=".restoring-", dir=state_dir))
    try:
        copy = where / "state.db"
        before = _stamps(source, wal)
        shutil.copyfile(source, copy)
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        if _stamps(source, wal) != before:
            raise StateError(
                "the backup changed while it was read: a host is writing it",
                where=str(source),
                hint="stop the host that uses it, or take a backup of its state directory "
                "with 'plugbay state backup --to' and restore that",
            )
        yield copy
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _stamps(*files: Path) -> list[tuple[int, int, int]]:
    """What changes when a file is written or replaced: its inode, size and mtime."""
    return [(st.st_ino, st.st_size, st.st_mtime_ns) for st in map(os.stat, files)]


def copy_database(source: Path, dest: Path, *, at_rest: bool) -> None:
    """Write ``source`` as SQLite reads it to ``dest`` with the backup API: with its
    ``-wal``, or, ``at_rest`` (a backup nothing writes), the file alone, read as
    immutable (no ``-shm`` is made beside it)."""
    if at_rest:
        uri = f"{source.resolve().as_uri()}?mode=ro&immutable=1"
        src = sqlite3.connect(uri, uri=True)
    else:
        src = connect_read_only(source)
    try:
        copy = sqlite3.connect(dest)
        try:
            copy.execute("PRAGMA synchronous=OFF")  # made durable by the restore's fsync
            src.backup(copy)
        finally:
            copy.close()
    finally:
        src.close()
