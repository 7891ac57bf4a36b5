"""core.security — a tamper-evident audit trail.

Every lifecycle and security event the host emits is appended to
``audit.jsonl`` in the plugin's data directory. Each entry holds the hash of
the previous one (``prev``) and its own ``hash``: SHA-256 over its canonical
JSON without ``hash``. Editing, removing or reordering any entry breaks the
chain at that entry, which ``verify`` reports by sequence number.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import IO, Any, TypedDict

from plugbay import PluginContext, SystemEvent, SystemInfo, SystemPlugin, command

GENESIS = "0" * 64


class AuditEntry(TypedDict):
    seq: int
    time: float
    kind: str
    source: str
    data: dict[str, Any]
    prev: str
    hash: str


class AuditVerdict(TypedDict):
    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str | None


def _digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class AuditPlugin(SystemPlugin):
    priority = 2
    system_hooks = ("plugin.*", "security.*", "host.*")

    def __init__(self) -> None:
        self.path: Path | None = None
        self._file: IO[str] | None = None
        self._seq = 0
        self._prev = GENESIS
        self._always = False
        self._last_sync = 0.0

    async def initialize(self, context: PluginContext) -> None:
        self.path = context.environment.data_dir / "audit.jsonl"
        self._always = context.config["fsync"] == "always"
        last = self._last_line()
        if last is not None:
            try:
                entry = json.loads(last)
                self._seq, self._prev = int(entry["seq"]), str(entry["hash"])
            except (ValueError, KeyError, TypeError):
                context.logger.warning(
                    "the last audit entry is unreadable; starting a new chain segment"
                )
                self._append(
                    "security.audit.resumed", "core.security", {"reason": "unreadable last entry"}
                )
        self._file = self.path.open("a", encoding="utf-8")

    async def cleanup(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def _last_line(self) -> str | None:
        if self.path is None or not self.path.exists():
            return None
        with self.path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            lines = f.read().decode("utf-8", errors="replace").splitlines()
        return lines[-1] if lines else None

    def _append(self, kind: str, source: str, data: dict[str, Any]) -> int:
        self._seq += 1
        entry: dict[str, Any] = {
            "seq": self._seq,
            "time": time.time(),
            "kind": kind,
            "source": source,
            "data": data,
            "prev": self._prev,
        }
        entry["hash"] = _digest(entry)
        self._prev = entry["hash"]
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        if self._file is None:
            assert self.path is not None
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
        else:
            self._file.write(line)
            self._file.flush()
            now = time.monotonic()
            if self._always or now - self._last_sync >= 1.0:
                os.fsync(self._file.fileno())
                self._last_sync = now
        return self._seq

    async def on_system_event(self, event: SystemEvent) -> None:
        self._append(event.kind, event.source, dict(event.data))

    def get_system_info(self) -> SystemInfo:
        return {
            "id": self.id,
            "priority": self.priority,
            "entries": self._seq,
            "file": str(self.path),
        }

    def _entries(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"seq": None, "corrupt": line[:200]})
        return out

    @command
    def trail(
        self, limit: int = 50, plugin: str | None = None, kind: str | None = None
    ) -> list[AuditEntry]:
        """The newest entries (oldest first), optionally of one plugin or kind prefix."""
        picked = [
            e
            for e in self._entries()
            if "corrupt" not in e
            and (plugin is None or e.get("data", {}).get("plugin") == plugin)
            and (kind is None or str(e.get("kind", "")).startswith(kind))
        ]
        return picked[-limit:] if limit > 0 else []  # type: ignore[return-value]

    @command
    def verify(self) -> AuditVerdict:
        """Check the hash chain from the first entry to the last."""
        prev = GENESIS
        entries = self._entries()
        for index, entry in enumerate(entries, start=1):
            seq = entry.get("seq")
            if "corrupt" in entry:
                return {
                    "ok": False,
                    "entries": len(entries),
                    "first_bad_seq": index,
                    "reason": "not JSON",
                }
            if entry.get("kind") == "security.audit.resumed":
                prev = entry.get("prev", prev)
            if entry.get("prev") != prev:
                return {
                    "ok": False,
                    "entries": len(entries),
                    "first_bad_seq": seq,
                    "reason": "chain broken: prev does not match",
                }
            if _digest(entry) != entry.get("hash"):
                return {
                    "ok": False,
                    "entries": len(entries),
                    "first_bad_seq": seq,
                    "reason": "entry altered: hash does not match",
                }
            prev = entry["hash"]
        return {"ok": True, "entries": len(entries), "first_bad_seq": None, "reason": None}

    @command
    def record(self, kind: str, detail: str) -> int:
        """Add a security note; ``kind`` must start with 'security.'. Returns its sequence number."""
        if not kind.startswith("security."):
            raise ValueError(f"kind must start with 'security.', got {kind!r}")
        return self._append(kind, "operator", {"detail": detail})
