"""A config key's ``pattern`` as the API exports it is read by a JSON Schema validator
(a search, in ECMA-262 or, for Python validators, Python's ``re``) to take exactly the
values the host takes (``re.fullmatch``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import jsonschema
import pytest

from plugbay.model._config_schema import ConfigField, json_schema_pattern

PATTERNS = [
    "[a-z]+",
    "^[a-z]+",
    "^ab$",
    "ab|cd",
    "a*",
    "",
    r"\d{2}",
    "(?i)ab",
    "(?m)^ab$",
    "(?s)a.b",
    "(?x) a b  # two letters",
]
VALUES = ["ab", "abc1", "ab\n", "AB", "xab", "cd", "zz\nab", "ab\ncd", "a\nb", "", "12", "ab\n\n"]
# inline flags are Python's alone: an ECMA-262 engine refuses them
ECMA_PATTERNS = [p for p in PATTERNS if not p.startswith("(?")]


def host_takes(pattern: str, value: str) -> bool:
    return ConfigField(name="k", type="string", pattern=pattern).matches(value)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_exported_pattern_takes_what_the_host_takes(pattern: str) -> None:
    """``^[a-z]+`` as written let a JSON Schema validator take ``"abc1"``, and ``^ab$``
    anchored as ``^(?:^ab$)$`` let Python's jsonschema take ``"ab\\n"``: the host refuses
    both."""
    exported = json_schema_pattern(pattern)
    validator = jsonschema.Draft202012Validator({"type": "string", "pattern": exported})
    for value in VALUES:
        expected = host_takes(pattern, value)
        assert (re.search(exported, value) is not None) is expected, (exported, value)
        assert validator.is_valid(value) is expected, (exported, value)


@pytest.mark.skipif(shutil.which("node") is None, reason="node (an ECMA-262 engine) is absent")
def test_an_ecma_262_engine_takes_what_the_host_takes() -> None:
    """JSON Schema's own dialect: node's RegExp, searching with the 'u' flag."""
    script = (
        "const [ps, vs] = JSON.parse(process.argv[1]);"
        "console.log(JSON.stringify(ps.map(p => vs.map(v => new RegExp(p, 'u').test(v)))))"
    )
    exported = [json_schema_pattern(p) for p in ECMA_PATTERNS]
    out = subprocess.run(
        ["node", "-e", script, json.dumps([exported, VALUES])],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for pattern, answers in zip(ECMA_PATTERNS, json.loads(out), strict=True):
        expected = [host_takes(pattern, v) for v in VALUES]
        assert answers == expected, pattern
