"""A command line time limit that is no time (``plugbay replay --timeout 0``, a negative,
``inf``, ``nan``) is refused by the command line as a usage error naming its option
(exit code 2), before anything runs: it was refused later in ``Host(call_timeout=...)``'s
words, an argument the operator never wrote."""

from __future__ import annotations

import json
from pathlib import Path

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
