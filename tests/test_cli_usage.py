"""The command line as a new user meets it: every command in docs/cli.md with the options
it really has, and the errors a mistyped command line gets (as text, or with ``--json``
in the common error shape on stdout)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer import rich_utils
from typer.testing import CliRunner

from plugbay.cli import app
from tests._cli import plugbay

DOCS = Path(__file__).resolve().parents[1] / "docs"
CLI_MD = DOCS / "cli.md"
#: the options every host command shares, described once under the tables of docs/cli.md
SHARED = {"--help", "-h", "--plugins", "-p", "--state", "--config", "-c"}
_OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield (*path, name), sub
        yield from _commands(sub, (*path, name))


ROOT = typer.main.get_command(app)
COMMANDS = dict(_commands(ROOT))


def documented() -> dict[tuple[str, ...], set[str]]:
    """Each command a table row of docs/cli.md shows (in its first column), with the
    options its spans there name."""
    found: dict[tuple[str, ...], set[str]] = {}
    for cell in re.findall(r"^\| (`plugbay .*?) \| ", CLI_MD.read_text(encoding="utf-8"), re.M):
        for span in re.findall(r"`(plugbay [^`]*)`", cell):
            words, path = span.replace("\\|", "|").split()[1:], ()
            while words and (*path, words[0]) in COMMANDS:
                path, words = (*path, words[0]), words[1:]
            assert path, f"docs/cli.md shows {span!r}, and plugbay has no such command"
            found.setdefault(path, set()).update(_OPTION.findall(" ".join(words)))
    return found


def _options(command: Any) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def _shown(command: Any) -> set[str]:
    """The options a user is meant to find: not hidden, not the shared ones, the long
    spelling when there is one."""
    shown = set()
    for param in command.params:
        if getattr(param, "hidden", False) or not param.opts[0].startswith("-"):
            continue
        spellings = [*param.opts, *param.secondary_opts]
        if not SHARED & set(spellings):
            shown.add(next((s for s in spellings if s.startswith("--")), spellings[0]))
    return shown


def _is_leaf_or_takes_options(command: Any) -> bool:
    return not getattr(command, "commands", None) or bool(_shown(command))


def test_every_command_is_in_docs_cli_md() -> None:
    rows = documented()
    missing = [" ".join(p) for p, c in COMMANDS.items() if _is_leaf_or_takes_options(c)]
    missing = [name for name in missing if tuple(name.split()) not in rows]
    assert not missing, f"docs/cli.md has no row for: plugbay {', plugbay '.join(missing)}"


@pytest.mark.parametrize("path", sorted(documented()), ids=" ".join)
def test_docs_cli_md_names_each_option_as_the_command_has_it(
    path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    command = COMMANDS[path]
    named = documented()[path]
    unknown = named - _options(command)
    assert not unknown, f"docs/cli.md shows plugbay {' '.join(path)} with {sorted(unknown)}"
    undocumented = {o for o in _shown(command) if not named & {o, *_spellings(command, o)}}
    assert not undocumented, (
        f"plugbay {' '.join(path)} takes {sorted(undocumented)}, not in docs/cli.md"
    )
    # and its --help names each one the docs show
    monkeypatch.setattr(rich_utils, "MAX_WIDTH", 200)
    page = CliRunner().invoke(app, [*path, "--help"], prog_name="plugbay")
    assert page.exit_code == 0, page.output
    assert not {o for o in named if o not in page.output}, page.output


def _spellings(command: Any, option: str) -> set[str]:
    for param in command.params:
        if option in (*param.opts, *param.secondary_opts):
            return {*param.opts, *param.secondary_opts}
    return set()


# --------------------------------------------------------------------------- usage errors

USAGE_ERRORS = [
    # (argv, the command it is about, what the message says)
    (["info", "acme.calc", "--jsno"], "plugbay info", "No such option: --jsno"),
    (["info"], "plugbay info", "Missing argument 'ID'"),
    (["history", "-n", "abc"], "plugbay history", "'--limit' / '-n'"),
    (["lsit"], "plugbay", "Did you mean 'list'?"),
    (["token", "crate"], "plugbay token", "Did you mean 'create'?"),
    # a wrong --scope or --expires was exit 1 in no usage error's shape, unlike any option
    (["token", "create", "--scope", "root"], "plugbay token create", "'root' is not a token"),
    (["token", "create", "-s", "read", "--expires", "3x"], "plugbay token create", "'--expires'"),
]


@pytest.mark.parametrize(("argv", "where", "said"), USAGE_ERRORS, ids=lambda a: str(a))
def test_a_usage_error_with_json_answers_the_common_error_on_stdout(
    argv: list[str], where: str, said: str, tmp_path: Path
) -> None:
    """A script reading --json got nothing on stdout for a mistyped command line, only
    a box of text on stderr: it now reads the documented error object (exit 2 still)."""
    done = plugbay(*argv, "--json", cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    answer = json.loads(done.stdout)
    assert answer["ok"] is False
    assert set(answer["error"]) == set(_documented_error()["error"])
    error = answer["error"]
    assert error["code"] == "usage_error" and error["type"] == "CommandLineError"
    assert said in error["message"] and error["where"] == where
    assert f"'{where} --help'" in error["hint"]
    assert error["details"]["usage"].startswith(where)
    assert not (tmp_path / ".plugbay").exists()  # refused before anything was touched


def test_a_usage_error_without_json_is_text_on_stderr(tmp_path: Path) -> None:
    done = plugbay("info", "--jsno", "acme.calc", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "No such option: --jsno" in done.stderr and "--json" in done.stderr
    assert " info -h' for help" in done.stderr  # where to read what it takes
    missing = plugbay("call", cwd=tmp_path)
    assert missing.returncode == 2
    assert "Missing argument 'ID'" in missing.stderr
    assert "{ID} {COMMAND}" in missing.stderr and "[KEY=VALUE]..." in missing.stderr


def test_a_metrics_port_out_of_range_is_a_usage_error_not_a_crash(tmp_path: Path) -> None:
    """`run --metrics-port 99999` started the host, then died as "a bug in plugbay"
    (exit 70, OverflowError from bind) when it came to serve /metrics."""
    done = plugbay("run", "--metrics-port", "99999", "--no-http", cwd=tmp_path, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "'--metrics-port'" in done.stderr and "65535" in done.stderr
    assert "internal error" not in done.stderr
    assert not (tmp_path / ".plugbay").exists()


def test_an_http_max_body_of_zero_is_a_usage_error(tmp_path: Path) -> None:
    """`run --http-max-body 0` was taken: an API that refuses every body."""
    done = plugbay("run", "--http-max-body", "0", "--once", cwd=tmp_path, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "'--http-max-body'" in done.stderr
    assert "'0' is not a whole number of 1 or more" in done.stderr
    assert not (tmp_path / ".plugbay").exists()


def test_history_refuses_a_count_below_one(tmp_path: Path) -> None:
    """`history -n 0` (or -1) printed "there is no history" on a state that has some."""
    done = plugbay("history", "-n", "0", cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "'--limit' / '-n'" in done.stderr
    assert "'0' is not a whole number from 1 to 10000" in done.stderr


def _documented_error() -> Any:
    text = (DOCS / "cli-json.md").read_text(encoding="utf-8")
    block = re.search(r"^## When a command fails.*?^```json\n(.*?)^```", text, re.M | re.S)
    assert block is not None
    return json.loads(block.group(1))
