"""The audit file's format: one JSON entry a line, each linked to the one before by hash.

An entry is ``{"seq", "time", "kind", "source", "data", "prev", "hash"}``:
``seq`` counts from 1, ``prev`` is the previous entry's ``hash`` (64 zeros for
the first), and ``hash`` is the SHA-256 of the entry's canonical JSON (sorted
keys, no spaces, ASCII) without ``hash``. Changing, removing, inserting or
reordering an entry breaks the chain at that entry.

A line that is not an entry (a write cut short by a crash, or damage) can only
be passed over by a *resume marker*: the entry ``security.audit.resumed``
that the plugin writes when it finds such lines at the end of the file on
start. It names how many lines it passes over and links to the last good
entry, so the chain stays unbroken around them. Anywhere else an unreadable
line breaks the chain.

Nothing here imports plugbay: this module is the format, the plugin is the policy.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

GENESIS: Final = "0" * 64
RESUMED: Final = "security.audit.resumed"
OPENED: Final = "security.audit.opened"
#: kinds only the trail itself writes
RESERVED: Final = "security.audit."
SOURCE: Final = "core.security"
_BLOCK: Final = 64 * 1024


class AuditEntry(TypedDict):
    """One line of the audit trail."""

    seq: int
    time: float
    kind: str
    source: str
    data: dict[str, Any]
    prev: str
    hash: str


class AuditVerdict(TypedDict):
    """What ``verify`` found: ``first_bad_seq`` is where the chain stops being trustworthy."""

    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str | None


def canonical(value: Any) -> str:
    """The one JSON text of ``value`` that is hashed (and written)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("ascii")).hexdigest()


def jsonable(data: Any) -> dict[str, Any]:
    """``data`` as it will read back from the file, so its hash is over what is stored."""
    text = json.dumps(data, default=str, ensure_ascii=True)
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def make_entry(
    seq: int, when: float, kind: str, source: str, data: dict[str, Any], prev: str
) -> AuditEntry:
    body: dict[str, Any] = {
        "seq": seq,
        "time": float(when),
        "kind": kind,
        "source": source,
        "data": jsonable(data),
        "prev": prev,
    }
    return {**body, "hash": digest(body)}  # type: ignore[typeddict-item]


def encode(entry: AuditEntry) -> bytes:
    return (json.dumps(entry, ensure_ascii=True) + "\n").encode("ascii")


def parse(line: bytes | str) -> AuditEntry | None:
    """The entry on ``line``, or None when the line is not a well-formed entry."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    ok = (
        type(value.get("seq")) is int
        and isinstance(value.get("time"), int | float)
        and not isinstance(value.get("time"), bool)
        and all(isinstance(value.get(k), str) for k in ("kind", "source", "prev", "hash"))
        and isinstance(value.get("data"), dict)
        and len(value) == 7
    )
    return value if ok else None  # type: ignore[return-value]


# --------------------------------------------------------------------------- reading


def reverse_lines(path: Path, size: int | None = None) -> Iterator[bytes]:
    """The lines of the first ``size`` bytes of ``path``, last first, without line ends.

    Reads backwards a block at a time, so the end of a large file costs little.
    An unterminated last line is yielded like the others.
    """
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END) if size is None else size
        rest = b""
        position = end
        first = True
        while position > 0:
            step = min(_BLOCK, position)
            position -= step
            f.seek(position)
            block = f.read(step) + rest
            lines = block.split(b"\n")
            rest = lines.pop(0)
            if first:
                first = False
                if lines and lines[-1] == b"":
                    lines.pop()  # the file ends with a newline
            yield from reversed(lines)
        if end > 0:
            yield rest


def forward_lines(path: Path, size: int) -> Iterator[bytes]:
    """The lines of the first ``size`` bytes of ``path``, without line ends."""
    with path.open("rb") as f:
        remaining = size
        while remaining > 0:
            line = f.readline(remaining)
            if not line:
                return
            remaining -= len(line)
            yield line.rstrip(b"\n")


@dataclass(frozen=True, slots=True)
class Tail:
    """Where the chain stands at the end of a file: what to continue from."""

    seq: int
    prev: str
    #: unreadable lines after the last good entry (a resume marker must pass over them)
    unreadable: int
    #: the file does not end with a newline (a cut-short write)
    unterminated: bool


def tail(path: Path) -> Tail:
    if not path.exists():
        return Tail(0, GENESIS, 0, False)
    size = path.stat().st_size
    if size == 0:
        return Tail(0, GENESIS, 0, False)
    with path.open("rb") as f:
        f.seek(size - 1)
        unterminated = f.read(1) != b"\n"
    unreadable = 0
    for line in reverse_lines(path, size):
        entry = parse(line)
        if entry is not None:
            return Tail(entry["seq"], entry["hash"], unreadable, unterminated)
        if line.strip():
            unreadable += 1
    return Tail(0, GENESIS, unreadable, unterminated)


# --------------------------------------------------------------------------- verifying


def verify(lines: Iterable[bytes]) -> AuditVerdict:
    """Check a whole chain, first line to last. See the module docstring.

    ``entries`` counts every well-formed entry in the file, also past a break.
    """
    expected_seq, expected_prev = 1, GENESIS
    entries = 0
    broken: tuple[int, str] | None = None
    pending: list[int] = []  # line numbers of unreadable lines not yet passed over
    for number, line in enumerate(lines, start=1):
        entry = parse(line)
        if entry is None:
            if line.strip():
                pending.append(number)
            continue
        entries += 1
        if broken is None:
            broken = _check(entry, expected_seq, expected_prev, pending)
            expected_seq, expected_prev = entry["seq"] + 1, entry["hash"]
        pending.clear()
    if broken is None and pending:
        broken = (expected_seq, _unreadable(pending[0]))
    if broken is None:
        return {"ok": True, "entries": entries, "first_bad_seq": None, "reason": None}
    return {"ok": False, "entries": entries, "first_bad_seq": broken[0], "reason": broken[1]}


def _check(
    entry: AuditEntry, expected_seq: int, expected_prev: str, pending: list[int]
) -> tuple[int, str] | None:
    """Why the chain breaks at ``entry`` (the seq to blame and the reason), or None."""
    if pending:
        passes_over = (
            entry["kind"] == RESUMED
            and entry["source"] == SOURCE
            and entry["data"].get("skipped_lines") == len(pending)
        )
        if not passes_over:
            return expected_seq, _unreadable(pending[0])
    if digest(dict(entry)) != entry["hash"]:
        return entry["seq"], "entry altered: hash does not match"
    seq = entry["seq"]
    if seq > expected_seq:
        return expected_seq, f"entries missing: expected seq {expected_seq}, found {seq}"
    if seq < expected_seq:
        return seq, f"out of order: seq {seq} after seq {expected_seq - 1}"
    if entry["prev"] != expected_prev:
        # This entry is intact, so the one before it changed (re-hashed to look whole)
        # or was swapped for another: blame that one.
        return max(seq - 1, 1), (
            f"chain broken: prev does not match (entry {seq} recorded a different hash "
            "for the entry before it)"
        )
    return None


def _unreadable(line: int) -> str:
    return f"line {line} is not a complete audit entry (truncated or altered)"
