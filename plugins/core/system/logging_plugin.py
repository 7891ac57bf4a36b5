"""system.logging — the spec's ``LoggingPlugin``.

It attaches one handler to the ``plugbay`` logger, so every plugin's
``context.logger`` (``plugbay.plugin.<id>``) and the host's own messages pass
through it, and it logs every system event it is sent. Records are kept in a
bounded ring (``tail``) and, optionally, in ``logs.jsonl`` in its data directory.

During a reload both versions are attached for a moment, and a record reaches both.
The file is one :class:`_LogFile` whichever versions are attached: the new version
takes the old one's over (``adopt``), the first version a record reaches writes it
there and marks it written, and the file is closed with the last version using it. So
each record is written once, and one object rotates the file.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal

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


#: the record attribute naming the :class:`_LogFile` that wrote it (a record reaches each
#: version attached during a reload: the first one writes it)
_WRITTEN = "_system_logging_written"


class _LogFile:
    """``logs.jsonl``, appended to and rotated by one object for every version attached
    (each version's module, and so this class, is its own: the one a version adopts
    is known by what it does: ``path``, ``max_bytes``, ``adopt``, ``write``, ``release``)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._users = 1
        self._lock = threading.Lock()  # versions' handlers emit from any thread
        self._file: IO[str] | None = path.open("a", encoding="utf-8")

    def adopt(self) -> None:
        """Another version writes here too (until its :meth:`release`)."""
        with self._lock:
            self._users += 1

    def write(self, record: logging.LogRecord, line: str) -> None:
        """``line`` for ``record``, unless a version attached before wrote it already."""
        if getattr(record, _WRITTEN, None) is self:
            return
        setattr(record, _WRITTEN, self)
        with self._lock:
            if self._file is None:
                return
            self._file.write(line)
            self._file.flush()
            if self._file.tell() > self.max_bytes:
                self._file.close()
                self.path.replace(self.path.with_suffix(".jsonl.1"))
                self._file = self.path.open("a", encoding="utf-8")

    def release(self) -> None:
        """A version is done with it; closed when no version writes here any more."""
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._file is not None:
                self._file.close()
                self._file = None


class _RingHandler(logging.Handler):
    def __init__(
        self, owner: LoggingPlugin, level: int, saved_level: int, log_file: _LogFile | None
    ) -> None:
        super().__init__(level)
        self.owner = owner
        #: the ``plugbay`` logger's level before any version of this plugin changed it
        self.saved_level = saved_level
        #: the file this version writes records to (shared with the versions beside it)
        self.log_file = log_file

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # the file as this handler holds it: a version's cleanup (a reload's old one)
            # drops its own reference while this handler may still be handling a record
            self.owner.keep(record, self.log_file)
        except Exception:  # a log handler must never raise into the code that logged
            self.handleError(record)


class LoggingPlugin(SystemPlugin):
    id = "system.logging"  # host.get(LoggingPlugin) finds it by this; the version is the manifest's
    priority = 1

    def __init__(self) -> None:
        self.ring: collections.deque[LogRecord] = collections.deque(maxlen=2000)
        self.counts: collections.Counter[str] = collections.Counter()
        self._handler: _RingHandler | None = None
        self._file: _LogFile | None = None
        self._path: Path | None = None
        self._saved_level: int | None = None

    async def initialize(self, context: PluginContext) -> None:
        config = context.config
        self.ring = collections.deque(maxlen=int(config["keep"]))
        root = logging.getLogger("plugbay")
        if config["file"]:
            self._path = context.environment.data_dir / "logs.jsonl"
            max_bytes = int(config["max-file-bytes"])
            self._file = _adopted(root, self._path) or _LogFile(self._path, max_bytes)
            self._file.max_bytes = max_bytes  # an adopted one rotates at this version's size
        level = _LEVELS[str(config["level"])]
        # on a reload the version before is still attached: its saved level is the original
        before = [getattr(h, "saved_level", None) for h in _ours(root)]
        self._saved_level = next((b for b in before if isinstance(b, int)), root.level)
        self._handler = _RingHandler(self, level, self._saved_level, self._file)
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
            self._file.release()
            self._file = None

    # -- records ---------------------------------------------------------------------

    def keep(self, record: logging.LogRecord, log_file: _LogFile | None) -> None:
        name = record.name
        plugin = name[len("plugbay.plugin.") :] if name.startswith("plugbay.plugin.") else None
        entry = LogRecord(
            record.created, record.levelname.lower(), name, plugin, record.getMessage()
        )
        self.ring.append(entry)
        self.counts[entry.level] += 1
        if log_file is not None:
            log_file.write(record, json.dumps(asdict(entry), ensure_ascii=False) + "\n")

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


def _adopted(logger: logging.Logger, path: Path) -> _LogFile | None:
    """The file a version still attached writes ``path`` with (a reload's old version),
    now this version's too; ``None`` when no version writes it."""
    for handler in _ours(logger):
        found: Any = getattr(handler, "log_file", None)  # another module's _LogFile
        if getattr(found, "path", None) == path and callable(getattr(found, "adopt", None)):
            found.adopt()
            adopted: _LogFile = found
            return adopted
    return None


def _ours(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers of this plugin's versions on ``logger`` (each version's module, and
    so its handler class, is its own: they are known by name)."""
    return [h for h in logger.handlers if type(h).__name__ == "_RingHandler"]
