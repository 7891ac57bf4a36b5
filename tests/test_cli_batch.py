"""``plugbay call ID COMMAND --batch FILE|-``: many calls of one command at once, run as
a user runs it: each answer in order, exit 1 when one failed, ``--json`` in the shape
``docs/cli-json.md`` shows, clear errors for a batch that is not one; against a host
started for the command and against a running one, through its API."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory
from tests.test_cli_json import DOC, documented_error, same_shape

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def div(self, a: int, b: int = 1) -> int:
        return a // b

    @command
    def echo(self, text: str) -> str:
        return text
"""

BATCH = '[{"a": 7, "b": 2}, {"a": "x"}, {"a": 1, "b": 0}, {"a": 9}]'


@pytest.fixture
def workdir(plugins: PluginFactory, tmp_path: Path) -> Path:
    plugins("acme.calc", CALC)
    return tmp_path


def documented_batch() -> Any:
    """The second example of ``plugbay call``'s section: the answer of a batch."""
    text = DOC.read_text(encoding="utf-8")
    section = re.search(r"^## `plugbay call .*?(?=^## )", text, re.M | re.S)
    assert section is not None
    blocks = re.findall(r"^```json\n(.*?)^```", section.group(0), re.M | re.S)
    assert len(blocks) == 2, "the section shows one call's answer, then a batch's"
    return json.loads(blocks[1])


def same_batch_shape(answer: Any, where: str) -> None:
    """``answer`` has the documented keys, and each call's item the keys of the documented
    item of its kind (``result`` or ``error``)."""
    example = documented_batch()
    assert set(answer) == set(example) and isinstance(answer["ok"], bool), where
    kinds = {next(iter(item)): item for item in example["results"]}
    assert set(kinds) == {"result", "error"}
    for i, item in enumerate(answer["results"]):
        assert len(item) == 1 and next(iter(item)) in kinds, f"{where}.results[{i}]: {item}"
        same_shape(item, kinds[next(iter(item))], f"{where}.results[{i}]")


def test_each_answer_prints_in_order_and_a_failed_call_fails_the_command(workdir: Path) -> None:
    shown = plugbay("call", "acme.calc", "div", "--batch", "-", cwd=workdir, stdin=BATCH)
    assert shown.returncode == 1, shown.stderr
    lines = shown.stdout.splitlines()
    assert [lines[0], lines[3]] == ["3", "9"]
    assert lines[1].startswith("error: ") and "parameter 'a' expects int, got str" in lines[1]
    assert lines[2].startswith("error: ") and "ZeroDivisionError" in lines[2]
    assert shown.stderr == "2 of 4 calls failed\n"
    # JSON lines from a file, every call fine: exit 0; text stays text
    (workdir / "calls.jsonl").write_text('{"text": "007"}\n\n{"text": "a b"}\n')
    ok = plugbay("call", "acme.calc", "echo", "--batch", "calls.jsonl", cwd=workdir)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "007\na b\n", "")


def test_json_answers_each_call_in_the_documented_shape(workdir: Path) -> None:
    result = plugbay("call", "acme.calc", "div", "--batch", "-", "--json", cwd=workdir, stdin=BATCH)
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    same_batch_shape(answer, "call --batch")
    assert answer["ok"] is False
    assert [r.get("result") for r in answer["results"]] == [3, None, None, 9]
    assert answer["results"][1]["error"]["code"] == "parameter_invalid"
    assert answer["results"][2]["error"]["code"] == "plugin_raised"


@pytest.mark.parametrize(
    ("batch", "said"),
    [
        ('{"a": 1}\n[2]\n', "call 2 of the batch is an array, not an object of parameters"),
        ('[{"a": 1}, "b=2"]', "call 2 of the batch is a string, not an object of parameters"),
        ('[{"a": 1},', "the batch is not JSON: Expecting value (line 1"),
        ('{"a": 1}\n{"a": \n', "the batch is not JSON"),
        ("[]", "the batch has no calls in it"),
        ("", "the batch has no calls in it"),
    ],
)
def test_a_batch_that_is_not_one_is_refused_before_any_call(
    workdir: Path, batch: str, said: str
) -> None:
    bad = plugbay("call", "acme.calc", "div", "--batch", "-", cwd=workdir, stdin=batch)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: ") and said in bad.stderr, bad.stderr
    assert "a JSON array such as" in bad.stderr and "Traceback" not in bad.stderr
    as_json = plugbay(
        "call", "acme.calc", "div", "--batch", "-", "--json", cwd=workdir, stdin=batch
    )
    same_shape(json.loads(as_json.stdout), documented_error(), "error")
    assert not (workdir / ".plugbay").exists()  # refused before a host was started


def test_other_mistakes_say_what_to_do(workdir: Path) -> None:
    missing = plugbay("call", "acme.calc", "div", "--batch", "nowhere.json", cwd=workdir)
    assert missing.returncode == 1
    assert "cannot read the batch: No such file or directory (at nowhere.json)" in missing.stderr
    both = plugbay("call", "acme.calc", "div", "a=1", "--batch", "-", cwd=workdir, stdin="[]")
    assert both.returncode == 2 and "either as key=value or in the batch" in both.stderr
    unknown = plugbay("call", "acme.calc", "nope", "--batch", "-", cwd=workdir, stdin='[{"a":1}]')
    assert unknown.returncode == 1 and "has no command 'nope'" in unknown.stderr
    assert "Traceback" not in missing.stderr + both.stderr + unknown.stderr


def test_a_running_host_answers_a_batch_through_its_api(workdir: Path) -> None:
    with plugbay_run(workdir):
        shown = plugbay("call", "acme.calc", "div", "--batch", "-", cwd=workdir, stdin=BATCH)
        assert shown.returncode == 1
        lines = shown.stdout.splitlines()
        assert [lines[0], lines[3]] == ["3", "9"] and "ZeroDivisionError" in lines[2]
        answer = json.loads(
            plugbay("call", "acme.calc", "div", "--batch", "-", "--json", cwd=workdir, stdin=BATCH)
            .stdout
        )  # fmt: skip
        same_batch_shape(answer, "call --batch (running host)")
        # the running host ran and counted them: two batches of four calls
        info = json.loads(plugbay("info", "acme.calc", "--json", cwd=workdir).stdout)
        assert info["metrics"]["commands"]["div"]["calls"] == 8
