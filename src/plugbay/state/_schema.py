"""The state database's schema: the migrations that build it, one step per version.

``MIGRATIONS[n]`` takes a database from schema n to n + 1; :class:`~plugbay.state.StateStore`
runs the missing steps in one transaction when it opens a database.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

# MIGRATIONS[n] takes a database from schema n to n + 1. Append only: a
# released migration is never edited, because databases in the field ran it.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE plugins (
            plugin_id TEXT PRIMARY KEY,
            enabled INTEGER NOT NULL DEFAULT 1,
            disabled_reason TEXT,
            active_version TEXT,
            config TEXT,
            updated REAL NOT NULL
        )""",
        """CREATE TABLE installed (
            plugin_id TEXT NOT NULL,
            version TEXT NOT NULL,
            source TEXT NOT NULL,
            installed REAL NOT NULL,
            PRIMARY KEY (plugin_id, version)
        )""",
        """CREATE TABLE history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            plugin_id TEXT NOT NULL,
            action TEXT NOT NULL,
            version TEXT,
            result TEXT NOT NULL,
            reason TEXT,
            details TEXT
        )""",
        "CREATE INDEX history_plugin ON history (plugin_id, id)",
        """CREATE TABLE grants (
            plugin_id TEXT NOT NULL,
            permission TEXT NOT NULL,
            granted REAL NOT NULL,
            PRIMARY KEY (plugin_id, permission)
        )""",
    ),
    # 1 → 2: monitoring (alerts, per-plugin logs, the live snapshot `plugbay top` reads)
    (
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            plugin_id TEXT NOT NULL,
            version TEXT,
            rule TEXT NOT NULL,
            message TEXT NOT NULL,
            details TEXT,
            fired REAL NOT NULL,
            cleared REAL
        )""",
        "CREATE INDEX alerts_open ON alerts (cleared, plugin_id)",
        """CREATE TABLE logs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            plugin_id TEXT NOT NULL,
            version TEXT,
            level INTEGER NOT NULL,
            logger TEXT NOT NULL,
            message TEXT NOT NULL,
            fields TEXT
        )""",
        "CREATE INDEX logs_plugin ON logs (plugin_id, id)",
        "CREATE INDEX logs_time ON logs (time)",
        """CREATE TABLE monitor_snapshot (
            plugin_id TEXT PRIMARY KEY,
            time REAL NOT NULL,
            data TEXT NOT NULL
        )""",
    ),
    # 2 → 3: held: the operator chose the active version (rollback, upgrade); a restart keeps it
    # even where a plugin directory now holds another version.
    ("ALTER TABLE plugins ADD COLUMN held INTEGER NOT NULL DEFAULT 0",),
    # 3 → 4: scoped API tokens, kept as a SHA-256 of the token (the token itself is shown once)
    (
        """CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            scopes TEXT NOT NULL,
            note TEXT,
            created REAL NOT NULL,
            expires REAL,
            revoked REAL,
            last_used REAL
        )""",
    ),
)

#: The schema this plugbay writes; a database with a higher ``user_version`` is refused.
SCHEMA_VERSION: Final[int] = len(MIGRATIONS)
