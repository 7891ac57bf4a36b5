"""What one plugin can make the host keep: size and rate bounds per plugin.

Everything a worker sends the host unasked — log records, security frames,
metric series — and everything it asks of the host — host calls, results — is
bounded per plugin. What goes over is truncated (a field, a message) or dropped
(a record, an event, a call), counted by reason in
``plugbay_plugin_dropped_total{plugin,reason}``, and reported once per window
in the plugin's own log, never stored whole.

Defaults live in the host's policy, settable per plugin (``plugbay.toml``)::

    [policy.bounds]
    log-records-per-second = 500
    log-fields-bytes = 16384
    [policy.bounds.plugins."acme.chatty"]
    log-records-per-second = 2000
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final

import msgspec

from plugbay.api.errors import ConfigError
from plugbay.model.host_config import no_unknown_keys

__all__ = [
    "RESERVED_FIELDS",
    "TRACEBACK_CHARS",
    "Bounds",
    "Budget",
    "bounded",
    "bounds_from_config",
    "traceback_text",
]

#: field names the host gives meaning to in a log record: a plugin's own are renamed
_RESERVED = "security event issue source plugin version layer kind dropped logger when message"
RESERVED_FIELDS: Final = frozenset([*_RESERVED.split(), "level", "plugin_id", "claimed_logger"])

KiB: Final = 1024
MiB: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Bounds:
    """The limits one plugin works under (the policy's defaults, or its own)."""

    #: log records a second (token bucket, with a burst)
    log_records_per_second: float = 500.0
    log_burst: float = 1000.0
    #: a record's message is cut past this many characters
    log_message_bytes: int = 8 * KiB
    #: a record's fields, serialised, are cut past this many bytes
    log_fields_bytes: int = 16 * KiB
    #: security frames a worker may report a second (the sandbox's guard reports these)
    security_events_per_second: float = 5.0
    security_burst: float = 20.0
    #: one security event, serialised, past this is cut
    security_event_bytes: int = 2 * KiB
    #: label sets of the plugin's own metrics (counters, gauges, histograms together)
    metric_series: int = 500
    #: the largest frame a worker may send (a result, a log record): over it the worker is
    #: treated as broken and replaced
    frame_bytes: int = 16 * MiB
    #: bytes a second of dropped-unread frames (records far over their bounds) the host
    #: reads from a worker; past it, it stops reading that worker for a moment
    discard_bytes_per_second: float = 32 * MiB
    #: calls a plugin may make through the host a second, and at once
    host_calls_per_second: float = 2000.0
    host_calls_burst: float = 4000.0
    host_calls_in_flight: int = 64
    #: seconds between two reports of what was dropped
    report_window: float = 10.0

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name.replace("_", "-") for f in fields(cls)]

    def merged(self, table: Mapping[str, Any], *, what: str, where: str | None) -> Bounds:
        """These bounds with ``table``'s keys (kebab-case) over them; a mistake is a
        ConfigError naming the table (``what``, as the file spells it), the file
        (``where``) and what the key allows."""
        known = {f.name.replace("_", "-"): f for f in fields(self)}
        no_unknown_keys(table, known, what, where, "docs/security.md, Bounds")
        changes: dict[str, Any] = {}
        for key, value in table.items():
            spec = known[key]
            whole = spec.type in ("int", int)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or value <= 0 or (whole and value != int(value)):
                kind = "a whole number above 0" if whole else "a number above 0"
                raise ConfigError(
                    f"{what} {key} must be {kind}, not {value!r}",
                    where=where,
                    hint=f"e.g. {key} = {getattr(self, spec.name)} (its default); "
                    "docs/security.md (Bounds) says what each key bounds",
                )
            changes[spec.name] = int(value) if whole else float(value)
        return replace(self, **changes)


def bounds_from_config(value: Any, *, where: str) -> tuple[Bounds, dict[str, Bounds]]:
    """``[policy.bounds]`` of the host config read from ``where``: the defaults and each
    plugin's own (``plugins."ID"``)."""
    if not isinstance(value, Mapping):
        raise ConfigError(
            "[policy.bounds] must be a table",
            where=where,
            hint="write it as a [policy.bounds] section of key = value lines",
        )
    table = dict(value)
    per_plugin = table.pop("plugins", {})
    if not isinstance(per_plugin, Mapping):
        raise ConfigError(
            "[policy.bounds.plugins] must map plugin ids to tables",
            where=where,
            hint='write a [policy.bounds.plugins."ID"] section per plugin',
        )
    defaults = Bounds().merged(table, what="[policy.bounds]", where=where)
    own: dict[str, Bounds] = {}
    for plugin_id, sub in per_plugin.items():
        what = f'[policy.bounds.plugins."{plugin_id}"]'
        if not isinstance(sub, Mapping):
            raise ConfigError(
                f"{what} must be a table",
                where=where,
                hint=f"write it as a {what} section of key = value lines",
            )
        own[str(plugin_id)] = defaults.merged(sub, what=what, where=where)
    return defaults, own


