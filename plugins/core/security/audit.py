"""core.security — a tamper-evident audit trail of plugin lifecycle and security events.

Every event the host emits under ``plugin.*``, ``security.*`` and ``host.*`` is
appended to ``audit.jsonl`` in the plugin's data directory, one JSON entry a
line, each carrying the SHA-256 of the one before it (the format is in
``chain.py``). ``verify`` walks the chain and names the first entry that does
not hold; ``trail`` reads the newest entries; ``record`` lets a plugin or an
operator add a ``security.*`` note.

Each start adds a ``security.audit.opened`` entry listing every plugin's state
at that moment, so a failure the host reported before this plugin was
listening is on record too. The chain continues across restarts from the
file's last entry. If the file ends in lines that are not entries (a crash cut
a write short, or the tail was damaged), that is logged and a
``security.audit.resumed`` entry starts a new segment that passes over exactly
those lines; nothing is ever rewritten.

Every line is flushed to the OS when written. ``fsync = "always"`` also syncs
it to disk at once; ``"batched"`` (the default) syncs at most once a second,
and never later than a second after a write.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import IO, Any, Final

from plugbay import PlugbayError, PluginContext, SystemEvent, SystemInfo, SystemPlugin, command

from . import chain
from .chain import AuditEntry, AuditVerdict

__all__ = ["AuditEntry", "AuditPlugin", "AuditVerdict"]

_KIND_RE: Final = re.compile(r"security(\.[A-Za-z0-9_-]+)+")
#: a plugin id, as a manifest's ``id`` is checked (``plugbay.model.manifest``)
_PLUGIN_RE: Final = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*")
_MAX_PLUGIN: Final = 200
_MAX_DETAIL: Final = 10_000
_SYNC_EVERY: Final = 1.0


class AuditPlugin(SystemPlugin):
    priority = 2
    system_hooks = ("plugin.*", "security.*", "host.*")

    def __init__(self) -> None:
        self.path: Path | None = None
        self._file: IO[bytes] | None = None
        self._seq = 0
        self._prev = chain.GENESIS
        self._always = False
        self._last_sync = 0.0
        self._sync_timer: asyncio.TimerHandle | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def initialize(self, context: PluginContext) -> None:
        self._always = context.config["fsync"] == "always"
        self.path = context.environment.data_dir / "audit.jsonl"
        end = chain.tail(self.path)
        self._seq, self._prev = end.seq, end.prev
        self._file = self.path.open("ab")
        if end.unterminated:
            self._file.write(b"\n")  # never glue a new entry onto a cut-short line
        if end.unreadable:
            context.logger.warning(
                "%s ends in %d unreadable line(s) after entry %d (a write cut short, or "
                "damage); starting a new chain segment that passes over them",
                self.path,
                end.unreadable,
                end.seq,
            )
            self._append(
                chain.RESUMED,
                chain.SOURCE,
                {
                    "reason": "unreadable lines at the end of the trail",
                    "skipped_lines": end.unreadable,
                    "after_seq": end.seq,
                },
                time.time(),
            )
        # What happened before this plugin subscribed reaches it only if the host's event
        # bus had not run yet; the state every plugin is in now is recorded either way.
        self._append(
            chain.OPENED,
            chain.SOURCE,
            {"host_version": context.environment.host_version, "plugins": _plugins(context)},
            time.time(),
        )
        context.logger.info("audit trail %s: continuing after entry %d", self.path, end.seq)

    async def cleanup(self) -> None:
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        if self._file is not None:
            self._flush(sync=True)
            self._file.close()
            self._file = None

    # -- writing -----------------------------------------------------------------------

    def _append(self, kind: str, source: str, data: dict[str, Any], when: float) -> int:
        if self._file is None:
            raise RuntimeError("the audit trail is closed")
        entry = chain.make_entry(self._seq + 1, when, kind, source, data, self._prev)
        self._file.write(chain.encode(entry))
        self._seq, self._prev = entry["seq"], entry["hash"]
        self._flush(sync=self._always)
        return self._seq

    def _flush(self, *, sync: bool) -> None:
        """Flush to the OS now; sync to disk now, or within a second (at most once a second)."""
        assert self._file is not None
        self._file.flush()
        now = time.monotonic()
        wait = self._last_sync + _SYNC_EVERY - now
        if sync or wait <= 0:
            self._sync()
        elif self._sync_timer is None:
            self._sync_timer = asyncio.get_running_loop().call_later(wait, self._sync)

    def _sync(self) -> None:
        self._sync_timer = None
        if self._file is None:
            return
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:  # a full or failing disk is logged, not raised into the host
            self.context.logger.error("fsync of %s failed: %s", self.path, exc)
        self._last_sync = time.monotonic()

    # -- SystemPlugin --------------------------------------------------------------------

    async def on_system_event(self, event: SystemEvent) -> None:
        self._append(event.kind, event.source, dict(event.data), event.time)

    def get_system_info(self) -> SystemInfo:
        return {
            "id": self.id,
            "priority": self.priority,
            "entries": self._seq,
            "file": str(self.path),
            "fsync": "always" if self._always else "batched",
        }

    # -- commands ------------------------------------------------------------------------

    def _size(self) -> int:
        """Bytes written so far: readers stop there, so a write in progress is never half-read."""
        if self._file is None or self.path is None:
            return 0
        self._file.flush()
        return self._file.tell()

    @command
    async def trail(
        self, limit: int = 50, plugin: str | None = None, kind: str | None = None
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries, oldest first; only those about ``plugin``
        (``data.plugin``) and of ``kind`` or a kind under it ('plugin' picks
        plugin.loaded, plugin.failed, …; 'plugin.*' says the same)."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        path, size = self.path, self._size()
        if path is None or limit == 0:
            return []

        def read() -> list[AuditEntry]:
            picked: list[AuditEntry] = []
            for line in chain.reverse_lines(path, size):
                entry = chain.parse(line)
                if entry is None or not _wanted(entry, plugin, kind):
                    continue
                picked.append(entry)
                if len(picked) == limit:
                    break
            picked.reverse()
            return picked

        return await asyncio.to_thread(read)

    @command
    async def verify(self) -> AuditVerdict:
        """Check the whole hash chain; the verdict names the first entry that does not hold."""
        path, size = self.path, self._size()
        if path is None:
            return {"ok": True, "entries": 0, "first_bad_seq": None, "reason": None}
        verdict = await asyncio.to_thread(lambda: chain.verify(chain.forward_lines(path, size)))
        if not verdict["ok"]:
            self.context.logger.warning(
                "audit trail %s does not verify at entry %s: %s",
                path,
                verdict["first_bad_seq"],
                verdict["reason"],
            )
        return verdict

    @command
    def record(self, kind: str, detail: str, plugin: str | None = None) -> int:
        """Add a security note of ``kind`` (``security.<something>``), optionally about
        ``plugin``; its source is 'record'. Returns the entry's sequence number."""
        if not _KIND_RE.fullmatch(kind):
            raise ValueError(
                f"kind must start with 'security.' and be dotted words, got {kind!r} "
                "(e.g. 'security.note' or 'security.permission.denied')"
            )
        if (kind + ".").startswith(chain.RESERVED):
            raise ValueError(f"kind {kind!r} is reserved for the audit trail itself")
        if len(detail) > _MAX_DETAIL:
            raise ValueError(f"detail is {len(detail)} characters; at most {_MAX_DETAIL}")
        if plugin is not None and (len(plugin) > _MAX_PLUGIN or not _PLUGIN_RE.fullmatch(plugin)):
            raise ValueError(
                f"plugin must be a plugin id such as 'acme.tool' (at most {_MAX_PLUGIN} "
                f"characters), got {plugin[:80]!r}{'…' if len(plugin) > 80 else ''}"
            )
        data: dict[str, Any] = {"detail": detail}
        if plugin is not None:
            data["plugin"] = plugin
        return self._append(kind, "record", data, time.time())


def _plugins(context: PluginContext) -> list[dict[str, Any]] | None:
    """Each plugin's id, version, state and reason, from the ``plugbay.host`` service."""
    try:
        rows = context.services.require("plugbay.host").plugins()
    except PlugbayError as exc:
        context.logger.warning("cannot list the plugins at start: %s", exc)
        return None
    return [
        {k: row.get(k) for k in ("id", "version", "state", "reason") if row.get(k) is not None}
        for row in rows
    ]


def _wanted(entry: AuditEntry, plugin: str | None, kind: str | None) -> bool:
    if plugin is not None and entry["data"].get("plugin") != plugin:
        return False
    if kind is None:
        return True
    base = kind.rstrip("*").rstrip(".")
    return entry["kind"] == base or entry["kind"].startswith(base + ".")
