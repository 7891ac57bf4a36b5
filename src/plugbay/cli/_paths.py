"""Paths as the user named them: under ``--state`` (or ``--plugins``) as typed, relative
when it was, not as the host resolved them, so every command's output (text and
``--json``) names a file the same way."""

from __future__ import annotations

from pathlib import Path

__all__ = ["as_given"]


def as_given(path: Path | str, *named: Path) -> str:
    """``path`` under the first of ``named`` (directories as the command line gave them)
    that holds it, spelt from that name; any other path as it is."""
    for directory in named:
        try:
            return str(directory / Path(path).relative_to(directory.resolve()))
        except ValueError:
            continue
    return str(path)