class _Bucket:
    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, max(burst, 1.0)
        self.tokens = self.burst
        self.last = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Budget:
    """One plugin's bounds as it runs: buckets, and what was dropped by reason.

    ``report`` is called at most once per window with what was dropped since the
    last report (``{reason: count}``): at the first drop, then at the end of each window
    in which more was dropped; the host writes it to the plugin's log."""

    def __init__(
        self,
        plugin_id: str,
        bounds: Bounds,
        report: Callable[[str, dict[str, int]], None] | None = None,
    ) -> None:
        self.plugin_id = plugin_id
        self.bounds = bounds
        self.report = report
        self.logs = _Bucket(bounds.log_records_per_second, bounds.log_burst)
        self.security = _Bucket(bounds.security_events_per_second, bounds.security_burst)
        self.host_calls = _Bucket(bounds.host_calls_per_second, bounds.host_calls_burst)
        self.in_flight = 0
        #: every drop since the host started, by reason
        self.dropped: collections.Counter[str] = collections.Counter()
        self._unreported: collections.Counter[str] = collections.Counter()
        self._last_report = float("-inf")
        #: the report due at the end of the window, when drops wait for it
        self._later: asyncio.TimerHandle | None = None

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] += count
        self._unreported[reason] += count
        if self.report is None:
            return
        waited = time.monotonic() - self._last_report
        if waited >= self.bounds.report_window:
            self._report_now()
        elif self._later is None:
            # what is dropped within the window is said when it ends, even when nothing
            # more is dropped after it (the end of a flood)
            with contextlib.suppress(RuntimeError):  # no event loop here: the next drop
                self._later = asyncio.get_running_loop().call_later(
                    self.bounds.report_window - waited, self._report_now
                )

    def _report_now(self) -> None:
        """Report what was dropped and not yet reported (nothing: no report)."""
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if not self._unreported or self.report is None:
            return
        self._last_report = time.monotonic()
        lost, self._unreported = dict(self._unreported), collections.Counter()
        with contextlib.suppress(Exception):  # reporting must never take the channel down
            self.report(self.plugin_id, lost)

    def flush(self) -> dict[str, int]:
        """What was dropped and not yet reported, taken (the caller says it)."""
        if self._later is not None:
            self._later.cancel()
            self._later = None
        lost, self._unreported = dict(self._unreported), collections.Counter()
        self._last_report = time.monotonic()
        return lost


_encoder = msgspec.json.Encoder(enc_hook=repr)


#: the characters of a logged exception's traceback kept (its end, which names the error)
TRACEBACK_CHARS: Final = 8192


def traceback_text(exc: BaseException) -> str:
    """A logged exception as a record keeps it (the ``exception`` field, which ``plugbay
    logs`` shows under the line), inline or from a worker: its last
    :data:`TRACEBACK_CHARS` characters."""
    text = "".join(traceback.format_exception(exc))
    if len(text) > TRACEBACK_CHARS:
        cut = len(text) - TRACEBACK_CHARS
        text = f"… ({cut} characters of the traceback cut)\n" + text[cut:]
    return text


def bounded(value: Any, limit: int) -> tuple[Any, bool]:
    """``value`` if it serialises within ``limit`` bytes; else a cut version of it and True.

    A cut mapping keeps its keys in order while they fit, each string cut to what is
    left; what did not fit is named by its size, never kept."""
    try:
        size = len(_encoder.encode(value))
    except (TypeError, msgspec.EncodeError, OverflowError):
        return {"unencodable": type(value).__name__}, True
    if size <= limit:
        return value, False
    if isinstance(value, str):
        return value[: max(0, limit - 64)] + f"… ({len(value)} characters, cut)", True
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        room = limit - 64
        for key, item in value.items():
            key = str(key)[:128]
            if room <= len(key) + 16:
                out["cut"] = f"{len(value) - len(out)} more fields; {size} bytes in all"
                break
            item, _ = bounded(item, room - len(key) - 8)
            out[key] = item
            room -= len(_encoder.encode(item)) + len(key) + 8
        return out, True
    return f"{type(value).__name__} of {size} bytes, cut", True
