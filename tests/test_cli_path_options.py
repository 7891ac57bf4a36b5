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
#: but `state backup --to`, which takes a directory to write into as well as a file
OF_ONE_KIND = [o for o in PATH_OPTIONS if o[1] != "--to"]


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
    ("path", "spelling", "takes", "directory"), OF_ONE_KIND, ids=lambda a: str(a)
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


def _said(done: Any) -> str:
    return " ".join(done.output.replace("│", " ").split())


def _invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(
        app, list(args), env={"COLUMNS": "400", "NO_COLOR": "1", **(env or {})}
    )


#: but `run` and `top`, which serve until stopped when let through (run: a subprocess below)
READ = [
    (p, s, t)
    for p, s, t, _ in PATH_OPTIONS
    if s in ("--config", "--key", "--from") and p not in (("run",), ("top",))
]


@pytest.mark.parametrize(("path", "spelling", "takes"), READ, ids=lambda a: str(a))
def test_a_file_to_read_that_does_not_exist_is_refused(
    path: tuple[str, ...], spelling: str, takes: str, tmp_path: Path
) -> None:
    """`list --config nothere.toml` (a typo) ran as if no config were given: without the
    user's policy, exit 0."""
    missing = tmp_path / "nothere.toml"
    done = _invoke(*path, spelling, str(missing))
    assert done.exit_code == 2, done.output
    assert f"'{spelling}'" in _said(done)
    assert f"'{missing}' does not exist; it takes {takes}: " in _said(done)


def test_a_config_named_in_the_environment_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    done = run_cli(
        [*PLUGBAY, "list", "--json"], cwd=tmp_path, env=cli_env({"PLUGBAY_CONFIG": "nothere.toml"})
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    message = json.loads(done.stdout)["error"]["message"]
    assert "'--config'" in message and "PLUGBAY_CONFIG" in message
    assert "'nothere.toml' does not exist; it takes a plugbay.toml file: check the path" in message


def test_the_unused_config_of_metrics_is_checked_and_still_hidden(tmp_path: Path) -> None:
    """`metrics --config` is hidden and no longer used, but a script passing one with a
    typo learns of it (it ran on, saying nothing of the path); one that is there runs."""
    missing = tmp_path / "nothere.toml"
    done = _invoke("metrics", "--config", str(missing), "--state", str(tmp_path))
    assert done.exit_code == 2, done.output
    said = _said(done)
    assert f"'{missing}' does not exist; it takes a plugbay.toml file: check the path" in said
    assert "leave the option out: it is no longer used" in said
    (tmp_path / "plugbay.toml").write_text("")
    there = _invoke("metrics", "--config", str(tmp_path / "plugbay.toml"), "--state", str(tmp_path))
    assert there.exit_code == 1 and "no host is running on" in _said(there)
    assert "--config" not in _invoke("metrics", "--help").output


@pytest.mark.parametrize(
    "args",
    [
        ("--config", "nothere.toml"),
        ("--state", ""),
        ("--plugins", ""),
    ],
)
def test_run_refuses_a_config_that_does_not_exist_and_an_empty_path(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    """On the lean path of `plugbay run`, `--config nothere.toml` was an error only once
    the host started (exit 1), `--state ''` a host on the current directory."""
    done = plugbay("run", "--once", "--no-http", "--no-metrics", *args, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    said = " ".join(done.stderr.replace("│", " ").split())
    assert f"'{args[0]}'" in said
    assert ("does not exist" if args[1] else "'' is an empty path") in said
    assert list(tmp_path.iterdir()) == []  # no state directory made anywhere


def test_run_refuses_a_config_in_the_environment_that_does_not_exist(tmp_path: Path) -> None:
    done = run_cli(
        [*PLUGBAY, "run", "--once", "--no-http", "--no-metrics"],
        cwd=tmp_path,
        env=cli_env({"PLUGBAY_CONFIG": "nothere.toml"}),
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "'nothere.toml' does not exist" in " ".join(done.stderr.replace("│", " ").split())


def test_index_build_of_a_file_says_it_is_a_file(tmp_path: Path) -> None:
    """It said "there is no such directory" of a file that is there."""
    (tmp_path / "afile").write_text("")
    done = _invoke("index", "build", str(tmp_path / "afile"))
    assert done.exit_code == 2, done.output
    assert "Invalid value for 'DIR':" in _said(done)  # as the usage line calls it
    assert (
        f"'{tmp_path / 'afile'}' is a file; it takes a directory of plugin wheels: "
        "name a directory instead"
    ) in _said(done)


@pytest.mark.parametrize(("command", "spelling"), [("info", "--sbom"), ("record", "--export")])
def test_a_file_to_write_in_a_directory_that_does_not_exist_is_refused_up_front(
    command: str, spelling: str, tmp_path: Path
) -> None:
    """`info --sbom missing/x.json` and `record --export missing/x` did their work first
    and only then failed to write (or said something else entirely)."""
    target = tmp_path / "missing" / "x.json"
    done = _invoke(command, "acme.anything", spelling, str(target), "--state", str(tmp_path))
    assert done.exit_code == 2, done.output
    assert f"'{spelling}'" in _said(done)
    assert (
        f"'{target}' is in '{target.parent}', which does not exist; it takes a file to write: "
        f"create '{target.parent}' first"
    ) in _said(done)


EMPTY = [(p, s, t) for p, s, t, _ in PATH_OPTIONS]


@pytest.mark.parametrize(("path", "spelling", "takes"), EMPTY, ids=lambda a: str(a))
def test_an_empty_path_is_refused(path: tuple[str, ...], spelling: str, takes: str) -> None:
    """typer reads '' as '.': `list --state ''` listed the current directory's host."""
    done = _invoke(*path, spelling, "")
    assert done.exit_code == 2, done.output
    assert f"'{spelling}'" in _said(done)
    assert f"'' is an empty path; it takes {takes}: name one" in _said(done)


def test_an_empty_path_argument_is_refused(tmp_path: Path) -> None:
    """`validate ''` validated the current directory."""
    done = _invoke("validate", "", "--no-import")
    assert done.exit_code == 2, done.output
    assert "'' is an empty path; it takes a path: name one" in _said(done)
