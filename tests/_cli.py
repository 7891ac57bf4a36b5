"""The plugbay command run as a user runs it, for a test: a real process in ``cwd``, its
output captured and its exit code kept; plain, wide output so a test reads the text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

#: the command as the console script runs it, from this test run's interpreter
PLUGBAY = (sys.executable, "-m", "plugbay.cli")
#: no colour, no terminal tricks, and lines wide enough that a table does not wrap
PLAIN = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def cli_env(extra: Mapping[str, str] = {}, drop: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment with :data:`PLAIN` and ``extra`` over it, ``drop`` removed."""
    env = {**os.environ, **PLAIN, **extra}
    for name in drop:
        env.pop(name, None)
    return env


def run_cli(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``argv`` run to its end in ``cwd`` (``env`` defaults to :func:`cli_env`), ``stdin``
    its standard input."""
    return subprocess.run(
        list(argv),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(cli_env() if env is None else env),
        check=False,
    )


def plugbay(
    *args: str, cwd: Path, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``plugbay ARGS`` run to its end in ``cwd``."""
    return run_cli([*PLUGBAY, *args], cwd=cwd, timeout=timeout, stdin=stdin)


def start_plugbay(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """``plugbay ARGS`` started in ``cwd``, its output on pipes; the caller ends it."""
    return subprocess.Popen(
        [*PLUGBAY, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
