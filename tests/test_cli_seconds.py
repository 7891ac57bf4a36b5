"""A command line time limit that is no time (``plugbay replay --timeout 0``, a negative,
``inf``, ``nan``) is refused by the command line as a usage error naming its option
(exit code 2), before anything runs: it was refused later in ``Host(call_timeout=...)``'s
words, an argument the operator never wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests._cli import plugbay


@pytest.mark.parametrize("given", ["0", "-1", "inf", "nan"])
def test_replay_refuses_a_timeout_that_is_no_time(given: str, tmp_path: Path) -> None:
    done = plugbay(
        "replay", "calls.jsonl", "--version", "1.0.0", f"--timeout={given}", cwd=tmp_path
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    said = " ".join(done.stderr.replace("│", " ").split())  # the box may wrap the line
    assert "'--timeout'" in said
    assert "--timeout takes a number of seconds above 0 (e.g. --timeout 30" in said
    assert "call_timeout" not in said
    assert not (tmp_path / ".plugbay").exists()  # refused before anything started


def test_replay_refuses_a_zero_timeout_in_json_as_a_usage_error(tmp_path: Path) -> None:
    done = plugbay(
        "replay", "calls.jsonl", "--version", "1.0.0", "--timeout", "0", "--json", cwd=tmp_path
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "usage_error" and error["where"] == "plugbay replay"
    assert error["message"] == (
        "Invalid value for '--timeout': 0 is no time limit: --timeout takes a number of "
        "seconds above 0 (e.g. --timeout 30; leave it out for the default)"
    )


def _float_options() -> list[tuple[list[str], str]]:
    """Every float option of every command (the command's words, the option), with the
    command's required arguments and options filled: a new one is walked too."""
    import typer.main

    from plugbay.cli.app import app

    found: list[tuple[list[str], str]] = []

    def walk(command: Any, words: list[str]) -> None:
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            walk(sub, [*words, name])
        filled = [
            value
            for p in command.params
            if p.required
            for value in (["x"] if p.param_type_name == "argument" else [p.opts[0], "1.0.0"])
        ]
        for p in command.params:
            descriptor = getattr(p, "type_descriptor", None)
            if getattr(descriptor, "annotation", None) is float:
                found.append(([*words, *filled], p.opts[0]))

    walk(typer.main.get_command(app), [])
    return found


FLOAT_OPTIONS = _float_options()


def test_every_float_option_is_walked() -> None:
    assert ("--drain" in {option for _, option in FLOAT_OPTIONS}) and len(FLOAT_OPTIONS) >= 6


@pytest.mark.parametrize("given", ["nan", "inf"])
@pytest.mark.parametrize(("words", "option"), FLOAT_OPTIONS, ids=[o for _, o in FLOAT_OPTIONS])
def test_a_float_option_refuses_nan_and_inf_as_a_usage_error(
    words: list[str], option: str, given: str, tmp_path: Path
) -> None:
    """``plugbay run --drain nan`` passed typer's ``min=0`` (nan compares false with
    every bound): each float option refuses a value that is no number, naming itself."""
    # --once --no-http --no-metrics: were it not refused, a run ends and binds no port
    once = ["--once", "--no-http", "--no-metrics"] if words[0] == "run" else []
    done = plugbay(*words, *once, f"{option}={given}", cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    said = " ".join(done.stderr.replace("│", " ").split())
    assert re.search(f"Invalid value for '{option}'[^:]*: '?{given}'? is no", said), said
    assert not (tmp_path / ".plugbay").exists()  # refused before anything started
