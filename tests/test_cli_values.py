"""A command line value of the wrong type or out of range, said in plugbay's words: the
option, the value given and what it takes, for every int, float and path option, as
text and as the ``--json`` usage error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from plugbay.cli import app
from plugbay.cli._values import expected_of
from tests._cli import plugbay


def _numeric_options() -> Iterator[tuple[tuple[str, ...], str, Any]]:
    """(command path, spelling, param) of every int and float option of every command."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            yield (*path, name), sub
            yield from walk(sub, (*path, name))

    for path, command in walk(typer.main.get_command(app), ()):
        for param in getattr(command, "params", []):
            expected = expected_of(param)
            if param.opts[0].startswith("--") and expected and "number" in expected:
                yield path, param.opts[0], param


NUMERIC = list(_numeric_options())


def test_every_numeric_option_is_found() -> None:
    spellings = {spelling for _, spelling, _ in NUMERIC}
    assert {"--limit", "--metrics-port", "--drain", "--interval", "--timeout"} <= spellings


@pytest.mark.parametrize(("path", "spelling", "param"), NUMERIC, ids=lambda a: str(a))
def test_a_value_that_is_no_number_names_the_option_value_and_what_it_takes(
    path: tuple[str, ...], spelling: str, param: Any, tmp_path: Path
) -> None:
    """Every such error said pydantic's "Input should be a valid integer, unable to parse
    string as an integer", with neither the value given nor the range the option takes."""
    done = CliRunner().invoke(app, [*path, spelling, "twelve"], env={"COLUMNS": "300"})
    assert done.exit_code == 2, done.output
    assert "Input should be" not in done.output
    assert f"'{spelling}'" in done.output
    assert f"'twelve' is not {expected_of(param)}" in done.output


def test_out_of_range_says_the_range_in_text(tmp_path: Path) -> None:
    done = plugbay("run", "--once", "--metrics-port", "70000", cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    said = " ".join(done.stderr.replace("│", " ").split())  # the box may wrap the line
    assert "'--metrics-port': '70000' is not a whole number from 0 to 65535" in said
    assert not (tmp_path / ".plugbay").exists()


def test_a_wrong_value_with_json_is_the_usage_error_in_plugbays_words(tmp_path: Path) -> None:
    done = plugbay("history", "--limit", "1.5", "--json", cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "usage_error" and error["where"] == "plugbay history"
    assert error["message"] == (
        "Invalid value for '--limit' / '-n': '1.5' is not a whole number from 1 to 10000"
    )


def test_a_negative_drain_says_what_drain_takes(tmp_path: Path) -> None:
    done = plugbay("run", "--once", "--drain=-0.5", cwd=tmp_path)
    assert done.returncode == 2
    assert "'-0.5' is not a number of 0 or more" in done.stderr


@pytest.mark.parametrize("http", ["nonsense", "127.0.0.1:99999", "localhost"])
def test_once_checks_an_http_it_does_not_serve(http: str, tmp_path: Path) -> None:
    """`run --http nonsense --once` started the plugins and exited 0: under --once the
    value was never read, and the same command line without --once was refused."""
    done = plugbay("run", "--once", "--http", http, "--plugins", "plugins", cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"'{http}' is not HOST:PORT" in done.stderr
    assert "--http 127.0.0.1:8750" in done.stderr  # what to write instead
    assert not (tmp_path / ".plugbay").exists()  # refused before anything started


def test_once_takes_a_public_http_it_does_not_serve(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    done = plugbay("run", "--once", "--http", "0.0.0.0:0", "--no-metrics", cwd=tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "0 active, 0 failed" in done.stdout
