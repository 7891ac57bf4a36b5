"""The host's durable state: SQLite in WAL mode under the state directory.

What lives here: which plugins are enabled or disabled (and why), the active
version of each, config set at run time, installed versions, permission
grants, and a history of every load, unload and failure. Every write is its own
short transaction, committed before the call returns, so a ``kill -9`` loses
nothing that was committed (WAL with ``synchronous=NORMAL`` is durable against
a process crash; only a power loss can take the last transactions).

One connection serves the whole host, guarded by a lock: the host writes from
its event loop and, during shutdown, from worker threads.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from plugbay.api.errors import StateError
from plugbay.state._monitoring import MonitorRecords
from plugbay.state._placing import sync_directory
from plugbay.state._room import no_room
from plugbay.state._schema import MIGRATIONS, SCHEMA_VERSION
from plugbay.state._sqlite import (
    BUSY_TIMEOUT_S,
    DEFAULT_HINT,
    ERROR_HINTS,
    UNUSABLE,
    connect_read_only,
    disk_full,
    execute,
    read_json,
    refreshed,
    rollback,
    savepoint,
)
from plugbay.state._tokens import ApiTokens

__all__ = [
    "BACKUP_DIR",
    "HISTORY_PER_PLUGIN",
    "SCHEMA_VERSION",
    "HistoryEvent",
    "PluginRow",
    "StateStore",
    "list_backups",
]

#: Events kept per plugin; older ones are pruned as new ones arrive.
HISTORY_PER_PLUGIN: Final[int] = 10_000
# Pruning scans the newest HISTORY_PER_PLUGIN index entries of one plugin, so it
# runs on a plugin's first event in a process and then every this many events.
_PRUNE_EVERY: Final[int] = 100


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One thing that happened to a plugin, as stored in the history table."""

    id: int
    time: float
    plugin_id: str
    action: str
    version: str | None
    result: str
    reason: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PluginRow:
    """What the host remembers about one plugin id across restarts."""

    plugin_id: str
    enabled: bool
    disabled_reason: str | None
    active_version: str | None
    config: dict[str, Any] | None
    updated: float


_PLUGIN_COLUMNS: Final = "plugin_id, enabled, disabled_reason, active_version, config, updated"
_HISTORY_COLUMNS: Final = "id, time, plugin_id, action, version, result, reason, details"


