"""SQLite plumbing of the state store: opening a database read-only, statements that
keep odd text rather than lose a write, JSON columns, and what SQLite's errors mean to
an operator (the hint each error code gets)."""

from __future__ import annotations

import json
import os
import sqlite3
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from plugbay.state._snapshot import private_copy, remove_copy

__all__ = [
    "BUSY_TIMEOUT_S",
    "DEFAULT_HINT",
    "ERROR_HINTS",
    "UNUSABLE",
    "ReadOnly",
    "connect_read_only",
    "disk_full",
    "execute",
    "read_json",
    "refreshed",
    "rollback",
    "savepoint",
    "utf8_safe",
]

BUSY_TIMEOUT_S: Final[float] = 5.0
#: the "error name" of a state whose -wal or -shm this user cannot read (not SQLite's)
_UNREADABLE_LOG: Final = "PLUGBAY_UNREADABLE_WAL"
#: ... of a -wal with commits and no -shm, which this user cannot make (not SQLite's)
_WAL_OTHER_USER: Final = "PLUGBAY_UNSHARED_WAL_OTHER_USER"
_WAL_READ_ONLY_DISK: Final = "PLUGBAY_UNSHARED_WAL_READ_ONLY_DISK"
#: the size of a -wal's header; each frame's header (24 bytes) follows
_WAL_HEADER: Final = 32

DEFAULT_HINT: Final = "check free disk space and the permissions of the state directory"
# Keyed by the start of sqlite3.Error.sqlite_errorname (extended codes share a prefix).
ERROR_HINTS: Final[tuple[tuple[str, str], ...]] = (
    (
        "SQLITE_BUSY",
        f"another process held the state database locked for more than {BUSY_TIMEOUT_S:g} s; "
        "is a second plugbay using the same state directory?",
    ),
    (
        "SQLITE_LOCKED",
        "another connection holds the state database locked; retry, and make sure only "
        "one plugbay uses this state directory",
    ),
    ("SQLITE_FULL", "the disk holding the state directory is full; free some space and retry"),
    (
        "SQLITE_READONLY",
        "the state database is read-only; make it and its directory writable by this user",
    ),
    ("SQLITE_PERM", "make the state directory and its files writable by this user"),
    (
        "SQLITE_CANTOPEN",
        "check that the state directory exists and is writable, or choose another with --state",
    ),
    ("SQLITE_IOERR", "the disk reported an I/O error; check the disk and free space, then retry"),
    (
        _UNREADABLE_LOG,
        "make state.db-wal and state.db-shm readable by this user as state.db is (chmod, "
        "chgrp; files the host made before state.db's mode changed keep their old mode "
        "until it restarts), or read as the host's user",
    ),
    (
        _WAL_READ_ONLY_DISK,
        "copy the state directory to a writable disk and read the copy (--state COPY): "
        "SQLite then reads the -wal",
    ),
    (
        _WAL_OTHER_USER,
        "read it as the host's user (sudo -u OWNER plugbay ...), or start that host: it "
        "reads the -wal in, and other users read through its -shm while it runs",
    ),
)
UNUSABLE: Final = ("SQLITE_NOTADB", "SQLITE_CORRUPT")


class ReadOnly(sqlite3.Connection):
    """A connection of :func:`connect_read_only`, with the ``-shm`` it was opened beside
    (:func:`refreshed` opens another when that file changes)."""

    #: (device, inode) of the -shm when it was opened; None: there was none
    shm: tuple[int, int] | None = None
    #: (device, inode, size, mtime) of the database when it was opened: with no -shm,
    #: the one sign that it was replaced (a restore, a copy put in its place)
    database: tuple[int, int, int, int] | None = None
    #: removes the private copy it reads, if it reads one (:mod:`plugbay.state._snapshot`)
    _remove_copy: Callable[[], object] | None = None

    def close(self) -> None:
        super().close()
        if self._remove_copy is not None:
            self._remove_copy()


