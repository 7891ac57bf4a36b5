"""Small text utilities (no plugbay imports): the engine of ``utility.formatters``."""

from __future__ import annotations

import re
import textwrap
import unicodedata

__all__ = ["normalize", "sentence_case", "table", "truncate", "wrap"]

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})
_SENTENCE_START = re.compile(r"(^|[.?!]\s+)([a-z])")
_LONE_I = re.compile(r"\bi\b")


def normalize(text: str) -> str:
    """NFC, straight quotes, single spaces, no leading or trailing space."""
    return " ".join(unicodedata.normalize("NFC", text).translate(_QUOTES).split())


def wrap(text: str, width: int = 72) -> str:
    """Wrap to ``width`` columns (at least 10)."""
    if width < 10:
        raise ValueError(f"width must be at least 10 columns, got {width}")
    return "\n".join(textwrap.wrap(normalize(text), width=width, break_long_words=True))


def sentence_case(text: str) -> str:
    """'I AM SORRY TO HEAR YOU ARE SAD. WHY' -> 'I am sorry to hear you are sad. Why'."""
    lowered = normalize(text).lower()
    lowered = _LONE_I.sub("I", lowered)
    lowered = re.sub(r"\bi'(m|ve|ll|d)\b", lambda m: "I'" + m.group(1), lowered)
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), lowered)


def table(rows: list[dict[str, object]]) -> str:
    """An aligned plain-text table; the header is every key, in first-seen order."""
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    cells = [[str(c) for c in columns]] + [
        ["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def truncate(text: str, limit: int, ellipsis: str = "\u2026") -> str:
    """At most ``limit`` characters, ending with ``ellipsis`` when cut."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    if len(text) <= limit:
        return text
    if limit <= len(ellipsis):
        return ellipsis[:limit]
    return text[: limit - len(ellipsis)] + ellipsis