class StateStore(ApiTokens, MonitorRecords):
    """One SQLite database in WAL mode. Thread-safe: one connection, guarded by a lock."""

    path: Path

    def __init__(
        self,
        path: Path,
        *,
        history_limit: int = HISTORY_PER_PLUGIN,
        read_only: bool = False,
        check: bool = True,
    ) -> None:
        """Open the database at ``path``. ``check``: refuse a damaged one (empty, failing
        SQLite's ``quick_check``, a schema from the future) rather than take it as new.
        ``read_only``: open it with ``mode=ro`` (never created, migrated or written; works
        on a read-only disk)."""
        if history_limit < 1:
            raise ValueError(f"history_limit must be at least 1, not {history_limit}")
        self.path = Path(path)
        self.history_limit = history_limit
        self.read_only = read_only
        #: reentrant: the writes of a :meth:`batch` take it again inside it
        self._lock = threading.RLock()
        self._batching = False
        self._since_prune: dict[str, int] = {}
        self._identity: tuple[int, int] | None = None
        if check:
            self._check_file()
        db = self._connect()
        self._prepare(db, check=check)
        if not read_only:
            with suppress(OSError):
                st = os.stat(self.path)
                self._identity = (st.st_dev, st.st_ino)
        self._db: sqlite3.Connection | None = db

    def _connect(self) -> sqlite3.Connection:
        """The connection: read-only, or read-write (creating the file and its directory)."""
        try:
            if self.read_only:
                return connect_read_only(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # the lock below serialises threads
            )
        except OSError as exc:
            raise StateError(
                f"cannot create the directory of the state database: {exc.strerror or exc}",
                where=str(self.path),
                hint="check that the state directory is writable, or choose another with --state",
            ) from None
        except sqlite3.Error as exc:
            raise self._error("cannot open the state database", exc) from None

    def _prepare(self, db: sqlite3.Connection, *, check: bool) -> None:
        """Configure, check and migrate a new connection; on any failure it is closed."""
        try:
            if self.read_only:
                self._check_read_only(db)
            else:
                self._configure(db)
            if check:
                self._quick_check(db)
            if not self.read_only:
                self._migrate(db)
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error("cannot open the state database", exc) from None
            if isinstance(exc, (UnicodeDecodeError, ValueError)):  # a damaged schema's text
                raise self._damaged(f"it cannot be read ({exc})") from None
            raise

    def _check_file(self) -> None:
        """Refuse what SQLite would take silently as a new, empty database."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            if self.read_only:
                raise StateError(
                    "there is no state database here (no host has used this state directory)",
                    where=str(self.path),
                    hint="start a host with 'plugbay run', or point --state at its directory",
                ) from None
            backups = list_backups(self.path.parent)
            if backups:
                raise StateError(
                    f"the state database is missing, but {len(backups)} backup(s) of it are "
                    "kept: it was deleted or moved",
                    where=str(self.path),
                    hint="'plugbay state restore' puts the newest backup back; to start afresh "
                    f"instead, move {backups[0].parent} away",
                ) from None
            return
        except OSError:
            return  # sqlite says what is wrong with it, below
        if size == 0:
            raise self._damaged("the file is empty (0 bytes): it was truncated")

    def _damaged(self, what: str) -> StateError:
        backups = list_backups(self.path.parent)
        hint = (
            f"'plugbay state restore' puts the newest of {len(backups)} backup(s) back "
            "(the damaged file is kept beside it)"
            if backups
            else "no backup is kept here: move the file away to start with an empty state, "
            "or restore it from your own backup"
        )
        return StateError(
            f"the state database is damaged: {what}; refused, rather than taken as empty",
            where=str(self.path),
            hint=hint,
        )

    def _quick_check(self, db: sqlite3.Connection) -> None:
        rows = db.execute("PRAGMA quick_check(5)").fetchall()
        problems = [str(r[0]) for r in rows]
        if problems != ["ok"]:
            raise self._damaged("SQLite's quick_check found " + "; ".join(problems))

    def _check_read_only(self, db: sqlite3.Connection) -> None:
        version = self._check_version(db)
        if version < SCHEMA_VERSION:
            raise StateError(
                f"the state database has schema {version}, older than this plugbay reads "
                f"({SCHEMA_VERSION})",
                where=str(self.path),
                hint="start the host once ('plugbay run') to upgrade it",
            )

    @classmethod
    def open(
        cls, state_dir: Path, *, history_limit: int = HISTORY_PER_PLUGIN, read_only: bool = False
    ) -> StateStore:
        """Open (or create) ``state_dir/state.db``; a new ``state_dir`` is private (0o700).
        ``read_only``: open an existing one for reading only (nothing is created)."""
        state_dir = Path(state_dir)
        if read_only:
            return cls(state_dir / "state.db", history_limit=history_limit, read_only=True)
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create the state directory: {exc.strerror or exc}",
                where=str(state_dir),
                hint="choose a writable state directory with --state",
            ) from None
        return cls(state_dir / "state.db", history_limit=history_limit)

    def _configure(self, db: sqlite3.Connection) -> None:
        db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        (mode,) = db.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(mode).lower() != "wal":
            raise StateError(
                f"the state database cannot use write-ahead logging (journal mode stays {mode!r})",
                where=str(self.path),
                hint="put the state directory on a local file system; WAL needs shared memory, "
                "which network file systems often lack",
            )
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")

    def _migrate(self, db: sqlite3.Connection) -> None:
        if self._check_version(db) == SCHEMA_VERSION:
            return
        # Another process may be migrating the same file: take the write lock
        # first, then look again at where the schema stands.
        db.execute("BEGIN IMMEDIATE")
        try:
            current = self._check_version(db)
            for step in MIGRATIONS[current:]:
                for statement in step:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            rollback(db)
            raise

    def _check_version(self, db: sqlite3.Connection) -> int:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state database has schema {version}, newer than this plugbay "
                f"understands ({SCHEMA_VERSION}); a newer plugbay wrote it",
                where=str(self.path),
                hint="upgrade plugbay, or point --state at another directory",
            )
        return int(version)

    def close(self) -> None:
        """Close the database; safe to call twice. Later calls raise :class:`StateError`."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StateStore({str(self.path)!r})"

    # ------------------------------------------------------------------ plumbing

    def _error(self, doing: str, exc: sqlite3.Error) -> StateError:
        name = str(getattr(exc, "sqlite_errorname", ""))
        if name.startswith(UNUSABLE):
            return self._damaged(f"it is not a usable SQLite database ({exc})")
        if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")) and disk_full(self.path):
            name = "SQLITE_FULL"  # its -shm or -wal could not be made: the same answer
        hint = next((h for prefix, h in ERROR_HINTS if name.startswith(prefix)), DEFAULT_HINT)
        # a full disk is its own answer over HTTP (507): the request was fine, try it later
        details = {"disk_full": True} if name.startswith("SQLITE_FULL") else None
        return StateError(f"{doing}: {exc}", where=str(self.path), hint=hint, details=details)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StateError(
                "the state store is closed",
                where=str(self.path),
                hint="open it again with StateStore.open(); the host closes its store in stop()",
            )
        if self.read_only:  # beside another user's host, which may have started or stopped
            try:  # reopened: its schema checked as at the first open (StateError)
                self._db = refreshed(self._db, self.path, self._check_read_only)
            except sqlite3.Error as exc:
                raise self._not_reopened(exc) from None
        return self._db

    def _not_reopened(self, exc: sqlite3.Error) -> StateError:
        """A read-only store whose database changed under it (a host started, stopped or
        restarted beside it, the file replaced) and could not be opened again: refused,
        rather than read from what it was before the change."""
        if str(getattr(exc, "sqlite_errorname", "")).startswith(UNUSABLE):
            replaced = f"it was replaced, by a file that is not a usable SQLite database ({exc})"
            return self._damaged(replaced)
        return self._error(
            "the state database changed since it was opened (a host started, stopped or "
            "restarted beside it, or the file was replaced) and cannot be opened again, so "
            "what it held before is not shown as current",
            exc,
        )

    def _check_still_there(self) -> None:
        """A write to a file that was deleted (or replaced) under us would be lost at the
        next start: refuse it instead, and say what happened."""
        if self._identity is None:
            return
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self._identity
        except FileNotFoundError:
            same = False
        except OSError:
            return  # cannot tell; sqlite reports a real I/O problem itself
        if not same:
            raise StateError(
                "the state database was deleted or replaced while the host ran; "
                "this change was not applied, since it could not be kept",
                where=str(self.path),
                hint="stop the host, then 'plugbay state restore' (or move the state "
                "directory away to start afresh)",
            )

    def back_up(self, dest: Path) -> Path:
        """Copy the database to ``dest`` with SQLite's backup API (a consistent snapshot,
        taken while the host runs); written to a temporary name first, then renamed."""
        dest = Path(dest)
        tmp = dest.with_name(dest.name + ".part")
        self._connection()  # closed: StateError, before any file is made
        try:
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            target = sqlite3.connect(tmp)
            try:
                # made durable by the one fsync below, out of the lock: the host's writes
                # wait for the copy of the pages only (the start's backup runs beside them)
                target.execute("PRAGMA synchronous=OFF")
                with self._lock:
                    self._connection().backup(target)
            finally:
                target.close()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dest)
            sync_directory(dest.parent)  # the new name, after a power cut too
        except (sqlite3.Error, OSError, StateError) as exc:
            with suppress(OSError):
                tmp.unlink()
            if isinstance(exc, StateError):
                raise
            room = no_room(self.path, dest, exc)  # a full disk: what it needs, what is free
            if room is not None:
                raise room from None
            if isinstance(exc, sqlite3.Error):
                raise self._error("cannot back up the state database", exc) from None
            raise StateError(
                f"cannot back up the state database: {exc.strerror or exc}",
                where=str(dest),
                hint=DEFAULT_HINT,
            ) from None
        return dest

    @contextmanager
    def batch(self) -> Iterator[None]:
        """This thread's writes in the block in one transaction, committed as it ends (by
        an exception too); each is still undone alone when it fails (a savepoint). A
        plugin's start writes three times: one commit, not three. Other threads wait."""
        with self._lock:
            if self._batching or self.read_only:
                yield
                return
            db = self._connection()
            self._check_still_there()
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error("cannot write the state database", exc) from None
            self._batching = True
            try:
                yield
            finally:
                self._batching = False
                try:
                    db.execute("COMMIT")
                except sqlite3.Error as exc:
                    rollback(db)
                    raise self._error("cannot write the state database", exc) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, committed before the block's caller returns (at
        the end of the :meth:`batch` it is part of)."""
        with self._lock:
            db = self._connection()
            if self._batching:
                try:
                    with savepoint(db):
                        yield db
                except sqlite3.Error as exc:
                    raise self._error("cannot write the state database", exc) from None
                return
            self._check_still_there()
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                rollback(db)
                raise self._error("cannot write the state database", exc) from None
            except BaseException:
                rollback(db)
                raise

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run one statement in its own transaction; return the number of rows it changed."""
        with self._transaction() as db:
            return execute(db, sql, params).rowcount

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            db = self._connection()
            try:
                return execute(db, sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error("cannot read the state database", exc) from None
            except (UnicodeDecodeError, ValueError) as exc:  # damaged text in a row
                raise self._damaged(f"a row cannot be read ({exc})") from None

    # ------------------------------------------------------------------ plugins

    def _upsert(self, plugin_id: str, column: str, value: Any) -> None:
        self._write(
            f"INSERT INTO plugins (plugin_id, {column}, updated) VALUES (?, ?, ?) "
            f"ON CONFLICT(plugin_id) DO UPDATE SET {column}=excluded.{column}, "
            "updated=excluded.updated",
            (plugin_id, value, time.time()),
        )

    def set_enabled(
        self,
        plugin_id: str,
        enabled: bool,
        reason: str | None = None,
        *,
        event: tuple[str, str | None] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Remember whether the plugin may be loaded; enabling forgets the disable reason.
        ``event`` ``(action, version)``: its history entry (with ``details``), in the same
        transaction, so the change and its record are kept together or not at all."""
        now = time.time()
        text = json.dumps(details or {}, default=str)
        with self._transaction() as db:
            execute(
                db,
                "INSERT INTO plugins (plugin_id, enabled, disabled_reason, updated) "
                "VALUES (?, ?, ?, ?) "
                "ON CONFLICT(plugin_id) DO UPDATE SET enabled=excluded.enabled, "
                "disabled_reason=excluded.disabled_reason, updated=excluded.updated",
                (plugin_id, int(enabled), None if enabled else reason, now),
            )
            if event is not None:
                execute(
                    db,
                    "INSERT INTO history (time, plugin_id, action, version, result, reason, "
                    "details) VALUES (?, ?, ?, ?, 'ok', ?, ?)",
                    (now, plugin_id, event[0], event[1], None if enabled else reason, text),
                )

    def is_enabled(self, plugin_id: str) -> bool:
        """Whether the plugin may be loaded; a plugin never seen before is enabled."""
        rows = self._read("SELECT enabled FROM plugins WHERE plugin_id=?", (plugin_id,))
        return bool(rows[0][0]) if rows else True

    def disabled(self) -> dict[str, str | None]:
        """Every disabled plugin id and the reason it was disabled for."""
        rows = self._read(
            "SELECT plugin_id, disabled_reason FROM plugins WHERE enabled=0 ORDER BY plugin_id"
        )
        return {str(pid): reason for pid, reason in rows}

    def set_active_version(
        self, plugin_id: str, version: str | None, *, held: bool = False
    ) -> None:
        """Remember the version serving now; ``held`` when the operator chose it."""
        self._write(
            "INSERT INTO plugins (plugin_id, active_version, held, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(plugin_id) DO UPDATE SET active_version=excluded.active_version, "
            "held=excluded.held, updated=excluded.updated",
            (plugin_id, version, int(held), time.time()),
        )

    def held_versions(self) -> dict[str, str]:
        """Active versions the operator chose (rollback, upgrade), by plugin id."""
        rows = self._read(
            "SELECT plugin_id, active_version FROM plugins "
            "WHERE held=1 AND active_version IS NOT NULL ORDER BY plugin_id"
        )
        return {str(pid): str(version) for pid, version in rows}

    def active_versions(self) -> dict[str, str]:
        rows = self._read(
            "SELECT plugin_id, active_version FROM plugins "
            "WHERE active_version IS NOT NULL ORDER BY plugin_id"
        )
        return {str(pid): str(version) for pid, version in rows}

    def set_config(self, plugin_id: str, config: dict[str, Any]) -> None:
        """Store the plugin's run-time config as JSON (replacing what was there)."""
        try:
            text = json.dumps(config)
        except (TypeError, ValueError) as exc:
            raise StateError(
                f"the config cannot be stored as JSON: {exc}",
                plugin=plugin_id,
                where=str(self.path),
                hint="use only strings, numbers, booleans, null, lists and string-keyed objects",
            ) from None
        self._upsert(plugin_id, "config", text)

    def get_config(self, plugin_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT config FROM plugins WHERE plugin_id=?", (plugin_id,))
        if not rows or rows[0][0] is None:
            return None
        value: dict[str, Any] = read_json(rows[0][0])
        return value

    def plugin(self, plugin_id: str) -> PluginRow | None:
        rows = self._read(
            f"SELECT {_PLUGIN_COLUMNS} FROM plugins WHERE plugin_id=?",
            (plugin_id,),
        )
        return _plugin_row(rows[0]) if rows else None

    def plugins(self) -> list[PluginRow]:
        rows = self._read(f"SELECT {_PLUGIN_COLUMNS} FROM plugins ORDER BY plugin_id")
        return [_plugin_row(r) for r in rows]

    # ------------------------------------------------------------------ installed versions

    def record_installed(self, plugin_id: str, version: str, source: str) -> None:
        """Remember an installed version; recording it again only updates its source."""
        self._write(
            "INSERT INTO installed (plugin_id, version, source, installed) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(plugin_id, version) DO UPDATE SET source=excluded.source",
            (plugin_id, version, source, time.time()),
        )

    def installed(self, plugin_id: str | None = None) -> list[tuple[str, str, str]]:
        """``(plugin_id, version, source)`` by plugin id, then in the order installed."""
        if plugin_id is None:
            rows = self._read(
                "SELECT plugin_id, version, source FROM installed "
                "ORDER BY plugin_id, installed, rowid"
            )
        else:
            rows = self._read(
                "SELECT plugin_id, version, source FROM installed WHERE plugin_id=? "
                "ORDER BY installed, rowid",
                (plugin_id,),
            )
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def remove_installed(self, plugin_id: str, version: str) -> None:
        self._write("DELETE FROM installed WHERE plugin_id=? AND version=?", (plugin_id, version))

    # ------------------------------------------------------------------ history

    def add_event(
        self,
        plugin_id: str,
        action: str,
        *,
        version: str | None = None,
        result: str = "ok",
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append an event and return its id (ids only grow, also across restarts)."""
        try:
            # default=str: a detail that is not JSON (a Path, an exception) is kept as text
            # rather than losing the event.
            text = json.dumps(details or {}, default=str)
        except (TypeError, ValueError) as exc:
            raise StateError(
                f"the details of a '{action}' event cannot be stored as JSON: {exc}",
                plugin=plugin_id,
                where=str(self.path),
                hint="pass details with string keys and no reference cycles",
            ) from None
        with self._transaction() as db:
            cursor = execute(
                db,
                "INSERT INTO history (time, plugin_id, action, version, result, reason, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), plugin_id, action, version, result, reason, text),
            )
            # The first event of a plugin in this process prunes too, so restarts
            # cannot let a plugin's history grow past the limit unnoticed.
            count = self._since_prune.get(plugin_id, _PRUNE_EVERY - 1) + 1
            if count >= _PRUNE_EVERY:
                execute(
                    db,
                    "DELETE FROM history WHERE plugin_id=? AND id <= ("
                    "SELECT id FROM history WHERE plugin_id=? "
                    "ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (plugin_id, plugin_id, self.history_limit),
                )
                count = 0
            self._since_prune[plugin_id] = count
            return int(cursor.lastrowid or 0)

    def history(self, plugin_id: str | None = None, *, limit: int = 100) -> list[HistoryEvent]:
        """The newest ``limit`` events, newest first; of one plugin, or of all."""
        if plugin_id is None:
            rows = self._read(
                f"SELECT {_HISTORY_COLUMNS} FROM history ORDER BY id DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._read(
                f"SELECT {_HISTORY_COLUMNS} FROM history WHERE plugin_id=? "
                "ORDER BY id DESC LIMIT ?",
                (plugin_id, limit),
            )
        return [
            HistoryEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], read_json(r[7] or "{}"))
            for r in rows
        ]

    # ------------------------------------------------------------------ grants

    def grant(self, plugin_id: str, permission: str) -> None:
        """Grant a permission; granting it again changes nothing."""
        self._write(
            "INSERT OR IGNORE INTO grants (plugin_id, permission, granted) VALUES (?, ?, ?)",
            (plugin_id, permission, time.time()),
        )

    def revoke(self, plugin_id: str, permission: str) -> bool:
        """Revoke a permission; ``False`` if it was not granted."""
        changed = self._write(
            "DELETE FROM grants WHERE plugin_id=? AND permission=?", (plugin_id, permission)
        )
        return changed > 0

    def grants(self, plugin_id: str) -> list[str]:
        return list(self.grant_times(plugin_id))

    def grant_times(self, plugin_id: str) -> dict[str, float]:
        """The plugin's grants, each with when it was granted (``time.time()``)."""
        rows = self._read(
            "SELECT permission, granted FROM grants WHERE plugin_id=? ORDER BY permission",
            (plugin_id,),
        )
        return {str(r[0]): float(r[1]) for r in rows}

    def network_grants(self) -> list[tuple[str, str]]:
        """(plugin id, permission) of every ``network:`` grant kept, in one read (the
        host's start looks them over for all its plugins at once)."""
        rows = self._read(
            "SELECT plugin_id, permission FROM grants WHERE permission LIKE 'network:%' "
            "ORDER BY plugin_id, permission"
        )
        return [(str(r[0]), str(r[1])) for r in rows]


#: where rolling backups live, beside state.db
BACKUP_DIR: Final = "backups"


def list_backups(state_dir: Path) -> list[Path]:
    """The backups kept in ``state_dir/backups``, newest first."""
    try:
        found = [p for p in (Path(state_dir) / BACKUP_DIR).glob("state-*.db") if p.is_file()]
    except OSError:
        return []
    return sorted(found, key=lambda p: p.name, reverse=True)


def _plugin_row(r: tuple[Any, ...]) -> PluginRow:
    config = read_json(r[4]) if r[4] is not None else None
    return PluginRow(r[0], bool(r[1]), r[2], r[3], config, r[5])
