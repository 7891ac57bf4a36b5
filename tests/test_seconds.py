"""A time limit means the same to the library and the command line (``model.seconds``):
``Host(call_timeout=...)`` and ``plugbay replay --timeout`` take the same values and
refuse the same ones, each in its own words (the library names its argument, the
command line its option, as a usage error)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from plugbay import Host, ParameterError
from plugbay.cli.app import app

GIVEN = ["0", "-0", "-1", "inf", "-inf", "nan", "1e-9", "0.3", "30", "1e300"]


def _replay_refuses(given: str) -> str | None:
    """What ``plugbay replay``'s command line says of ``--timeout given`` (typer's own
    parsing, with the option's callback), None when it takes it."""
    command = typer.main.get_command(app).commands["replay"]  # type: ignore[attr-defined]
    argv = ["calls.jsonl", "--version", "1.0.0", f"--timeout={given}"]
    try:
        ctx = command.make_context("replay", argv)
    except typer.BadParameter as exc:
        return str(exc.format_message())
    assert ctx.params["timeout"] == float(given)
    return None


def _host_refuses(given: str, tmp_path: Path) -> str | None:
    """What ``Host(call_timeout=given)`` says of it, None when it takes it."""
    try:
        Host(tmp_path, state_dir=tmp_path / "state", call_timeout=float(given))
    except ParameterError as exc:
        return exc.message
    return None


@pytest.mark.parametrize("given", GIVEN)
def test_the_command_line_and_the_library_take_the_same_time_limits(
    given: str, tmp_path: Path
) -> None:
    library, command_line = _host_refuses(given, tmp_path), _replay_refuses(given)
    assert (library is None) == (command_line is None), (library, command_line)
    assert (library is None) == (0 < float(given) < float("inf")), given
    if library is not None and command_line is not None:  # each in its own words
        assert library.startswith("call_timeout takes a number of seconds above 0")
        assert "--timeout takes a number of seconds above 0" in command_line
        assert "call_timeout" not in command_line
