"""The flight recorder: a bounded recording of one plugin's calls, to replay later.

Opt-in per plugin (``[policy] record = ["acme.*"]`` in the host config, or
``plugbay record ID`` on a running host). Each call the plugin answers is kept
with its command, parameters, result or error, duration and the version that
answered; parameters the manifest lists under ``secret-parameters`` are replaced
by :data:`REDACTED` before anything is kept (a secret parameter the caller left at an
empty default, ``None``, ``""``, ``0`` or ``False``, carries no secret: it is kept as it
is, and the call can be replayed). The recording is bounded twice: the
newest ``calls`` calls, and ``max_bytes`` bytes in all (oldest dropped first,
counted in ``dropped``); a single answer larger than :data:`MAX_ENTRY` is kept
without its value (``"result": null, "truncated": true``) and is not compared on
replay.

The file lives beside the state, ``<state>/recordings/<plugin-id>.jsonl``: a header
line, then one JSON object per call, oldest first (``docs/upgrades.md``). It is
written atomically when the recording stops, when it is exported, at the host's
stop, and every few seconds while calls arrive; a recorder started on a plugin
with such a file goes on from it (its lines kept as they are, checked, not decoded and
encoded again).

What a call costs the host (``bench trials``, ``docs/upgrades.md``): the call path tells the
recorder of each call once the answer arrived, in the call's own frame (``Route.heard``,
``runtime.tap``: no coroutine around the call). A call that carries no secret parameter becomes its JSON line at once, encoded from a small struct (not a
dict built for it); nothing is kept of the caller's objects, so changing them after the
call changes nothing recorded. A failed call, or one that carries a secret parameter,
is redacted first (a secret is never kept anywhere in clear), then encoded the same way.
"""

from __future__ import annotations

import collections
import contextlib
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from plugbay.api import CommandSpec
from plugbay.api.errors import PlugbayError

#: one command's secret parameters: those secret whenever given, and those left at an
#: empty default (name → default) that carries no secret (see :meth:`Recorder._plan`)
_Secrets = tuple[frozenset[str], dict[str, Any]]

__all__ = [
    "FORMAT",
    "MAX_ENTRY",
    "REDACTED",
    "RecordedCall",
    "Recorder",
    "Recording",
    "read_recording",
]

FORMAT: Final = "plugbay-recording/1"
#: what a secret parameter's value becomes in a recording
REDACTED: Final = "<redacted>"
#: one call's record larger than this keeps no result (bytes of JSON)
MAX_ENTRY: Final = 64 * 1024
DEFAULT_CALLS: Final = 1000
DEFAULT_BYTES: Final = 16 * 1024 * 1024

_encoder = msgspec.json.Encoder(enc_hook=repr)
_encode = _encoder.encode
_now: Final = time.time
_NOT_JSON: Final = (TypeError, ValueError, OverflowError)


