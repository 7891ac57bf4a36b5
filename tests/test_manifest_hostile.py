"""Manifests written to mislead or by mistake: ids with invisible or look-alike
characters and files that are not UTF-8 are refused at their file and line, saying
what is wrong, and every other plugin still loads."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay.model.discover import discover_directory
from tests._cli import plugbay
from tests.conftest import PluginFactory

HIDDEN = [
    # TOML escapes: the id as its author's editor shows it looks fine
    ('"acme.evil\\n"', "U+000A"),  # a newline at the end: '$' matched before it
    ('"acme.ev\\u200bil"', "U+200B (ZERO WIDTH SPACE)"),
    ('"\\u0430cme.evil"', "U+0430 (CYRILLIC SMALL LETTER A)"),
]


@pytest.mark.parametrize(("spelled", "named"), HIDDEN, ids=["newline", "zero-width", "cyrillic"])
def test_an_id_with_a_hidden_character_is_refused_naming_the_character(
    plugins: PluginFactory, spelled: str, named: str
) -> None:
    manifest = f'id = {spelled}\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
    directory = plugins("acme.evil", manifest=manifest)
    found = discover_directory(plugins.root)
    assert not found.manifests
    (error,) = found.problems
    assert error.where == f"{directory / 'plugin.toml'}:1"
    assert "is not a valid plugin id" in error.message
    assert named in error.message  # what to delete, though it cannot be seen
    assert error.message.isascii()  # the id as printed shows it too (\u200b, \n)


@pytest.mark.parametrize("table", ["dependencies", "optional-dependencies"])
def test_a_dependency_id_with_a_newline_is_refused_at_its_line(
    plugins: PluginFactory, table: str
) -> None:
    directory = plugins("acme.app", extra=f'[{table}]\n"acme.lib\\n" = "^1"\n')
    (error,) = discover_directory(plugins.root).problems
    assert error.message.startswith(f"'acme.lib\\n' in [{table}] is not a valid plugin id")
    assert "U+000A" in error.message
    assert error.where == f"{directory / 'plugin.toml'}:6"


async def test_a_hidden_character_id_does_not_load_and_the_others_do(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    plugins("acme.good")
    plugins(
        "acme.evil",
        manifest='id = "acme.good\\n"\nversion = "9.0.0"\ntype = "utility"\nentry = "main:P"\n',
    )
    async with make_host() as host:
        assert sorted(p.id for p in host.plugins()) == ["acme.good"]
        assert await host.call("acme.good", "ping") == "pong from acme.good 1.0.0"
        (problem,) = host.problems
        assert "U+000A" in problem.message and problem.where.endswith("plugin.toml:1")


def test_a_manifest_saved_in_latin1_is_refused_at_the_line_of_the_byte(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    directory = plugins("acme.cafe", extra='name = "ok"\ndescription = "café"\n')
    manifest = directory / "plugin.toml"
    manifest.write_bytes(manifest.read_text().encode("latin-1"))
    (error,) = discover_directory(plugins.root).problems
    assert error.where == f"{manifest}:6"
    assert "byte 0xe9 on line 6 is not UTF-8" in error.message
    assert error.hint == "save the file as UTF-8, as TOML requires"
    shown = plugbay("validate", str(directory), "--no-import", cwd=tmp_path)
    assert shown.returncode == 1
    assert f"{manifest}:6: error[manifest] cannot read the manifest: byte 0xe9" in shown.stdout
    assert "fix: save the file as UTF-8" in shown.stdout


def test_a_manifest_with_a_byte_order_mark_says_so(plugins: PluginFactory) -> None:
    directory = plugins("acme.bom")
    manifest = directory / "plugin.toml"
    manifest.write_text(manifest.read_text(), encoding="utf-8-sig")  # Notepad's "UTF-8"
    (error,) = discover_directory(plugins.root).problems
    assert error.where == f"{manifest}:1"
    assert error.message == (
        "the manifest starts with a byte-order mark (U+FEFF), which TOML does not allow"
    )
    assert error.hint is not None and "without a BOM" in error.hint


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_named_pyproject_toml_does_not_hang_discovery(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.good")
    (plugins.root / "trap").mkdir()
    os.mkfifo(plugins.root / "trap" / "pyproject.toml")  # opening it waits for a writer
    # bounded: before the fix this waited for ever (subprocess.TimeoutExpired)
    shown = plugbay("deps", "--state", str(tmp_path / "state"), cwd=tmp_path, timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "acme.good → 1.0.0" in shown.stdout


def test_an_event_name_or_a_new_plugins_id_ending_in_a_newline_is_refused(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """The event names of [events] and the id 'plugbay new' takes had the same '$' as the
    manifest's id: a name with a newline at its end was taken."""
    plugins("acme.evil", extra='[events]\nemits = ["order.placed\\n"]\n')
    found = discover_directory(plugins.root)
    assert not found.manifests
    (error,) = found.problems
    assert "is not a valid event name" in error.message
    made = plugbay("new", "acme.fresh\n", "--dir", str(tmp_path / "new"), cwd=tmp_path)
    assert made.returncode != 0
    assert "is not a valid plugin id" in made.stdout + made.stderr
    assert not (tmp_path / "new").exists()
