"""Per-plugin structured logs: a bounded ring in memory, persisted in SQLite with retention.

Every record a plugin writes through ``context.logger`` (a ``logging.Logger``
named ``plugbay.plugin.<id>``) reaches :class:`LogManager`, a logging handler,
as a record of time, level, plugin, version, message and fields
(``logger.info("saved", extra={"fields": {"rows": 3}})``). A worker forwards its
plugin's records, and its stdout and stderr, over its frames, so a sandboxed
plugin's logs land in the same place; security events (a denied permission, a
limit hit) are written here too, at WARNING, with ``security`` in the fields.

A plugin that logs faster than its budget (records and bytes per second, a
token bucket each) has the excess dropped and counted, never queued: the host
neither stalls nor grows. Persisting is done in batches by the monitor, off the
event loop; retention keeps a number of records per plugin and a maximum age.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from plugbay.monitor.bounds import RESERVED_FIELDS, bounded, traceback_text
from plugbay.monitor.config import MonitorSettings

if TYPE_CHECKING:
    from plugbay.state import StateStore

__all__ = ["BY_ALERT", "PREFIX", "LogManager", "RateLimiter", "level_number", "lifecycle_level"]

PREFIX: Final = "plugbay.plugin."
#: a message longer than this is cut (the ring and the database stay bounded)
MAX_MESSAGE: Final = 8192
#: a record's fields, serialised, are cut past this many bytes
MAX_FIELDS: Final = 16 * 1024

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def level_number(name: str) -> int:
    """``"warning"`` → 30; a number as text is taken as is. ValueError names the choices."""
    text = name.strip().lower()
    if text.isdigit():
        return int(text)
    if text not in _LEVELS:
        raise ValueError(f"unknown log level '{name}'; use one of {', '.join(_LEVELS)}")
    return _LEVELS[text]


#: ``plugin.disabled``'s ``by`` when the monitor disables a plugin for a firing alert rule
BY_ALERT: Final = "the monitor, for an alert rule with disable = true"


def lifecycle_level(kind: str, data: Mapping[str, Any]) -> int:
    """The level of a lifecycle event in its plugin's log: a failure or a crash is an
    error; a disable for an alert rule a warning; an operator's disable, as the rest, info."""
    if kind in ("plugin.failed", "plugin.crashed"):
        return logging.ERROR
    if kind == "plugin.disabled" and data.get("by") == BY_ALERT:
        return logging.WARNING
    return logging.INFO


_SCALARS: Final = (int, float, bool, type(None))


def _small(fields: dict[str, Any]) -> bool:
    """Surely within the fields' bound, without serialising them (the common record; a
    loop, not ``all()`` over a generator: half the bytecodes for a field or two)."""
    if len(fields) > 16:
        return False
    for value in fields.values():
        kind = type(value)
        if kind is str:
            if len(value) > 512:
                return False
        elif kind not in _SCALARS:
            return False
    return True


_FROM_A_PLUGIN: Final = json.dumps({"source": "plugin"})


def _fields_json(fields: dict[str, Any] | None) -> str | None:
    if not fields:
        return None
    if len(fields) == 1 and fields.get("source") == "plugin":  # most records: no fields
        return _FROM_A_PLUGIN
    return json.dumps(fields, default=str)


