"""The host's durable state: SQLite in WAL mode under the state directory.

What lives here: which plugins are enabled or disabled (and why), the active
version of each, config set at run time, installed versions, permission
grants, and a history of every load, unload and failure. Every write is its own
short transaction, committed before the call returns, so a ``kill -9`` loses
nothing that was committed (WAL with ``synchronous=NORMAL`` is durable against
a process crash; only a power loss can take the last transactions).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from plugbay.errors import StateError

__all__ = ["SCHEMA_VERSION", "HistoryEvent", "PluginRow", "StateStore"]

SCHEMA_VERSION: Final = 1
HISTORY_PER_PLUGIN: Final = 10_000

_MIGRATIONS: Final[list[str]] = [
    # 0 → 1
    """
    CREATE TABLE plugins (
        plugin_id TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL DEFAULT 1,
        disabled_reason TEXT,
        active_version TEXT,
        config TEXT,
        updated REAL NOT NULL
    );
    CREATE TABLE installed (
        plugin_id TEXT NOT NULL,
        version TEXT NOT NULL,
        source TEXT NOT NULL,
        installed REAL NOT NULL,
        PRIMARY KEY (plugin_id, version)
    );
    CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        plugin_id TEXT NOT NULL,
        action TEXT NOT NULL,
        version TEXT,
        result TEXT NOT NULL,
        reason TEXT,
        details TEXT
    );
    CREATE INDEX history_plugin ON history (plugin_id, id);
    CREATE TABLE grants (
        plugin_id TEXT NOT NULL,
        permission TEXT NOT NULL,
        granted REAL NOT NULL,
        PRIMARY KEY (plugin_id, permission)
    );
    """,
]


@dataclass(frozen=True, slots=True)
class HistoryEvent:
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
    plugin_id: str
    enabled: bool
    disabled_reason: str | None
    active_version: str | None
    config: dict[str, Any] | None
    updated: float


class StateStore:
    """One SQLite database. Thread-safe: one connection, guarded by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._inserts = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=5.0
            )
        except (OSError, sqlite3.Error) as exc:
            raise StateError(
                f"cannot open the state database: {exc}",
                where=str(self.path),
                hint="check that the state directory is writable, or choose another with --state",
            ) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StateError(
                f"the state file is not a usable SQLite database: {exc}",
                where=str(self.path),
                hint="move the file away (plugbay creates a fresh one) or restore it from a backup",
            ) from None

    @classmethod
    def open(cls, state_dir: Path) -> StateStore:
        state_dir = Path(state_dir)
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create the state directory: {exc}",
                where=str(state_dir),
                hint="choose a writable state directory with --state",
            ) from None
        return cls(state_dir / "state.db")

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state database has schema {version}, newer than this plugbay "
                f"understands ({SCHEMA_VERSION})",
                where=str(self.path),
                hint="upgrade plugbay, or point --state at another directory",
            )
        for target in range(version, SCHEMA_VERSION):
            try:
                # one script, one transaction: a migration is applied whole or not at all
                self._db.executescript(
                    f"BEGIN IMMEDIATE;{_MIGRATIONS[target]}PRAGMA user_version={target + 1};COMMIT;"
                )
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, params)
            except sqlite3.Error as exc:
                raise StateError(
                    f"cannot write the state database: {exc}",
                    where=str(self.path),
                    hint="check free disk space and permissions of the state directory",
                ) from None

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StateError(
                    f"cannot read the state database: {exc}", where=str(self.path)
                ) from None

    # ------------------------------------------------------------------ plugins

    def _upsert(self, plugin_id: str, column: str, value: Any) -> None:
        self._write(
            f"INSERT INTO plugins (plugin_id, {column}, updated) VALUES (?, ?, ?) "
            f"ON CONFLICT(plugin_id) DO UPDATE SET {column}=excluded.{column}, updated=excluded.updated",
            (plugin_id, value, time.time()),
        )

    def set_enabled(self, plugin_id: str, enabled: bool, reason: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO plugins (plugin_id, enabled, disabled_reason, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(plugin_id) DO UPDATE SET enabled=excluded.enabled, "
                "disabled_reason=excluded.disabled_reason, updated=excluded.updated",
                (plugin_id, int(enabled), None if enabled else reason, time.time()),
            )

    def is_enabled(self, plugin_id: str) -> bool:
        rows = self._read("SELECT enabled FROM plugins WHERE plugin_id=?", (plugin_id,))
        return bool(rows[0][0]) if rows else True

    def disabled(self) -> dict[str, str | None]:
        return dict(self._read("SELECT plugin_id, disabled_reason FROM plugins WHERE enabled=0"))

    def set_active_version(self, plugin_id: str, version: str | None) -> None:
        self._upsert(plugin_id, "active_version", version)

    def active_versions(self) -> dict[str, str]:
        return dict(
            self._read(
                "SELECT plugin_id, active_version FROM plugins WHERE active_version IS NOT NULL"
            )
        )

    def set_config(self, plugin_id: str, config: dict[str, Any]) -> None:
        self._upsert(plugin_id, "config", json.dumps(config))

    def get_config(self, plugin_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT config FROM plugins WHERE plugin_id=?", (plugin_id,))
        if not rows or rows[0][0] is None:
            return None
        value: dict[str, Any] = json.loads(rows[0][0])
        return value

    def plugin(self, plugin_id: str) -> PluginRow | None:
        rows = self._read(
            "SELECT plugin_id, enabled, disabled_reason, active_version, config, updated "
            "FROM plugins WHERE plugin_id=?",
            (plugin_id,),
        )
        return _row(rows[0]) if rows else None

    def plugins(self) -> list[PluginRow]:
        rows = self._read(
            "SELECT plugin_id, enabled, disabled_reason, active_version, config, updated "
            "FROM plugins ORDER BY plugin_id"
        )
        return [_row(r) for r in rows]

    # ------------------------------------------------------------------ installed versions

    def record_installed(self, plugin_id: str, version: str, source: str) -> None:
        self._write(
            "INSERT INTO installed (plugin_id, version, source, installed) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(plugin_id, version) DO UPDATE SET source=excluded.source",
            (plugin_id, version, source, time.time()),
        )

    def installed(self, plugin_id: str | None = None) -> list[tuple[str, str, str]]:
        if plugin_id is None:
            rows = self._read(
                "SELECT plugin_id, version, source FROM installed ORDER BY plugin_id, installed"
            )
        else:
            rows = self._read(
                "SELECT plugin_id, version, source FROM installed WHERE plugin_id=? ORDER BY installed",
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
        cursor = self._write(
            "INSERT INTO history (time, plugin_id, action, version, result, reason, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                plugin_id,
                action,
                version,
                result,
                reason,
                json.dumps(details or {}, default=str),
            ),
        )
        self._inserts += 1
        if self._inserts % 100 == 0:
            self._write(
                "DELETE FROM history WHERE plugin_id=? AND id <= ("
                "SELECT id FROM history WHERE plugin_id=? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (plugin_id, plugin_id, HISTORY_PER_PLUGIN),
            )
        return int(cursor.lastrowid or 0)

    def history(self, plugin_id: str | None = None, *, limit: int = 100) -> list[HistoryEvent]:
        columns = "id, time, plugin_id, action, version, result, reason, details"
        if plugin_id is None:
            rows = self._read(f"SELECT {columns} FROM history ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._read(
                f"SELECT {columns} FROM history WHERE plugin_id=? ORDER BY id DESC LIMIT ?",
                (plugin_id, limit),
            )
        return [
            HistoryEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7] or "{}"))
            for r in rows
        ]

    # ------------------------------------------------------------------ grants

    def grant(self, plugin_id: str, permission: str) -> None:
        self._write(
            "INSERT OR IGNORE INTO grants (plugin_id, permission, granted) VALUES (?, ?, ?)",
            (plugin_id, permission, time.time()),
        )

    def revoke(self, plugin_id: str, permission: str) -> bool:
        cursor = self._write(
            "DELETE FROM grants WHERE plugin_id=? AND permission=?", (plugin_id, permission)
        )
        return cursor.rowcount > 0

    def grants(self, plugin_id: str) -> list[str]:
        rows = self._read(
            "SELECT permission FROM grants WHERE plugin_id=? ORDER BY permission", (plugin_id,)
        )
        return [str(r[0]) for r in rows]


def _row(r: tuple[Any, ...]) -> PluginRow:
    return PluginRow(r[0], bool(r[1]), r[2], r[3], json.loads(r[4]) if r[4] else None, r[5])