class _Line(msgspec.Struct, omit_defaults=True, gc=False):
    """One call's line in the file, in the order of its keys (``error`` is always written).
    Encoding a struct costs less than building and encoding a dict; it is never part of
    a cycle, so the garbage collector need not track it."""

    at: float
    command: str
    params: Any
    result: Any
    error: dict[str, str] | None
    seconds: float
    version: str
    redacted: list[str] | None = None
    truncated: bool = False
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One call as recorded."""

    at: float
    command: str
    params: dict[str, Any]
    result: Any
    #: ``{"type": ..., "message": ...}`` when the call failed
    error: dict[str, str] | None
    seconds: float
    version: str
    #: the answer was too large to keep
    truncated: bool = False
    #: names of parameters replaced by REDACTED
    redacted: tuple[str, ...] = ()


@dataclass(slots=True)
class Recording:
    """A recording read from a file: its header and its calls."""

    plugin: str
    calls: list[RecordedCall]
    header: dict[str, Any] = field(default_factory=dict)

    def commands(self) -> list[str]:
        return sorted({c.command for c in self.calls})


class Recorder:
    """Keeps one plugin's calls (a ``runtime.tap.CallListener``)."""

    def __init__(
        self,
        plugin_id: str,
        path: Path | None,
        *,
        secret: Iterable[str] = (),
        calls: int = DEFAULT_CALLS,
        max_bytes: int = DEFAULT_BYTES,
        source: str = "api",
    ) -> None:
        if calls < 1 or max_bytes < 1:
            raise PlugbayError(
                f"a recording keeps at least one call (asked: {calls} calls, {max_bytes} bytes)",
                plugin=plugin_id,
                hint="give --calls 1 or more",
            )
        self.plugin_id = plugin_id
        self.path = path
        self._calls = calls
        self._max_bytes = max_bytes
        self.source = source
        self.started = time.time()
        #: calls heard (each leaves one line; ``dropped`` and ``dirty`` follow from it)
        self.seen = 0
        self._saved = 0
        self._loaded = 0
        self._entries: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._secret_any: frozenset[str] = frozenset()
        self._secret_by_command: dict[str, frozenset[str]] = {}
        #: each command's secrets, by its spec (a new version brings new specs), and the
        #: specs with none (the common case: one test on the hot path)
        self._plans: dict[CommandSpec, _Secrets] = {}
        self._clear: set[CommandSpec] = set()
        self.set_secret(secret)
        if path is not None and path.is_file():
            with contextlib.suppress(PlugbayError):
                for line in stored_calls(path):
                    self._keep(line)
                    self._loaded += 1

    def set_secret(self, names: Iterable[str]) -> None:
        """The manifest's ``secret-parameters`` (``name`` or ``command.name``)."""
        anywhere: set[str] = set()
        by_command: dict[str, set[str]] = {}
        for name in names:
            command, dot, param = name.rpartition(".")
            if dot:
                by_command.setdefault(command, set()).add(param)
            else:
                anywhere.add(name)
        self._secret_any = frozenset(anywhere)
        self._secret_by_command = {
            c: frozenset(p) | self._secret_any for c, p in by_command.items()
        }
        self._plans = {}
        self._clear = set()

    def _plan(self, spec: CommandSpec) -> _Secrets:
        """``spec``'s secret parameters, split: one whose default is empty (None, "", 0,
        False: nothing a caller could hide in it) is a secret only when given another
        value. An inline call's checked parameters hold every default, so without this a
        command with such a parameter would take the redacting way on every call."""
        secret = self._secret_by_command.get(spec.name, self._secret_any)
        empty = {p.name: p.default for p in spec.params if not p.required and _empty(p.default)}
        soft = {name: empty[name] for name in sorted(secret) if name in empty}
        plan = self._plans[spec] = (secret.difference(soft), soft)
        if not secret:
            self._clear.add(spec)
        return plan

    def _carries_none(self, spec: CommandSpec, params: dict[str, Any]) -> bool:
        """No secret in this call of a command that has secret parameters (or is new)."""
        secret, soft = self._plans.get(spec) or self._plan(spec)
        return (not secret or secret.isdisjoint(params)) and (
            not soft or _at_defaults(params, soft)
        )

    # ------------------------------------------------------------------ the tap

    def called(
        self,
        version: str,
        spec: CommandSpec,
        params: dict[str, Any],
        result: Any,
        error: BaseException | None,
        seconds: float,
    ) -> None:
        # the hot path, kept flat (see the module docstring): a call that carries no secret
        # parameter becomes its line at once; the oldest line leaves as the newest comes
        self.seen += 1
        if error is None and (spec in self._clear or self._carries_none(spec, params)):
            try:
                line = _encode(_Line(_now(), spec.name, params, result, None, seconds, version))
            except _NOT_JSON:
                pass  # said in the line below
            else:
                size = len(line)
                if size <= MAX_ENTRY:
                    entries = self._entries
                    entries.append(line)
                    size += self._bytes
                    if len(entries) > self._calls:  # (bounds lowered are held at once)
                        size -= len(entries.popleft())
                    self._bytes = size
                    if size > self._max_bytes:
                        self._trim()
                    return
        plan = self._plans.get(spec) or self._plan(spec)
        self._keep(_encoded(_redacted(spec.name, params, result, error, seconds, version, plan)))

    def _keep(self, line: bytes) -> None:
        self._entries.append(line)
        self._bytes += len(line)
        self._trim()

    def _trim(self) -> None:
        """Drop the oldest lines past either bound (one line is always kept)."""
        entries = self._entries
        over = len(entries) - self._calls
        if over > 0:
            self._bytes -= sum(map(len, [entries.popleft() for _ in range(over)]))
        while self._bytes > self._max_bytes and len(entries) > 1:
            self._bytes -= len(entries.popleft())

    @property
    def calls(self) -> int:
        """The newest calls kept; lowered, the recording holds it at once."""
        return self._calls

    @calls.setter
    def calls(self, calls: int) -> None:
        self._calls = calls
        self._trim()

    @property
    def max_bytes(self) -> int:
        """The bytes kept in all (one call is always kept); lowered, held at once."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._trim()

    @property
    def dropped(self) -> int:
        """Calls (and lines gone on from) that left the recording past its bounds."""
        return self._loaded + self.seen - len(self._entries)

    @property
    def dirty(self) -> bool:
        """Calls arrived since the file was last written."""
        return self.seen != self._saved

    # ------------------------------------------------------------------ reading, writing

    def __len__(self) -> int:
        return len(self._entries)

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "plugin": self.plugin_id,
            "started": self.started,
            "written": time.time(),
            "calls": len(self._entries),
            "limit_calls": self.calls,
            "limit_bytes": self.max_bytes,
            "dropped": self.dropped,
            "source": self.source,
            "secret_parameters": sorted(self._secret_any)
            + sorted(f"{c}.{p}" for c, ps in self._secret_by_command.items() for p in ps),
        }

    def to_bytes(self) -> bytes:
        """The recording as its file holds it (JSON lines)."""
        return b"\n".join([_encode(self.header()), *self._entries]) + b"\n"

    def status(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin_id,
            "recording": True,
            "calls": len(self._entries),
            "seen": self.seen,
            "dropped": self.dropped,
            "bytes": self._bytes,
            "limit_calls": self.calls,
            "limit_bytes": self.max_bytes,
            "path": str(self.path) if self.path is not None else None,
            "source": self.source,
            "started": self.started,
        }

    def save(self) -> Path | None:
        """Write the file (atomically); its path, or None without a state directory."""
        if self.path is None:
            return None
        seen = self.seen
        write_atomic(self.path, self.to_bytes())
        self._saved = seen
        return self.path


def _empty(default: Any) -> bool:
    """A default that carries no secret: None, or an empty or zero scalar."""
    return default is None or (type(default) in (bool, int, float, str, bytes) and not default)


def _same(value: Any, default: Any) -> bool:
    return value is default or (type(value) is type(default) and value == default)


def _at_defaults(params: dict[str, Any], soft: dict[str, Any]) -> bool:
    """Each of ``soft`` not given, or given its (empty) default (on the hot path: inlined)."""
    for name, default in soft.items():
        value = params.get(name, default)
        if value is not default and (type(value) is not type(default) or value != default):
            return False
    return True


def _redacted(
    command: str,
    params: dict[str, Any],
    result: Any,
    error: BaseException | None,
    seconds: float,
    version: str,
    plan: _Secrets,
) -> _Line:
    """A call that failed, carries a secret, or holds a value JSON cannot: its secret
    parameters redacted before anything else is done with them."""
    secret, soft = plan
    hidden = [
        k for k, v in params.items()
        if k in secret or (k in soft and not _same(v, soft[k]))
    ]  # fmt: skip
    if hidden:
        params = {k: (REDACTED if k in hidden else v) for k, v in params.items()}
    return _Line(
        _now(), command, params, result, None if error is None else error_of(error),
        seconds, version, hidden or None,
    )  # fmt: skip


def _not_json(line: _Line, params: Any, exc: Exception) -> None:
    if isinstance(params, dict):
        line.params = {k: repr(v) for k, v in params.items()}
    if line.error is not None:  # a message with a lone surrogate
        line.error = {
            k: v.encode(errors="backslashreplace").decode() for k, v in line.error.items()
        }
    line.result = None
    line.truncated = True
    line.note = f"not JSON: {exc}"


def _encoded(line: _Line) -> bytes:
    """A call's line; an answer past :data:`MAX_ENTRY` is kept without its value."""
    try:
        data = _encode(line)
    except _NOT_JSON as exc:  # a value JSON cannot hold (a lone surrogate, an int past 64 bits)
        _not_json(line, line.params, exc)
        data = _encode(line)
    if len(data) > MAX_ENTRY:
        line.result = None
        line.truncated = True
        data = _encode(line)
    return data


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def error_of(error: BaseException) -> dict[str, str]:
    """A failed call as a recording keeps it: the plugin's exception by its class name
    (a worker's too), the host's time limit as PluginTimeout, and the message."""
    name = type(error).__name__
    message = str(error)
    if isinstance(error, PlugbayError):
        name = str(error.details.get("exception") or name)
        message = str(error.message)
    if name == "CallTimeout":
        name, message = "PluginTimeout", f"ran past its time limit ({message} s)"
    return {"type": name, "message": message[:2000]}