class RateLimiter:
    """A token bucket: ``rate`` per second, bursts up to ``burst``. Not thread-safe alone."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.last = time.monotonic()

    def allow(self, cost: float = 1.0) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class _Budget:
    __slots__ = ("bytes", "dropped", "records", "reported")

    def __init__(self, records: float, burst: float, bytes_per_s: float) -> None:
        self.records = RateLimiter(records, burst)
        self.bytes = RateLimiter(bytes_per_s, bytes_per_s * 2)
        self.dropped = 0
        self.reported = 0


#: the ``[monitor]`` defaults, the one place they are set
_DEFAULT: Final = MonitorSettings()


class LogManager(logging.Handler):
    """The spec's ``LogManager``: collects, keeps and serves every plugin's records
    (its defaults are ``[monitor]``'s, :class:`~plugbay.monitor.config.MonitorSettings`)."""

    def __init__(
        self,
        *,
        ring: int = _DEFAULT.log_ring,
        rate: float = _DEFAULT.log_rate,
        burst: float = _DEFAULT.log_burst,
        bytes_per_second: float = _DEFAULT.log_bytes_per_second,
        retention_seconds: float = _DEFAULT.log_retention_days * 86400.0,
        keep_per_plugin: int = _DEFAULT.log_keep,
        known: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__(logging.DEBUG)
        self.ring_size = ring
        self.rate, self.burst, self.bytes_per_second = rate, burst, bytes_per_second
        self.retention_seconds = retention_seconds
        self.keep_per_plugin = keep_per_plugin
        #: logger-name suffix → plugin version, for plugins this host knows (None: not ours)
        self._known = known or (lambda plugin_id: "")
        self._rings: dict[str, collections.deque[dict[str, Any]]] = {}
        self._budgets: dict[str, _Budget] = {}
        self._pending: list[dict[str, Any]] = []
        #: a budget dropped records not yet said in a line of their own (``persist``)
        self._unsaid = False
        self._owner: dict[str, tuple[str, str | None] | None] = {}
        self._flush_lock = threading.Lock()
        self.written = 0
        #: called (from the adding thread) when something starts waiting for
        #: :meth:`persist`: the monitor's next tick comes soon, though it rests
        self.on_news: Callable[[], None] | None = None

    # -- collecting ---------------------------------------------------------------------

    def _plugin_of(self, logger: str) -> tuple[str, str | None] | None:
        """``plugbay.plugin.acme.x[.child]`` → (``acme.x``, version), for a plugin we know."""
        cached = self._owner.get(logger, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        found: tuple[str, str | None] | None = None
        if logger.startswith(PREFIX):
            parts = logger[len(PREFIX) :].split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                version = self._known(candidate)
                if version is not None:
                    found = (candidate, version or None)
                    break
        if found is not None:  # unknown names are not cached: the plugin may load later
            self._owner[logger] = found
        return found

    def forget(self, plugin_id: str) -> None:
        """A plugin's version changed (reload): look its loggers up again."""
        for name in [n for n, v in self._owner.items() if v is not None and v[0] == plugin_id]:
            del self._owner[name]

    def emit(self, record: logging.LogRecord) -> None:
        # a worker's record names its plugin from the channel it came on (never the logger)
        sender = getattr(record, "plugbay_owner", None)
        if isinstance(sender, str):
            version = self._known(sender)
            owner = (sender, version or None) if version is not None else None
        else:
            owner = self._plugin_of(record.name)
        if owner is None:
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the plugin's; keep what we can
            message = f"{record.msg!r} % {record.args!r}"
        fields = getattr(record, "fields", None)
        fields = dict(fields) if isinstance(fields, dict) else {}
        if not isinstance(sender, str):  # an inline plugin's record: its fields are its own
            fields = {
                f"plugin.{k}" if k in RESERVED_FIELDS else str(k): v for k, v in fields.items()
            }
            fields["source"] = "plugin"
        if record.exc_info and record.exc_info[1] is not None:
            fields["exception"] = traceback_text(record.exc_info[1])
        self._keep(owner[0], record.levelno, message, record.name, owner[1], record.created,
                   fields)  # fmt: skip

    def add(
        self,
        plugin_id: str,
        level: int,
        message: str,
        *,
        logger: str | None = None,
        version: str | None = None,
        when: float | None = None,
        **fields: Any,
    ) -> bool:
        """Keep one record for a plugin; False when its rate limit dropped it."""
        return self._keep(plugin_id, level, message, logger, version, when, fields)

    def _keep(
        self,
        plugin_id: str,
        level: int,
        message: str,
        logger: str | None,
        version: str | None,
        when: float | None,
        fields: dict[str, Any],
    ) -> bool:
        """:meth:`add` with the record's own ``fields`` dict (kept as it is)."""
        budget = self._budgets.get(plugin_id)
        if budget is None:
            budget = self._budgets[plugin_id] = _Budget(
                self.rate, self.burst, self.bytes_per_second
            )
        if len(message) > MAX_MESSAGE:
            message = (
                message[:MAX_MESSAGE] + f"… ({len(message) - MAX_MESSAGE} more characters cut)"
            )
        if not budget.records.allow() or not budget.bytes.allow(len(message)):
            budget.dropped += 1
            if not self._unsaid:
                self._unsaid = True
                self._told()
            return False
        if fields and not _small(fields):  # kept whole only when small: the store stays bounded
            fields, _ = bounded(fields, MAX_FIELDS)
        if version is None:
            version = self._known(plugin_id) or None
        entry = {
            "time": when if when is not None else time.time(),
            "plugin": plugin_id,
            "version": version,
            "level": level,
            "logger": logger or PREFIX + plugin_id,
            "message": message,
            "fields": fields,
        }
        ring = self._rings.get(plugin_id)
        if ring is None:
            ring = self._rings[plugin_id] = collections.deque(maxlen=self.ring_size)
        ring.append(entry)
        pending = self._pending
        pending.append(entry)
        self.written += 1
        if len(pending) == 1:
            self._told()
        return True

    def _told(self) -> None:
        news = self.on_news
        if news is not None:
            news()

    def security(
        self, plugin_id: str, message: str, *, level: int = logging.WARNING, **fields: Any
    ) -> None:
        """A security event (denied permission, limit hit; an API request that changed the
        plugin, at info when it succeeded): never rate-limited away silently."""
        fields = {
            k: v for k, v in fields.items() if k not in ("message", "logger", "version", "when")
        }
        self.add(plugin_id, level, message, logger=PREFIX + plugin_id + ".security",
                 security=True, **fields)  # fmt: skip

    def dropped(self) -> dict[str, int]:
        """Records each plugin lost to its rate limit since the host started."""
        return {pid: b.dropped for pid, b in self._budgets.items() if b.dropped}

    # -- reading ------------------------------------------------------------------------

    def recent(
        self, plugin_id: str | None = None, *, min_level: int = 0, limit: int = 200
    ) -> list[dict[str, Any]]:
        """The newest records kept in memory, oldest first."""
        rings = [self._rings.get(plugin_id, ())] if plugin_id else list(self._rings.values())
        rows = [e for ring in rings for e in list(ring) if e["level"] >= min_level]
        rows.sort(key=lambda e: e["time"])
        return rows[-limit:]

    # -- persisting (from the monitor, in a worker thread) -------------------------------

    def waiting(self) -> bool:
        """Whether :meth:`persist` has anything to write now (read without the lock: a
        record that arrives meanwhile is written on the next flush)."""
        return bool(self._pending) or self._unsaid

    def persist(self, store: StateStore | None) -> int:
        """Write what arrived since the last flush, and one line per plugin that lost
        records to its rate limit. Returns the number of records written."""
        with self._flush_lock:
            with self.lock:  # type: ignore[union-attr]
                unsaid, self._unsaid = self._unsaid, False
                for pid, budget in list(self._budgets.items()) if unsaid else ():
                    if budget.dropped > budget.reported:
                        lost = budget.dropped - budget.reported
                        budget.reported = budget.dropped
                        entry = {
                            "time": time.time(), "plugin": pid, "version": self._known(pid) or None,
                            "level": logging.WARNING, "logger": PREFIX + pid,
                            "message": f"{lost} log records dropped: over the limit of "
                            f"{self.rate:g} records or {self.bytes_per_second / 1024:g} KiB a second",
                            "fields": {"dropped": lost, "total_dropped": budget.dropped},
                        }  # fmt: skip
                        self._rings.setdefault(
                            pid, collections.deque(maxlen=self.ring_size)
                        ).append(entry)
                        self._pending.append(entry)
                pending, self._pending = self._pending, []
            if store is None or not pending:
                return 0
            store.add_logs(
                [
                    (
                        e["time"],
                        e["plugin"],
                        e["version"],
                        e["level"],
                        e["logger"],
                        e["message"],
                        _fields_json(e["fields"]),
                    )
                    for e in pending
                ]
            )
            return len(pending)

    def prune(self, store: StateStore) -> int:
        return store.prune_logs(
            older_than=time.time() - self.retention_seconds, per_plugin=self.keep_per_plugin
        )
