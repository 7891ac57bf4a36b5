"""The host config's ``[python]`` table refused with the file it is in and what to write
instead, by every command that reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._cli import plugbay

WRONG = [
    pytest.param(
        'offline = "yes"',
        "[python] offline must be true or false, not 'yes'",
        "write offline = true or offline = false (unquoted) under [python] in plugbay.toml",
        id="offline",
    ),
    pytest.param(
        "allow-direct-references = 1",
        "[python] allow-direct-references must be true or false, not 1",
        "write allow-direct-references = true or allow-direct-references = false (unquoted) "
        "under [python] in plugbay.toml",
        id="allow-direct-references",
    ),
    pytest.param(
        "index-url = 3",
        "[python] index-url must be a string, not 3",
        'quote the URL of a simple index: index-url = "https://…/simple" under [python] in '
        "plugbay.toml",
        id="index-url",
    ),
    pytest.param(
        "find-links = [1]",
        "[python] find-links must be a list of paths or URLs, not [1]",
        'write find-links = ["/srv/wheels"], each directory (or URL) of wheels quoted, under '
        "[python] in plugbay.toml (a relative directory is taken from the file's)",
        id="find-links",
    ),
]


@pytest.mark.parametrize(("line", "message", "hint"), WRONG)
def test_a_wrong_python_value_says_what_to_write_and_in_which_file(
    line: str, message: str, hint: str, tmp_path: Path
) -> None:
    """`offline must be true or false` and its kin said neither what to write instead nor
    (beyond "at plugbay.toml") where to write it."""
    (tmp_path / "plugbay.toml").write_text(f"[python]\n{line}\n")
    done = plugbay("env", "list", "--json", cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    error = json.loads(done.stdout)["error"]
    assert (error["code"], error["where"]) == ("config_invalid", "plugbay.toml")
    assert (error["message"], error["hint"]) == (message, hint)


def test_python_that_is_no_table_says_how_to_write_it(tmp_path: Path) -> None:
    (tmp_path / "plugbay.toml").write_text('python = "3.12"\n')
    done = plugbay("doctor", cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.strip() == (
        "error: [python] must be a table, not '3.12' (at plugbay.toml). write it as a "
        "[python] section of key = value lines in plugbay.toml (docs/environments.md, For "
        "operators, lists them)"
    )
