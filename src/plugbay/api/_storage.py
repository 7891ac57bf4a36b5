"""``context.storage``: a plugin's own small, durable key-value and blob store.

One SQLite file (WAL) in the plugin's data directory, opened in the process the
plugin runs in (the host for an inline plugin, its worker for a sandboxed one),
so it is the same on every backend and needs nothing from the host. Every write
is one transaction, synced before it returns: a write that returned survives a
``kill -9`` of the process, and one that did not return left nothing half done.
The data directory is the plugin's for all its versions, so the store is kept
across reloads and upgrades.

A sandboxed worker's data directory is bounded (its storage quota; one file by
``RLIMIT_FSIZE``). The store keeps its database and log within that bound by
itself, so a full store is a :class:`plugbay.StorageFull` for the write that did
not fit, never a killed worker; the store stays readable and writable for
smaller writes and deletes.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TypeVar, overload

import msgspec

from plugbay.api._retired import Retired
from plugbay.api.errors import PlugbayError, StorageFull

__all__ = ["FILENAME", "Storage"]

T = TypeVar("T")

#: the store's file in the plugin's data directory (with ``-wal`` and ``-shm`` beside it)
FILENAME: Final = "storage.sqlite3"
#: longest key, in characters
MAX_KEY: Final = 1024
_PAGE: Final = 4096

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (name TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
"""


