"""What a Wasm module's trap says to its author: what went wrong, and where.

wasmtime's message holds a backtrace (one line per frame, named when the module kept
its names: ``plugbay build`` keeps them) and the cause. An author needs both in one
line: the cause, the functions it happened in, and, for a fault below address 0 (where
a C stack that overflows lands, the stack being first in memory), that it is one.
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["error_text", "first_line", "trap_text"]

#: a fault this far up the 32-bit address space is a stack pointer that went below 0
_BELOW_ZERO: Final = 0xF000_0000
_FAULT: Final = re.compile(r"memory fault at wasm address (0x[0-9a-f]+)")
_NUMBERED: Final = re.compile(r"^\d+:\s*")
#: frames named in the message, innermost first
_SHOWN: Final = 4


def trap_text(trap: Any) -> str:
    """``cause (detail), in f ← g ← h`` of a ``wasmtime.Trap``."""
    causes = _causes(str(trap.message))
    code = trap.trap_code
    named = code.name.lower().replace("_", " ") if code is not None else "a trap"
    cause = causes[-1].removeprefix("wasm trap: ") if causes else named
    fault = next((m for c in causes if (m := _FAULT.search(c))), None)
    if fault is not None and int(fault.group(1), 16) >= _BELOW_ZERO:
        cause += (
            f" at {fault.group(1)}, below address 0: its stack overflowed (deep recursion, "
            "or a large local array; the C stack is 64 KiB, more with "
            'cflags = ["-Wl,-z,stack-size=BYTES"])'
        )
    elif fault is not None:
        cause += f" at {fault.group(1)}"
    where = _where(getattr(trap, "frames", None) or [])
    return f"{cause}, in {where}" if where else cause


def _causes(message: str) -> list[str]:
    """The lines under wasmtime's "Caused by:", without their numbers."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if "Caused by:" not in lines:
        return lines[-1:]
    return [_NUMBERED.sub("", line) for line in lines[lines.index("Caused by:") + 1 :]]


def _where(frames: list[Any]) -> str:
    """``f ← g ← h`` (innermost first), a function calling itself said once."""
    names: list[str] = []
    for frame in frames:
        name = frame.func_name or f"function {frame.func_index}"
        if names and names[-1].removesuffix(" (recursing)") == name:
            names[-1] = f"{name} (recursing)"
            continue
        if len(names) == _SHOWN:
            names.append("…")
            break
        names.append(name)
    return " ← ".join(names)


def error_text(text: str) -> str:
    """The reason of a wasmtime error (its "Caused by" line), else its first line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Caused by:" in lines:
        after = lines[lines.index("Caused by:") + 1 :]
        if after:
            return after[0]
    return first_line(text)


def first_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else "a trap"
