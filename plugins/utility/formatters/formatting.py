"""Plain-text helpers shared by plugins: normalise, wrap, sentence case, tables, truncation.

Pure functions of their arguments: no I/O, no state, no plugbay import.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Mapping, Sequence

__all__ = ["MIN_WIDTH", "normalize", "sentence_case", "table", "truncate", "wrap"]

#: The narrowest width :func:`wrap` accepts.
MIN_WIDTH = 10

_QUOTES = str.maketrans(
    {
        "\u2018": "'",  # LEFT SINGLE QUOTATION MARK
        "\u2019": "'",  # RIGHT SINGLE QUOTATION MARK
        "\u201a": "'",  # SINGLE LOW-9 QUOTATION MARK
        "\u201b": "'",  # SINGLE HIGH-REVERSED-9 QUOTATION MARK
        "\u201c": '"',  # LEFT DOUBLE QUOTATION MARK
        "\u201d": '"',  # RIGHT DOUBLE QUOTATION MARK
        "\u201e": '"',  # DOUBLE LOW-9 QUOTATION MARK
        "\u201f": '"',  # DOUBLE HIGH-REVERSED-9 QUOTATION MARK
    }
)
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_SENTENCE_END = frozenset(".?!")
_CLOSERS = frozenset("\"')]}\u00bb\u2019\u201d")  # may stand between "." and the space
# A lone "i" (also in "i'm", "i've"), but not the "i" of "i.e.".
_PRONOUN_I = re.compile(r"(?<![\w'])i(?![\w]|\.\w)")


def normalize(text: str) -> str:
    """One line of clean text: NFC, straight quotes, single spaces, no outer space.

    Curly single and double quotes (including the low-9 forms) become ``'`` and
    ``"``; every run of Unicode whitespace, line breaks included, becomes one space.
    """
    return " ".join(unicodedata.normalize("NFC", text).translate(_QUOTES).split())


def wrap(text: str, width: int = 72) -> str:
    """``text`` wrapped to lines of at most ``width`` columns.

    Blank lines separate paragraphs and are kept (one blank line each); within a
    paragraph, runs of whitespace count as one space. Words longer than a line
    are broken.
    """
    if isinstance(width, bool) or not isinstance(width, int):
        raise TypeError(f"width must be an int, got {type(width).__name__}")
    if width < MIN_WIDTH:
        raise ValueError(f"width must be at least {MIN_WIDTH} columns, got {width}")
    paragraphs = (" ".join(p.split()) for p in _PARAGRAPH_BREAK.split(text))
    return "\n\n".join(
        textwrap.fill(p, width=width, break_long_words=True, break_on_hyphens=True)
        for p in paragraphs
        if p
    )


def _capital(char: str) -> str:
    upper = char.upper()
    return upper if len(upper) == 1 else char  # "ß" has no one-letter capital


def sentence_case(text: str) -> str:
    """``"I AM SAD.  WHY DO YOU ASK"`` → ``"I am sad. Why do you ask"``.

    Lower-cases the text, then capitalises its first letter, the first letter
    after a ``.``, ``?`` or ``!`` that is followed by whitespace, and the pronoun
    "I" (with its contractions: "I'm", "I've"). A digit before the first letter
    of a sentence ("3 WAYS") leaves it alone. For reading, runs of spaces and
    tabs become one space and lines lose outer spaces; line breaks are kept.
    """
    text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    out: list[str] = []
    capitalise = True  # the next letter starts a sentence
    after_end = False  # just passed a ., ? or !
    for char in text.lower():
        if char.isalpha():
            if capitalise:
                char = _capital(char)
                capitalise = False
            after_end = False
        elif char.isdigit():
            capitalise = after_end = False
        elif char in _SENTENCE_END:
            after_end = True
        elif char.isspace():
            if after_end:
                capitalise = True
                after_end = False
        elif char not in _CLOSERS:
            after_end = False
        out.append(char)
    return _PRONOUN_I.sub("I", "".join(out))


def _cell(value: object) -> str:
    return "" if value is None else " ".join(str(value).split())


def _width(text: str) -> int:
    """Terminal columns: wide East Asian characters take two, combining marks none."""
    columns = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        columns += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return columns


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def table(rows: Sequence[Mapping[str, object]]) -> str:
    """An aligned plain-text table of ``rows``, or ``""`` when there are none.

    The header is the union of the rows' keys in first-seen order; a row without
    a key gets an empty cell, as does ``None``. Whitespace inside a value becomes
    single spaces, so every row stays on one line. Widths count terminal columns,
    so wide (CJK) characters and combining accents line up.

    >>> print(table([{"name": "ELIZA", "year": 1966}, {"name": "PARRY", "year": 1972}]))
    name   year
    -----  ----
    ELIZA  1966
    PARRY  1972
    """
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    if not keys:
        return ""
    widths = [0] * len(keys)
    lines = [[_cell(key) for key in keys]]
    lines.extend([_cell(row.get(key)) for key in keys] for row in rows)
    for cells in lines:
        widths = [max(w, _width(c)) for w, c in zip(widths, cells, strict=True)]
    lines.insert(1, ["-" * w for w in widths])
    return "\n".join(
        "  ".join(_pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip()
        for cells in lines
    )


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``ellipsis`` when cut.

    The cut backs off trailing whitespace (``"hello…"``, not ``"hello …"``) and
    never leaves a combining mark without its letter. When ``limit`` leaves no
    room for text before the ellipsis, the answer is the ellipsis (cut to
    ``limit``): the mark that something was cut matters more than a letter.
    """
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, got {type(limit).__name__}")
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    if len(text) <= limit:
        return text
    if limit <= len(ellipsis):
        return ellipsis[:limit]
    keep = limit - len(ellipsis)
    while keep > 0 and unicodedata.combining(text[keep]):
        keep -= 1  # do not separate a letter from its accent
    return text[:keep].rstrip() + ellipsis