class Storage:
    """The plugin's store: typed values by key, and blobs (bytes) by name.

    Values are anything msgspec encodes (str, int, float, bool, None, lists,
    dicts, dataclasses, ``msgspec.Struct``); ``get(key, type=T)`` decodes and
    checks them as ``T``. Methods are synchronous and short (one small SQLite
    transaction); any thread of the plugin may call them.
    """

    __slots__ = ("_conn", "_dir", "_limit", "_lock", "_plugin", "_retired")

    def __init__(self, data_dir: Path, *, plugin: str = "", limit: int | None = None) -> None:
        self._dir = Path(data_dir)
        self._plugin = plugin
        #: bytes the store may take (a quota the host keeps for it), besides what bounds
        #: its directory's file system and the process's file-size limit
        self._limit = limit
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._retired: Retired | None = None

    @property
    def path(self) -> Path:
        """The database file (created on first use)."""
        return self._dir / FILENAME

    # -- key-value --------------------------------------------------------------------

    @overload
    def get(self, key: str) -> Any: ...

    @overload
    def get(self, key: str, default: T) -> Any | T: ...

    @overload
    def get(self, key: str, *, type: type[T]) -> T | None: ...

    @overload
    def get(self, key: str, default: T, *, type: type[T]) -> T: ...

    def get(self, key: str, default: Any = None, *, type: Any = None) -> Any:
        """The value under ``key``, or ``default`` when there is none. With ``type``, the
        value is decoded as that type, and a stored value that is not one is a
        :class:`plugbay.PlugbayError` naming the key."""
        row = self._read("SELECT value FROM kv WHERE key = ?", (self._key(key),))
        if row is None:
            return default
        return self._decode(key, row, type)

    def _decode(self, key: str, row: bytes, type: Any) -> Any:
        try:
            if type is None:
                return msgspec.msgpack.decode(row)
            return msgspec.msgpack.decode(row, type=type)
        except msgspec.ValidationError as exc:
            raise PlugbayError(
                f"storage: the value under '{key}' is not a {getattr(type, '__name__', type)}: "
                f"{exc}",
                plugin=self._plugin or None,
                hint="read it without type= to see what is stored, or set it again",
                details={"key": key},
            ) from None

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` (replacing what was there), durably."""
        self._write(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (self._key(key), self._encode(key, value)),
            what=f"setting '{key}'",
        )

    def _encode(self, key: str, value: Any) -> bytes:
        try:
            return msgspec.msgpack.encode(value)
        except (TypeError, msgspec.EncodeError) as exc:
            raise PlugbayError(
                f"storage: cannot store {type(value).__name__} under '{key}': {exc}",
                plugin=self._plugin or None,
                hint="store plain data: str, int, float, bool, None, lists, dicts, "
                "dataclasses or msgspec Structs (bytes go in put_blob)",
                details={"key": key},
            ) from None

    def delete(self, key: str) -> bool:
        """Remove ``key``; False when it was not there."""
        return self._write("DELETE FROM kv WHERE key = ?", (self._key(key),), what="a delete") > 0

    def keys(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix``, sorted."""
        return self._list("kv", "key", prefix)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (
            self._read("SELECT 1 FROM kv WHERE key = ?", (self._key(key),)) is not None
        )

    # -- blobs ------------------------------------------------------------------------

    def put_blob(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` (replacing what was there), durably."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise PlugbayError(
                f"storage: the blob '{name}' must be bytes, not {type(data).__name__}",
                plugin=self._plugin or None,
                hint="encode it first (text.encode()), or store plain data with set()",
            )
        self._write(
            "INSERT INTO blobs (name, data) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET data = excluded.data",
            (self._key(name), bytes(data)),
            what=f"writing the blob '{name}' ({len(data)} bytes)",
        )

    def get_blob(self, name: str) -> bytes | None:
        """The blob's bytes, or None when there is none."""
        row = self._read("SELECT data FROM blobs WHERE name = ?", (self._key(name),))
        return None if row is None else bytes(row)

    def delete_blob(self, name: str) -> bool:
        """Remove the blob; False when it was not there."""
        return (
            self._write("DELETE FROM blobs WHERE name = ?", (self._key(name),), what="a delete") > 0
        )

    def blobs(self, prefix: str = "") -> list[str]:
        """Every blob name starting with ``prefix``, sorted."""
        return self._list("blobs", "name", prefix)

    # -- the file ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (the host does this at cleanup; the next use opens it again)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def retire(self, refusal: Retired) -> None:
        """Close the file for good: the context's instance was stopped, and every later
        use is ``refusal`` (``api._retired``), never a reopened store."""
        with self._lock:
            self._retired = refusal
        self.close()

    def __repr__(self) -> str:
        return f"Storage({str(self.path)!r})"

    def _key(self, key: str) -> str:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY:
            raise PlugbayError(
                f"storage: a key must be a non-empty string of at most {MAX_KEY} "
                f"characters, not {key!r:.80}",
                plugin=self._plugin or None,
            )
        return key

    def _list(self, table: str, column: str, prefix: str) -> list[str]:
        with self._cursor() as conn:
            if not prefix:
                rows = conn.execute(f"SELECT {column} FROM {table} ORDER BY 1").fetchall()
            elif (above := _past(prefix)) is None:
                rows = conn.execute(
                    f"SELECT {column} FROM {table} WHERE {column} >= ? ORDER BY 1", (prefix,)
                ).fetchall()
            else:
                # a range, not LIKE: '%' and '_' in a prefix are plain characters
                rows = conn.execute(
                    f"SELECT {column} FROM {table} WHERE {column} >= ? AND {column} < ? ORDER BY 1",
                    (prefix, above),
                ).fetchall()
        return [r[0] for r in rows]

    def _read(self, sql: str, args: tuple[Any, ...]) -> Any:
        with self._cursor() as conn:
            row = conn.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def _write(self, sql: str, args: tuple[Any, ...], *, what: str) -> int:
        with self._cursor() as conn:
            try:
                with conn:  # one transaction: all of it or nothing
                    return conn.execute(sql, args).rowcount
            except sqlite3.OperationalError as exc:
                if _is_full(exc):
                    raise StorageFull(
                        f"storage is full: {what} does not fit ({exc})",
                        plugin=self._plugin or None,
                        where=str(self.path),
                        hint="delete keys or blobs the plugin no longer needs, or have the "
                        "operator raise its storage limit ([resources] storage); "
                        "what was stored before is intact",
                        details={"limit": "storage", "bytes_allowed": _file_limit()},
                    ) from None
                raise

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            if conn is None:
                if self._retired is not None:  # only where a closed store would reopen
                    raise self._retired("context.storage")
                conn = self._conn = self._open()
            try:
                yield conn
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and _is_full(exc):
                    raise
                raise PlugbayError(
                    f"storage: {exc}",
                    plugin=self._plugin or None,
                    where=str(self.path),
                    hint="the store's file may be damaged; a copy of the data directory "
                    "helps the plugin's author find out why",
                ) from None

    def _open(self) -> sqlite3.Connection:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise PlugbayError(
                f"storage: cannot open {self.path}: {exc}",
                plugin=self._plugin or None,
                hint="the plugin's data directory must be writable by the process it runs in",
            ) from None
        conn.isolation_level = "DEFERRED"  # `with conn` opens and commits a transaction
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a returned write is on disk
        limit = _space_limit(self.path.parent)
        if self._limit is not None:
            limit = self._limit if limit is None else min(limit, self._limit)
        if limit is not None:
            # Within the plugin's storage quota (its data directory's own filesystem, or the
            # process's file-size limit where the quota is only sampled):
            # the database takes at most half of it, the log is cut back after each
            # checkpoint, so database + log stay inside it and a full store is an
            # SQLITE_FULL for the one write that did not fit.
            pages = max(16, limit // 2 // _PAGE)
            conn.execute(f"PRAGMA page_size={_PAGE}")
            conn.execute(f"PRAGMA max_page_count={pages}")
            conn.execute(f"PRAGMA journal_size_limit={limit // 4}")
            conn.execute(f"PRAGMA wal_autocheckpoint={max(8, pages // 8)}")
        with conn:
            conn.executescript(_SCHEMA)
        return conn


def _past(prefix: str) -> str | None:
    """The first text after every key starting with ``prefix``, in SQLite's order (UTF-8
    bytes, which is code point order): the prefix without its trailing U+10FFFFs, its
    last character then one higher. None when every text from ``prefix`` on starts with
    it (a prefix of U+10FFFFs only). ``prefix + U+10FFFF`` is not it: a key with a
    U+10FFFF after the prefix sorts above that."""
    stem = prefix.rstrip(_LAST)
    if not stem:
        return None
    nxt = ord(stem[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates are not text SQLite can hold
        nxt = 0xE000
    return stem[:-1] + chr(nxt)


_LAST: Final = chr(0x10FFFF)


def _is_full(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return True
    text = str(exc).lower()
    return "full" in text or "too large" in text or "quota" in text


def _space_limit(directory: Path) -> int | None:
    """What the store may take at most: the size of the data directory's own filesystem
    when it is one (the storage image the kernel enforces the quota with), and the
    process's file-size limit; None when neither bounds it."""
    limits = [] if (fsize := _file_limit()) is None else [fsize]
    try:
        if os.path.ismount(directory):
            st = os.statvfs(directory)
            limits.append(st.f_blocks * st.f_frsize)
    except OSError:
        pass
    return min(limits) if limits else None


def _file_limit() -> int | None:
    """The process's file-size limit in bytes, None when there is none."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)
