"""system.logging — the spec's ``LoggingPlugin``.

It attaches one handler to the ``plugbay`` logger, so every plugin's
``context.logger`` (``plugbay.plugin.<id>``) and the host's own messages pass
through it, and it logs every system event it is sent. Records are kept in a
bounded ring (``tail``) and, optionally, in ``logs.jsonl`` in its data directory.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Literal

from plugbay import PluginContext, SystemEvent, SystemInfo, SystemPlugin, command

Level = Literal["debug", "info", "warning", "error"]
_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@dataclass(frozen=True, slots=True)
class LogRecord:
    time: float
    level: str
    logger: str
    plugin: str | None
    message: str


class _RingHandler(logging.Handler):
    def __init__(self, owner: LoggingPlugin, level: int, saved_level: int) -> None:
        super().__init__(level)
        self.owner = owner
        #: the ``plugbay`` logger's level before any version of this plugin changed it
        self.saved_level = saved_level

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.owner.keep(record)
        except Exception:  # a log handler must never raise into the code that logged
            self.handleError(record)


class LoggingPlugin(SystemPlugin):
    id = "system.logging"  # host.get(LoggingPlugin) finds it by this; the version is the manifest's
    priority = 1

    def __init__(self) -> None:
        self.ring: collections.deque[LogRecord] = collections.deque(maxlen=2000)
        self.counts: collections.Counter[str] = collections.Counter()
        self._handler: _RingHandler | None = None
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._max_bytes = 10 * 1024 * 1024
        self._saved_level: int | None = None

    async def initialize(self, context: PluginContext) -> None:
        config = context.config
        self.ring = collections.deque(maxlen=int(config["keep"]))
        self._max_bytes = int(config["max-file-bytes"])
        if config["file"]:
            self._path = context.environment.data_dir / "logs.jsonl"
            self._file = self._path.open("a", encoding="utf-8")
        level = _LEVELS[str(config["level"])]
        root = logging.getLogger("plugbay")
        # on a reload the version before is still attached: its saved level is the original
        before = [getattr(h, "saved_level", None) for h in _ours(root)]
        self._saved_level = next((b for b in before if isinstance(b, int)), root.level)
        self._handler = _RingHandler(self, level, self._saved_level)
        if root.getEffectiveLevel() > level:
            root.setLevel(level)
        root.addHandler(self._handler)
        context.logger.info("logging to %s", self._path or "memory only")

    async def cleanup(self) -> None:
        root = logging.getLogger("plugbay")
        if self._handler is not None:
            root.removeHandler(self._handler)
            self._handler = None
        if self._saved_level is not None and not _ours(root):  # no other version serving
            root.setLevel(self._saved_level)
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- records ---------------------------------------------------------------------

    def keep(self, record: logging.LogRecord) -> None:
        name = record.name
        plugin = name[len("plugbay.plugin.") :] if name.startswith("plugbay.plugin.") else None
        entry = LogRecord(
            record.created, record.levelname.lower(), name, plugin, record.getMessage()
        )
        self.ring.append(entry)
        self.counts[entry.level] += 1
        if self._file is not None:
            self._file.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
            self._file.flush()
            if self._path is not None and self._file.tell() > self._max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        assert self._file is not None and self._path is not None
        self._file.close()
        self._path.replace(self._path.with_suffix(".jsonl.1"))
        self._file = self._path.open("a", encoding="utf-8")

    # -- SystemPlugin ----------------------------------------------------------------

    async def on_system_event(self, event: SystemEvent) -> None:
        details = " ".join(f"{k}={v}" for k, v in sorted(event.data.items()))
        level = logging.WARNING if event.kind.endswith("failed") else logging.INFO
        logging.getLogger("plugbay.events").log(level, "%s %s", event.kind, details)

    def get_system_info(self) -> SystemInfo:
        return {
            "id": self.id,
            "priority": self.priority,
            "records": len(self.ring),
            "file": str(self._path) if self._path else None,
            "counts": dict(self.counts),
        }

    # -- commands --------------------------------------------------------------------

    @command
    def log(self, message: str, level: Level = "info", source: str = "caller") -> None:
        """Write a record, as ``source``, at ``level`` (its logger: ``plugbay.log.<source>``)."""
        # one record named for the source, not a logger per source: the logging module
        # keeps every logger it made for good, so a caller naming a new source each
        # time would grow the host without end
        logger = logging.getLogger("plugbay.log")
        if logger.isEnabledFor(_LEVELS[level]):
            logger.handle(
                logger.makeRecord(
                    f"plugbay.log.{source}", _LEVELS[level], "(system.logging)", 0, "%s",
                    (message,), None, "log",
                )
            )  # fmt: skip

    @command
    def tail(
        self, limit: int = 20, level: Level = "debug", plugin: str | None = None
    ) -> list[LogRecord]:
        """The newest records (oldest first), at ``level`` or above, optionally of one plugin."""
        floor = _LEVELS[level]
        picked = [
            r
            for r in self.ring
            if _LEVELS.get(r.level, logging.CRITICAL) >= floor
            and (plugin is None or r.plugin == plugin)
        ]
        return picked[-limit:] if limit > 0 else []

    @command
    def stats(self) -> dict[str, int]:
        """Records seen per level since start."""
        return dict(self.counts)

    @command
    def since(self, seconds: float = 60.0) -> int:
        """How many records arrived in the last ``seconds``."""
        cutoff = time.time() - seconds
        return sum(1 for r in self.ring if r.time >= cutoff)


def _ours(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers of this plugin's versions on ``logger`` (each version's module, and
    so its handler class, is its own: they are known by name)."""
    return [h for h in logger.handlers if type(h).__name__ == "_RingHandler"]
