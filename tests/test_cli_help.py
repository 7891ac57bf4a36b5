"""Every ``--help`` of the plugbay command reads as written: no text eaten as markup,
no line broken where its source happened to wrap."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.errors import StyleSyntaxError
from rich.style import Style
from rich.text import Text
from typer import rich_utils
from typer.testing import CliRunner

from plugbay.cli import app
from tests._cli import plugbay

WIDTH = 100
_TAG = re.compile(r"(?<!\\)\[([^\[\]]*)\]")


def _subcommands(command: Any) -> dict[str, Any]:
    return dict(getattr(command, "commands", None) or {})  # a group has commands


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and group of the tree, from the root, walked (not listed by hand)."""
    yield path
    for name, sub in sorted(_subcommands(command).items()):
        yield from _commands(sub, (*path, name))


def _node(path: tuple[str, ...]) -> Any:
    command = typer.main.get_command(app)
    for name in path:
        command = _subcommands(command)[name]
    return command


PATHS = list(_commands(typer.main.get_command(app)))


def _texts(command: Any) -> list[str]:
    """The help strings a user reads on this command's --help page."""
    texts = [command.help or ""]
    texts += [getattr(p, "help", None) or "" for p in command.params]
    texts += [sub.help or "" for sub in _subcommands(command).values()]
    return [t for t in texts if t]


def markup_loss(text: str) -> list[str]:
    """What rich markup would eat from ``text``: a ``[...]`` that is not a style."""
    lost = []
    for tag in _TAG.findall(text):
        if tag.startswith("/"):
            continue
        try:
            Style.parse(tag)
        except StyleSyntaxError:
            lost.append(f"[{tag}]")
    return lost


def _last_column(line: str) -> int:
    """Where the last column of a panel row starts (after its last run of 2+ spaces)."""
    runs = list(re.finditer(r"\S(\s{2,})(?=\S)", line))
    return runs[-1].end(1) if runs else len(line) - len(line.lstrip("│ "))


def stray_breaks(page: str, width: int = WIDTH) -> list[str]:
    """Lines broken where the next word would still have fit: in the prose above the
    panels, and inside a panel's last column (a line of its own that typer adds, like
    '[default: …]', is not a break). Rich pads by one column on each side."""
    found = []
    lines = [line.rstrip() for line in page.splitlines()]
    for above, below in itertools.pairwise(lines):
        if not above.strip() or not below.strip():
            continue
        if above.startswith("│") and below.startswith("│"):
            room = len(above) - 2  # the right border, and the padding before it
            above, below = above.rstrip("│").rstrip(), below.rstrip("│").rstrip()
            start = len(below) - len(below.lstrip("│ "))
            if start != _last_column(above) or below[start] == "[":
                continue  # a new row, or typer's own metadata line
        elif not above.startswith(("╭", "╰", "│", "Usage")) and not below.startswith("╭"):
            room = width - 2
            start = len(below) - len(below.lstrip())
        else:
            continue
        first_word = below[start:].split(" ")[0]
        if len(above) + 1 + len(first_word) <= room:
            found.append(f"{above.strip()!r} / {below.strip()!r}")
    return found


def _page(path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(rich_utils, "MAX_WIDTH", WIDTH)
    monkeypatch.setattr(rich_utils, "COLOR_SYSTEM", None)
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="plugbay")
    assert result.exit_code == 0, result.output
    return result.output


def test_the_tree_is_walked() -> None:
    names = {p[-1] for p in PATHS if p}
    assert {
        "run",
        "list",
        "info",
        "call",
        "reload",
        "grant",
        "history",
        "token",
        "validate",
    } <= names
    assert () in PATHS  # the app itself


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "plugbay")
def test_help_reads_as_written(path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    command = _node(path)
    page = _page(path, monkeypatch)
    flat = " ".join(page.replace("│", " ").split())
    for text in _texts(command):
        assert not markup_loss(text), f"rich markup eats {markup_loss(text)} from {text!r}"
        shown = Text.from_markup(text).plain
        assert shown == Text.from_markup(text, emoji=False).plain, f"an emoji code in {text!r}"
        doubled = [line for line in shown.splitlines() if "  " in line.strip()]
        assert not doubled, f"a double space (markup eaten?) in {doubled}"
        first = " ".join(shown.split("\n\n")[0].split())
        if command.help == text or not path:
            assert first in flat or first[:60] in flat, f"{first!r} is not on the page"
    assert not stray_breaks(page), stray_breaks(page)


def test_a_colon_word_shows_as_written(tmp_path: Path) -> None:
    """'call:ID:' in `token create --help` was shown as 'call🆔' (rich's :id: emoji)."""
    result = plugbay("token", "create", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "call:ID:" in result.stdout
    assert "\N{SQUARED ID}" not in result.stdout


# --------------------------------------------------------------------------- the checks themselves


def test_the_checks_catch_what_the_old_help_did() -> None:
    assert markup_loss('Host config file with [plugins."id"] tables.') == ['[plugins."id"]']
    assert markup_loss("override the host's [policy] require-signed") == ["[policy]"]
    assert markup_loss('with \\[plugins."id"] tables, [bold]call[/] it') == []
    page = (
        " Grant a plugin a permission its manifest asks for (deny by default: only what is\n"
        " both asked for and granted is allowed).\n"
    )
    assert stray_breaks(page)
    wrapped = " " + "word " * 19 + "end\n more\n"
    assert not stray_breaks(wrapped)
    panel = (
        "│ grant     Grant a plugin a permission its manifest asks for (deny by default: only    │\n"
        "│           what is both asked for and granted is allowed).                              │\n"
    )
    assert not stray_breaks(panel)
    cut = (
        "│ validate  Analyze a plugin without running it: manifest, interface, command        │\n"
        "│           types, dependencies,                                                     │\n"
        "│           permissions, config. Exits 1 when there is an error.                     │\n"
    )
    assert stray_breaks(cut)
