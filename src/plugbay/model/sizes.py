"""Sizes in words, as the operator reads them: ``7.7 MiB``, ``256 MiB``, ``12 KiB``.

The one formatter of a byte count for a message (a storage quota, a memory limit, what a
data directory holds); :func:`plugbay.model.manifest.parse_size` reads the other way.
MiB from 1 MiB up, as limits are written (``memory = "1024MiB"`` reads back as
``1024 MiB``), with one decimal at most and none when it is whole.
"""

from __future__ import annotations

from typing import Final

__all__ = ["size_text"]

_UNITS: Final = ((1 << 20, "MiB"), (1 << 10, "KiB"))


def size_text(value: float | None, *, none: str = "unlimited") -> str:
    """``value`` bytes in words (``none`` for None): ``7.7 MiB``, ``512 KiB``, ``10 bytes``."""
    if value is None:
        return none
    for scale, unit in _UNITS:
        if abs(value) >= scale:
            shown = f"{value / scale:.1f}".removesuffix(".0")
            return f"{shown} {unit}"
    return f"{value:g} bytes"