def connect_read_only(path: Path) -> sqlite3.Connection:
    """``mode=ro``. Beside a host of another user (who cannot write its -shm) SQLite opens
    the -shm read-only and reads through that host's index: what it committed is seen.
    When this user cannot write the directory and there is no -shm (no host writes), the
    database is opened ``immutable``: a read-only disk, or a host of another user that is
    stopped (:func:`refreshed` reopens it once a host makes its -shm). A -wal or -shm
    this user cannot read is refused: without it what the host wrote since its last
    checkpoint would be missing, silently. On a full disk the -shm cannot be grown: it is
    then read without writing it (:func:`_without_shm`)."""
    if not path.is_file():
        raise sqlite3.OperationalError(f"unable to open database file {path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    shm_before = _identity(_shm(path))
    database = _database(path)  # before it is opened: a change meanwhile reopens it once
    try:
        db = _probed(uri)
    except sqlite3.OperationalError as exc:
        if not os.access(path.parent, os.W_OK):
            _check_readable(path)
            if shm_before is not None:  # a host's index, read without writing it
                with suppress(sqlite3.Error):
                    return _read_only(_probed(uri + "&readonly_shm=1"), shm_before, database)
                shm_before = (-1, -1)  # unusable now: reopened at the next read
            elif _unshared_wal(path):
                return _read_only(_from_private_copy(path), None, database)
            return _read_only(_connect(uri + "&immutable=1"), shm_before, database)
        shm = str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_IOERR_SHM")
        if not (shm or disk_full(path)):  # too little room left to grow the -shm: the same
            raise
        try:
            db = _without_shm(path, uri)
        except (OSError, sqlite3.Error):
            raise exc from None  # the disk is full: the first error says so (ERROR_HINTS)
    return _read_only(db, _identity(_shm(path)), database)  # the -shm it opened (or made)


def refreshed(
    db: sqlite3.Connection, path: Path, check: Callable[[sqlite3.Connection], object]
) -> sqlite3.Connection:
    """``db``, or a new read-only connection when the -shm it was opened beside changed:
    a host of another user started (an ``immutable`` connection would never see what it
    writes), stopped (its -shm is gone) or started again (a new -shm, which a connection
    of the old one would never read); with no -shm, when the database file changed (it
    was replaced). The new one is ``check``-ed as a first open is (its schema), and
    ``db`` closed. When the new one cannot be opened, or fails ``check``, the error is
    raised: ``db`` shows what was there before the change, and is not read as if it were
    current (it is kept: the next read tries again)."""
    if not isinstance(db, ReadOnly):
        return db
    shm = _identity(_shm(path))
    if shm == db.shm and (shm is not None or _database(path) == db.database):
        return db  # with a host running, one stat a read, as ever
    fresh = connect_read_only(path)
    try:
        check(fresh)
    except BaseException:
        fresh.close()
        raise
    db.close()
    return fresh


def _read_only(
    db: sqlite3.Connection,
    shm: tuple[int, int] | None,
    database: tuple[int, int, int, int] | None,
) -> sqlite3.Connection:
    assert isinstance(db, ReadOnly)
    db.shm = shm
    db.database = database
    return db


def _shm(path: Path) -> Path:
    return path.with_name(path.name + "-shm")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _database(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _check_readable(path: Path) -> None:
    """Refuse a -wal or -shm this user cannot read: reading the database without them
    would show what the host last checkpointed as if it were all."""
    for suffix in ("-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists() and not os.access(part, os.R_OK):
            exc = sqlite3.OperationalError(
                f"{part.name} beside it is not readable by this user (uid {os.geteuid()}): "
                "what the host wrote since its last checkpoint would be missing"
            )
            exc.sqlite_errorname = _UNREADABLE_LOG
            raise exc


def _unshared_wal(path: Path) -> bool:
    """Whether the -wal beside ``path`` (with no -shm) may hold commits: SQLite reads a
    -wal only through a -shm, and ``immutable`` would show what was last checkpointed as
    if it were all. Whether they were checkpointed since is not told by the -wal."""
    wal = path.with_name(path.name + "-wal")
    try:
        with open(wal, "rb") as f:
            head = f.read(_WAL_HEADER + 24)
    except OSError:
        return False
    # the first frame belongs to this -wal (its salts are the header's): commits follow
    return len(head) == _WAL_HEADER + 24 and (
        head[16:24] == head[_WAL_HEADER + 8 : _WAL_HEADER + 16]
    )


def _from_private_copy(path: Path) -> sqlite3.Connection:
    """A -wal with commits and no -shm, where this user cannot make one (a host of
    another user killed, a read-only disk): read from a private copy (:mod:`_snapshot`),
    removed when the connection closes; refused when no copy can be made."""
    copy = private_copy(path)
    if copy is None:
        raise _unshared_wal_refused(path)
    try:
        db = _probed(f"file:{quote(str(copy))}?mode=ro")
    except BaseException:
        remove_copy(copy)
        raise
    assert isinstance(db, ReadOnly)
    db._remove_copy = weakref.finalize(db, remove_copy, copy)
    return db


def _unshared_wal_refused(path: Path) -> sqlite3.OperationalError:
    """The refusal of a -wal with commits and no -shm, when no private copy is made (it
    would be too large, or the temporary disk lacks the room)."""
    wal = path.with_name(path.name + "-wal")
    try:
        read_only_disk = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        read_only_disk = False
    cannot = (
        "cannot be made on a read-only disk"
        if read_only_disk
        else f"this user (uid {os.geteuid()}) cannot make in this directory"
    )
    exc = sqlite3.OperationalError(
        f"{wal.name} beside it holds changes not yet checkpointed into {path.name} (a host "
        f"stopped without closing it), and there is no {path.name}-shm: SQLite reads them "
        f"only through one, which {cannot}; the newest changes cannot be shown, and the "
        "older state is not shown as if it were all"
    )
    exc.sqlite_errorname = _WAL_READ_ONLY_DISK if read_only_disk else _WAL_OTHER_USER
    return exc


def _connect(uri: str) -> sqlite3.Connection:
    return sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False, factory=ReadOnly
    )


def _probed(uri: str) -> sqlite3.Connection:
    """The connection, once it has read the database: SQLite opens its files lazily."""
    db = _connect(uri)
    try:
        db.execute("PRAGMA user_version").fetchone()
    except BaseException:
        db.close()
        raise
    return db


def _without_shm(path: Path, uri: str) -> sqlite3.Connection:
    """The database read with its -shm opened read-only (SQLite's ``readonly_shm``): with
    a host writing, through the index that host keeps; with none, SQLite reads the -wal
    into memory itself, so what a host killed before its checkpoint committed is read
    too (``immutable`` would miss it). Nothing is written, but the -shm must exist: an
    empty one is made when there is none (a file, no block of the full disk)."""
    shm = path.with_name(path.name + "-shm")
    try:
        st = path.stat()
        fd = os.open(shm, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, st.st_mode & 0o777)
    except FileExistsError:
        pass
    else:
        with suppress(OSError):
            if os.geteuid() == 0:  # as SQLite does: the host (its owner) must open it too
                os.fchown(fd, st.st_uid, st.st_gid)
        os.close(fd)
    return _probed(uri + "&readonly_shm=1")


def disk_full(path: Path) -> bool:
    """Whether the file system holding ``path`` has no block left for this user: SQLite
    says "disk I/O error" when it cannot make its ``-shm`` or grow its ``-wal`` there."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail == 0


def execute(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
    try:
        return db.execute(sql, params)
    except UnicodeEncodeError:
        # A lone surrogate (a file name read with surrogateescape, say) cannot be
        # UTF-8; keep it visible as an escape rather than lose the write.
        return db.execute(sql, tuple(utf8_safe(p) for p in params))


def utf8_safe(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


@contextmanager
def savepoint(db: sqlite3.Connection) -> Iterator[None]:
    """One write inside a larger transaction: undone alone when it fails."""
    db.execute("SAVEPOINT one_write")
    try:
        yield
    except BaseException:
        with suppress(sqlite3.Error):
            db.execute("ROLLBACK TO one_write")
            db.execute("RELEASE one_write")
        raise
    db.execute("RELEASE one_write")


def rollback(db: sqlite3.Connection) -> None:
    # SQLite may have rolled back on its own (e.g. after SQLITE_FULL): nothing left to undo.
    with suppress(sqlite3.Error):
        if db.in_transaction:
            db.execute("ROLLBACK")


def read_json(text: str) -> Any:
    """A JSON column; a damaged one is shown as what it holds, never a traceback."""
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return {"unreadable": str(text)[:200]}