class _Stored(msgspec.Struct):
    """What a recorded call's line must hold (the rest is optional; see read_recording)."""

    at: float
    command: str
    params: dict[str, Any]
    seconds: float
    version: str


_check_stored = msgspec.json.Decoder(_Stored).decode


def stored_calls(path: Path) -> list[bytes]:
    """The calls of a recording file, each its line as it is (a recorder goes on from
    them: checked, not decoded into calls and encoded again); a bad file is a
    PlugbayError naming the line, as :func:`read_recording` says it."""
    lines = _lines_of(path)
    for number, line in enumerate(lines[1:], start=2):
        try:
            _check_stored(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _bad(path, number, f"not a recorded call ({type(exc).__name__}: {exc})") from None
    return lines[1:]


def _lines_of(path: Path) -> list[bytes]:
    """A recording file's lines, its header checked."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise PlugbayError(
            f"cannot read the recording: {exc.strerror or exc}",
            where=str(path),
            hint="'plugbay record ID --export FILE' writes one",
        ) from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise PlugbayError("the recording is empty", where=str(path), hint="record some calls")
    try:
        header = msgspec.json.decode(lines[0])
    except msgspec.DecodeError as exc:
        raise _bad(path, 1, f"not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _bad(path, 1, f"not a plugbay recording (expected a header with format {FORMAT})")
    plugin = header.get("plugin")
    if not isinstance(plugin, str) or not plugin:
        raise _bad(path, 1, "the header names no plugin")
    return lines


def read_recording(path: Path) -> Recording:
    """A recording file, checked line by line; a bad file is a PlugbayError naming the line."""
    lines = _lines_of(path)
    header = msgspec.json.decode(lines[0])
    calls = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            entry = msgspec.json.decode(line)
            calls.append(
                RecordedCall(
                    at=float(entry["at"]),
                    command=str(entry["command"]),
                    params=dict(entry["params"]),
                    result=entry.get("result"),
                    error=entry.get("error"),
                    seconds=float(entry["seconds"]),
                    version=str(entry["version"]),
                    truncated=bool(entry.get("truncated", False)),
                    redacted=tuple(entry.get("redacted", ())),
                )
            )
        except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
            raise _bad(path, number, f"not a recorded call ({type(exc).__name__}: {exc})") from None
    return Recording(header["plugin"], calls, header)


def _bad(path: Path, line: int, what: str) -> PlugbayError:
    return PlugbayError(
        f"line {line} of the recording is {what}",
        where=f"{path}:{line}",
        hint="export the recording again with 'plugbay record ID --export FILE'",
    )
