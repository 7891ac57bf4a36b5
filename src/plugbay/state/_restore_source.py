"""The file ``plugbay state restore --from`` names, read as its check reads it.

A copy an operator made of a host's ``state.db`` with its ``-wal``, or the state
directory of a host stopped before its checkpoint, holds committed rows only in the
``-wal``: copying the main file alone would drop them (a restore from such a file came
back without them, or without the schema). The restore copies with SQLite's backup
API from the source opened with its WAL, so it brings back what the check saw. SQLite
reads a ``-wal`` only through a ``-shm``: when none is beside it, both files are read
from a private copy in the state directory, so nothing is made or written beside the
operator's file.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from plugbay.state._sqlite import connect_read_only

__all__ = ["copy_database", "readable"]


@contextmanager
def readable(state_dir: Path, source: Path) -> Iterator[Path]:
    """``source``, or while the block runs, a copy of it and its ``-wal`` in a private
    directory of ``state_dir`` when that ``-wal`` has pages and no ``-shm`` indexes it
    (a read of ``source`` would leave a ``-shm`` beside it). Nothing writes such a file
    (a host writing keeps a ``-shm``), so the copy is the file as it is."""
    wal = source.with_name(source.name + "-wal")
    try:
        unindexed = wal.stat().st_size > 0 and not source.with_name(source.name + "-shm").exists()
    except OSError:
        unindexed = False
    if not unindexed:
        yield source
        return
    where = Path(tempfile.mkdtemp(prefix=".restoring-", dir=state_dir))
    try:
        copy = where / "state.db"
        shutil.copyfile(source, copy)
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        yield copy
    finally:
        shutil.rmtree(where, ignore_errors=True)


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
