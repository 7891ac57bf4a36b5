"""The monitor's tables in the state database: alerts, log records and the live snapshot."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from plugbay.state._sqlite import execute, read_json, utf8_safe

__all__ = ["MonitorRecords"]


class MonitorRecords:
    """The ``alerts``, ``logs`` and ``monitor_snapshot`` tables; mixed into
    :class:`~plugbay.state.StateStore`."""

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        raise NotImplementedError

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def open_alert(
        self, plugin_id: str, version: str | None, rule: str, message: str, details: dict[str, Any]
    ) -> int:
        """Record a firing alert; returns its id (cleared later with :meth:`clear_alert`)."""
        with self._transaction() as db:
            cursor = execute(
                db,
                "INSERT INTO alerts (plugin_id, version, rule, message, details, fired) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (plugin_id, version, rule, message, json.dumps(details, default=str), time.time()),
            )
            return int(cursor.lastrowid or 0)

    def clear_alert(self, alert_id: int) -> None:
        self._write(
            "UPDATE alerts SET cleared=? WHERE id=? AND cleared IS NULL", (time.time(), alert_id)
        )

    def clear_open_alerts(self) -> int:
        """Close alerts a previous host left open (it stopped, so they no longer hold)."""
        return self._write("UPDATE alerts SET cleared=? WHERE cleared IS NULL", (time.time(),))

    def alerts(
        self, plugin_id: str | None = None, *, open_only: bool = True, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Alerts, newest first: firing ones only, or every one kept."""
        where, params = [], []
        if open_only:
            where.append("cleared IS NULL")
        if plugin_id is not None:
            where.append("plugin_id=?")
            params.append(plugin_id)
        sql = "SELECT id, plugin_id, version, rule, message, details, fired, cleared FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._read(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        keys = ("id", "plugin", "version", "rule", "message", "details", "fired", "cleared")
        out = []
        for r in rows:
            row = dict(zip(keys, r, strict=True))
            row["details"] = read_json(r[5] or "{}")
            out.append(row)
        return out

    def add_logs(
        self, rows: list[tuple[float, str, str | None, int, str, str, str | None]]
    ) -> None:
        """Append log records ``(time, plugin, version, level, logger, message, fields-json)``."""
        if not rows:
            return
        with self._transaction() as db:
            try:
                db.executemany(
                    "INSERT INTO logs (time, plugin_id, version, level, logger, message, fields) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except UnicodeEncodeError:
                db.executemany(
                    "INSERT INTO logs (time, plugin_id, version, level, logger, message, fields) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [tuple(utf8_safe(v) for v in row) for row in rows],
                )

    def prune_logs(self, *, older_than: float, per_plugin: int) -> int:
        """Retention: drop records older than ``older_than`` (epoch seconds), and all but
        the newest ``per_plugin`` of each plugin. Returns the number dropped."""
        with self._transaction() as db:
            dropped = execute(db, "DELETE FROM logs WHERE time < ?", (older_than,)).rowcount
            for (pid,) in db.execute("SELECT DISTINCT plugin_id FROM logs").fetchall():
                dropped += execute(
                    db,
                    "DELETE FROM logs WHERE plugin_id=? AND id <= ("
                    "SELECT id FROM logs WHERE plugin_id=? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (pid, pid, per_plugin),
                ).rowcount
            return dropped

    def logs(
        self,
        plugin_id: str | None = None,
        *,
        min_level: int = 0,
        after_id: int = 0,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Log records in the order written: the newest ``limit`` past ``after_id``."""
        sql = (
            "SELECT id, time, plugin_id, version, level, logger, message, fields FROM logs "
            "WHERE id > ? AND level >= ?"
        )
        params: list[Any] = [after_id, min_level]
        if plugin_id is not None:
            sql += " AND plugin_id=?"
            params.append(plugin_id)
        rows = self._read(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        keys = ("id", "time", "plugin", "version", "level", "logger", "message", "fields")
        out = []
        for r in reversed(rows):
            row = dict(zip(keys, r, strict=True))
            row["fields"] = read_json(r[7]) if r[7] else {}
            out.append(row)
        return out

    def put_snapshot(
        self, rows: Mapping[str, dict[str, Any] | None], *, whole: bool = True
    ) -> None:
        """Write the live monitoring snapshot (one row per plugin) that readers poll.

        ``whole``: ``rows`` is all of it, and replaces what is there (a previous host's
        rows too); else ``rows`` holds the rows that changed, ``None`` for a plugin gone,
        and the others stay as they are (written when they last changed)."""
        now = time.time()
        with self._transaction() as db:
            if whole:
                db.execute("DELETE FROM monitor_snapshot")
            gone = [(pid,) for pid, data in rows.items() if data is None]
            if gone:
                db.executemany("DELETE FROM monitor_snapshot WHERE plugin_id = ?", gone)
            db.executemany(
                "INSERT OR REPLACE INTO monitor_snapshot (plugin_id, time, data) VALUES (?, ?, ?)",
                [
                    (pid, now, json.dumps(data, default=str))
                    for pid, data in rows.items()
                    if data is not None
                ],
            )

    def snapshot(self) -> tuple[float | None, list[dict[str, Any]]]:
        """The newest monitoring snapshot: (when it was last written, one row per plugin)."""
        rows = self._read("SELECT plugin_id, time, data FROM monitor_snapshot ORDER BY plugin_id")
        when = max((r[1] for r in rows), default=None)
        return when, [read_json(r[2]) for r in rows]
