"""A count and its noun as a reader says them: ``1 package``, ``2 packages``."""

from __future__ import annotations

__all__ = ["counted"]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 package"``, ``"0 packages"``; ``plural`` for a noun not made with an s
    (``counted(n, "difference")`` needs none; ``counted(n, "entry", "entries")``)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
