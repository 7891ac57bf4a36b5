"""A path option naming the wrong kind of thing (a file where a directory is needed, a
directory where a file is) is refused before the command runs, naming the option, the
value given and what the option takes: typer takes any string for a path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from plugbay.cli import app
from plugbay.cli._path_options import _TAKES
from plugbay.cli._values import expected_of
from tests._cli import PLUGBAY, cli_env, plugbay, run_cli


def _path_options() -> Iterator[tuple[tuple[str, ...], str, str, bool]]:
    """(command path, spelling, what it takes, a directory?) of every path option whose
    kind is known, in every command."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            yield (*path, name), sub
            yield from walk(sub, (*path, name))

    for path, command in walk(typer.main.get_command(app), ()):
        for param in getattr(command, "params", []):
            spelling = param.opts[0]
            if spelling in _TAKES and (expected_of(param) or "").startswith("a path"):
                yield (path, spelling, *_TAKES[spelling])


PATH_OPTIONS = list(_path_options())


def test_every_path_option_of_every_command_is_found() -> None:
    found = {(" ".join(path), spelling) for path, spelling, _, _ in PATH_OPTIONS}
    assert {
        ("run", "--state"),
        ("list", "--plugins"),
        ("env gc", "--config"),
        ("keygen", "--dir"),
        ("build", "--out"),
        ("info", "--sbom"),
        ("record", "--export"),
        ("verify", "--key"),
        ("state restore", "--state"),
    } <= found
    assert len(found) > 100


@pytest.mark.parametrize(
    ("path", "spelling", "takes", "directory"), PATH_OPTIONS, ids=lambda a: str(a)
)
def test_a_path_of_the_wrong_kind_names_the_option_the_value_and_what_it_takes(
    path: tuple[str, ...], spelling: str, takes: str, directory: bool, tmp_path: Path
) -> None:
    """`list --state notes.txt` said "no host is running on notes.txt" and listed the
    plugins, `--plugins plugbay.toml` "the plugins directory does not exist", `keygen
    --dir notes.txt` a traceback (FileExistsError)."""
    wrong = tmp_path / ("notes.txt" if directory else "a-directory")
    wrong.write_text("") if directory else wrong.mkdir()
    done = CliRunner().invoke(
        app, [*path, spelling, str(wrong)], env={"COLUMNS": "400", "NO_COLOR": "1"}
    )
    said = " ".join(done.output.replace("│", " ").split())
    assert done.exit_code == 2, done.output
    assert f"'{spelling}'" in said
    kind = "a file" if directory else "a directory"
    assert f"'{wrong}' is {kind}; it takes {takes}: name " in said


def test_run_refuses_a_state_file_before_it_starts(tmp_path: Path) -> None:
    """`plugbay run` reads its options on its own lean path: `--state notes.txt` was an
    internal error (FileExistsError) there, with a traceback in a file."""
    (tmp_path / "notes.txt").write_text("kept\n")
    done = plugbay(
        "run", "--once", "--no-http", "--no-metrics", "--state", "notes.txt", cwd=tmp_path
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    said = " ".join(done.stderr.replace("│", " ").split())
    assert "'--state'" in said and "'notes.txt' is a file; it takes a state directory" in said
    assert "internal error" not in said
    assert (tmp_path / "notes.txt").read_text() == "kept\n"


def test_the_json_error_names_the_option_from_the_environment_too(tmp_path: Path) -> None:
    (tmp_path / "plugins.txt").write_text("")
    done = run_cli(
        [*PLUGBAY, "list", "--json"], cwd=tmp_path, env=cli_env({"PLUGBAY_PLUGINS": "plugins.txt"})
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "usage_error"
    assert "'--plugins'" in error["message"] and "PLUGBAY_PLUGINS" in error["message"]
    assert "'plugins.txt' is a file; it takes a plugins directory" in error["message"]
